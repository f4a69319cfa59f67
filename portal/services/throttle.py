"""Login throttling kept in the database: failures per account (email) and per client address.

A key is locked once it collects too many failures inside the window; while any key of an
attempt is locked the attempt is refused before the password hasher runs, so guessing costs
the attacker time and costs the server nothing."""
import math
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from portal.extensions import db
from portal.models import LoginThrottle, utcnow
from portal.services.errors import ServiceError


class Throttled(ServiceError):
    """Too many failed attempts; `retry_after` is the number of seconds to wait."""

    def __init__(self, retry_after: int, what: str = "Too many failed attempts for this account or from your network."):
        minutes = max(1, math.ceil(retry_after / 60))
        super().__init__(f"{what} Please wait {minutes} minute{'s' if minutes != 1 else ''} and try again.")
        self.retry_after = retry_after


def keys_for(email: str | None, client_address: str | None) -> list[tuple[str, int]]:
    """The throttle keys of one attempt with the failure limit of each."""
    cfg = current_app.config
    keys = []
    if email:
        keys.append((f"email:{email}"[:300], cfg["LOGIN_MAX_FAILURES_PER_ACCOUNT"]))
    if client_address:
        keys.append((f"ip:{client_address}"[:300], cfg["LOGIN_MAX_FAILURES_PER_ADDRESS"]))
    return keys


def signup_keys(client_address: str | None) -> list[tuple[str, int]]:
    """The throttle key of creating accounts from one client address."""
    if not client_address:
        return []
    return [(f"signup:{client_address}"[:300], current_app.config["SIGNUPS_PER_ADDRESS"])]


def check_signup(client_address: str | None) -> None:
    try:
        check(signup_keys(client_address))
    except Throttled as exc:
        raise Throttled(exc.retry_after, "Too many new accounts from your network.") from None


def check(keys: list[tuple[str, int]], now: datetime | None = None) -> None:
    """Raise Throttled when any key is locked now."""
    now = now or utcnow()
    names = [key for key, _limit in keys]
    if not names:
        return
    locked = db.session.scalars(
        sa.select(LoginThrottle.locked_until).where(
            LoginThrottle.key.in_(names), LoginThrottle.locked_until > now
        )
    ).all()
    if locked:
        raise Throttled(int((max(locked) - now).total_seconds()) + 1)


def record_failure(keys: list[tuple[str, int]], now: datetime | None = None) -> None:
    """Count one failure on every key and lock the keys that reached their limit (commits)."""
    now = now or utcnow()
    window: timedelta = current_app.config["LOGIN_THROTTLE_WINDOW"]
    for key, limit in keys:
        _ensure_row(key, now)
        # One UPDATE per key so concurrent failures are all counted (no read-modify-write).
        stale = LoginThrottle.window_started_at < now - window
        db.session.execute(
            sa.update(LoginThrottle)
            .where(LoginThrottle.key == key)
            .values(
                failures=sa.case((stale, 1), else_=LoginThrottle.failures + 1),
                window_started_at=sa.case((stale, now), else_=LoginThrottle.window_started_at),
            )
        )
        db.session.execute(
            sa.update(LoginThrottle)
            .where(LoginThrottle.key == key, LoginThrottle.failures >= limit)
            .values(locked_until=now + window)
        )
    db.session.commit()


def reset(key: str) -> None:
    """Forget the failures of one key (after a successful login of that account; commits)."""
    db.session.execute(sa.delete(LoginThrottle).where(LoginThrottle.key == key))
    db.session.commit()


def _ensure_row(key: str, now: datetime) -> None:
    if db.session.get(LoginThrottle, key) is not None:
        return
    try:
        with db.session.begin_nested():
            db.session.add(LoginThrottle(key=key, failures=0, window_started_at=now))
    except IntegrityError:
        pass  # a concurrent request created it first; the UPDATE below counts ours
