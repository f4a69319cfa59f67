"""Keeps one-time link tokens (invites, staff set-password links, password-reset links) out of
access logs."""
import copy
import logging
import re
from collections.abc import Mapping

_TOKEN_PATHS = re.compile(r"(/members/join/|/support/set-password/|/password/reset/)[^\s/?\"]+")


def redact(text: str) -> str:
    return _TOKEN_PATHS.sub(r"\1[redacted]", text)


def _redacted_mapping(args: Mapping) -> Mapping:
    """The same kind of mapping with its string values redacted. gunicorn's access log
    formats "%(h)s %(r)s ..." with one dict of its own (SafeAtoms answers "-" for an atom it
    lacks), so a dict is copied as its own type, not rebuilt."""
    if isinstance(args, dict):
        kept = copy.copy(args)
        kept.update((key, redact(value)) for key, value in args.items() if isinstance(value, str))
        return kept
    return {key: redact(value) if isinstance(value, str) else value for key, value in args.items()}


class RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, Mapping):
            # A single mapping argument (LogRecord keeps it as a mapping) must stay one:
            # "%(name)s" formatting needs it ("format requires a mapping" otherwise).
            record.args = _redacted_mapping(record.args)
        elif record.args:
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def install() -> None:
    """Attach the filter to the loggers that write request lines (idempotent)."""
    for name in ("werkzeug", "gunicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())
