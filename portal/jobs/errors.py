"""What a failed job attempt means: retry (when, at the earliest) or give up, in plain words."""
from dataclasses import dataclass

from portal.crypto import DecryptionError
from portal.streamiot import errors as sie


class RetryLater(Exception):
    """Not possible yet (e.g. "waiting for household link"); counts as an attempt.

    `delay` (seconds) replaces the backoff for this retry when given.
    """

    def __init__(self, reason: str, delay: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


class PermanentFailure(Exception):
    """Can never succeed: the job fails now with this reason, without more attempts."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Verdict:
    reason: str
    retry: bool
    # Seconds to wait at least (Retry-After), or exactly (RetryLater(delay=...)).
    min_delay: float | None = None
    exact_delay: float | None = None
    # A bug rather than a refusal: the worker logs its traceback.
    unexpected: bool = False
    # The platform could not be reached at all: a matter for the platform's health
    # (portal/jobs/platform.py), not for this job's attempts.
    unreachable: bool = False
    # The platform did answer (even if with an error): it is up.
    platform_answered: bool = False


def judge(exc: BaseException) -> Verdict:
    """Turn an exception raised by a handler into a verdict.

    Reasons are shown to support staff and members, so they are plain words and never
    carry a secret: StreamIoT errors promise that of their `str()`; any other exception
    is named only by its type (its message could hold anything), the traceback goes to
    the worker log.
    """
    if isinstance(exc, RetryLater):
        return Verdict(exc.reason, True, exact_delay=exc.delay)
    if isinstance(exc, PermanentFailure):
        return Verdict(exc.reason, False)
    if isinstance(exc, sie.BadRequest):
        return Verdict(_plain(exc, "StreamIoT refused the request as invalid"), False, platform_answered=True)
    if isinstance(exc, sie.StreamIoTError) and unreachable(exc):
        return Verdict(_plain(exc, "StreamIoT is not answering"), True, min_delay=exc.retry_after, unreachable=True)
    if isinstance(exc, sie.Unavailable):
        # 429: it answered, asking this caller to slow down (Retry-After).
        return Verdict(_plain(exc, "StreamIoT is not answering"), True, min_delay=exc.retry_after,
                       platform_answered=True)
    if isinstance(exc, sie.StreamIoTError):
        # ServerError, ProtocolError, Unauthorized, NotFound, Conflict: a later attempt
        # may succeed (expired token, platform hiccup); max_attempts bounds the hope.
        return Verdict(_plain(exc, "StreamIoT answered with an error"), True,
                       platform_answered=exc.status is not None)
    if isinstance(exc, DecryptionError):
        return Verdict(
            "A stored StreamIoT secret could not be decrypted (was IOTLOCK_DATA_KEY changed?)",
            True,
        )
    return Verdict(
        f"Unexpected error in the portal ({type(exc).__name__}); details are in the worker log",
        True,
        unexpected=True,
    )


# Statuses of the proxy (or a service behind it) with nobody able to do the work.
UNREACHABLE_STATUSES = (502, 503, 504)


def unreachable(exc: BaseException) -> bool:
    """Whether StreamIoT as a whole could not be reached: no connection, no answer in time,
    502/503/504 from its proxy, or the EMPTY-body 500 its services give when something deep
    inside them fails (STREAMIOT_API.md). That empty 500 is ambiguous: the things service
    also gives it for an unknown id; the client has already logged in again and retried
    once before it raises one, so what is left is counted as the platform's."""
    if isinstance(exc, sie.Unavailable):
        return exc.status is None or exc.status in UNREACHABLE_STATUSES
    if isinstance(exc, sie.ServerError):
        return exc.status == 500 and not (exc.body or "").strip()
    return False


def _plain(exc: BaseException, fallback: str) -> str:
    text = " ".join(str(exc).split())
    return (text or fallback)[:500]
