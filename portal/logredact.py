"""Request logging: a request id on every request (X-Request-Id in and out, and in every log
record written while it is served), gunicorn's access log in text or JSON with that id and
the time taken, and one-time link tokens (invites, staff set-password links, password-reset
links) kept out of every access line."""
import copy
import json
import logging
import os
import random
import re
from collections.abc import Mapping
from datetime import UTC, datetime

from flask import Flask, g, has_request_context, request
from gunicorn.glogging import Logger as GunicornLogger

_TOKEN_PATHS = re.compile(r"(/members/join/|/support/set-password/|/password/reset/)[^\s/?\"]+")

REQUEST_ID_HEADER = "X-Request-Id"
# An incoming id is kept when it is this sane (a proxy's or load balancer's id: uuids, hex,
# "Root=1-5e1b-..."); anything else (too long, spaces, quotes, control characters) is
# replaced by a fresh one, so a client cannot write what it likes into the logs.
_SANE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:;=+/-]{0,127}")
# The text access line: gunicorn's "combined" format, then the request id and the time taken.
TEXT_ACCESS_FORMAT = (
    '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" '
    'rid=%({x-request-id}o)s ms=%(M)s'
)


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


def request_id() -> str:
    """This request's id: the incoming X-Request-Id when sane, else a new one (kept in g)."""
    rid = g.get("request_id")
    if rid is None:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        # 128 random bits from the process's generator, not uuid4: os.urandom's system call
        # was 1 % of a small page, and the id only names a request in the logs. The random
        # module reseeds in every forked process, so gunicorn's workers draw apart.
        rid = incoming if _SANE_ID.fullmatch(incoming) else f"{random.getrandbits(128):032x}"
        g.request_id = rid
    return rid


class RequestIdFilter(logging.Filter):
    """Gives every record a `request_id` ("-" outside a request), for "%(request_id)s" in a
    handler's format (gunicorn.conf.py puts it on the portal's log handler)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id() if has_request_context() else "-"
        return True


class AccessLogger(GunicornLogger):
    """gunicorn's logger (gunicorn.conf.py: logger_class), with JSON access lines when
    ACCESS_LOG_FORMAT=json, and /healthz left out when ACCESS_LOG_HEALTHZ=off. Tokens are
    redacted either way (RedactTokens sits on gunicorn.access)."""

    def setup(self, cfg):
        super().setup(cfg)
        self.json_lines = os.environ.get("ACCESS_LOG_FORMAT", "text").strip().lower() == "json"
        self.log_healthz = os.environ.get("ACCESS_LOG_HEALTHZ", "on").strip().lower() not in {"0", "off", "false", "no"}

    def access(self, resp, req, environ, request_time):
        if not self.access_log_enabled:
            return
        if environ.get("PATH_INFO") == "/healthz" and not self.log_healthz:
            return
        if not self.json_lines:
            super().access(resp, req, environ, request_time)
            return
        atoms = self.atoms_wrapper_class(self.atoms(resp, req, environ, request_time))
        line = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "remote": atoms["h"],
            "method": atoms["m"],
            "path": environ.get("RAW_URI") or atoms["U"],
            "protocol": atoms["H"],
            "status": int(atoms["s"]) if str(atoms["s"]).isdigit() else atoms["s"],
            "bytes": atoms["B"],
            "ms": atoms["M"],
            "request_id": atoms["{x-request-id}o"],
            "referer": atoms["f"],
            "user_agent": atoms["a"],
            "pid": os.getpid(),
        }
        try:
            # Values as gunicorn gives them (SafeAtoms escaped quotes for the text format).
            self.access_log.info("%s", json.dumps({k: _unescaped(v) for k, v in line.items()}))
        except Exception:  # noqa: BLE001  (as gunicorn does: a bad line never fails a request)
            self.exception("access log line failed")


def _unescaped(value):
    return value.replace('\\"', '"') if isinstance(value, str) else value


def install() -> None:
    """Attach the redaction filter to the loggers that write request lines (idempotent)."""
    for name in ("werkzeug", "gunicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())


def init_app(app: Flask) -> None:
    """Redaction on the access loggers; every answer carries its request's X-Request-Id."""
    install()

    @app.after_request
    def echo_request_id(response):
        response.headers[REQUEST_ID_HEADER] = request_id()
        return response
