"""Typed errors of the StreamIoT client, so callers decide retry or give up by type alone."""


class StreamIoTError(Exception):
    """Base of every StreamIoT failure.

    `str(exc)` is a reason in plain words that is safe to show and to log: it never
    carries a key, a token or a password. `error` is the platform's own message
    (the `error` field of its JSON body) when it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body: str = "",
        error: str | None = None,
        operation: str = "",
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.body = body
        self.error = error
        self.operation = operation
        self.retry_after = retry_after


class Unavailable(StreamIoTError):
    """No usable answer: connection error, timeout, 502/503/504 or 429.

    `retry_after` (seconds) is set when the platform said when to come back.
    """


class Unauthorized(StreamIoTError):
    """401 (after one login again where that applies), or 403."""


class NotFound(StreamIoTError):
    """404."""


class Conflict(StreamIoTError):
    """409: already exists, or already connected."""


class BadRequest(StreamIoTError):
    """400, 415 and other 4xx: the same request can never succeed."""


class ServerError(StreamIoTError):
    """500 (empty or not) after any login again and retry; a later attempt may succeed."""


class ProtocolError(StreamIoTError):
    """A 2xx that is not what the API promises: no `Location`, no JSON, HTML, a redirect."""


__all__ = [
    "StreamIoTError",
    "Unavailable",
    "Unauthorized",
    "NotFound",
    "Conflict",
    "BadRequest",
    "ServerError",
    "ProtocolError",
]
