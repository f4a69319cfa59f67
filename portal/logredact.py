"""Keeps one-time link tokens (invites, staff set-password links) out of access logs."""
import logging
import re

_TOKEN_PATHS = re.compile(r"(/members/join/|/support/set-password/)[^\s/?\"]+")


def redact(text: str) -> str:
    return _TOKEN_PATHS.sub(r"\1[redacted]", text)


class RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if record.args:
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def install() -> None:
    """Attach the filter to the loggers that write request lines (idempotent)."""
    for name in ("werkzeug", "gunicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())
