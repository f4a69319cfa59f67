"""Login throttling kept in the database: attempts per account (email), per client address,
per staff second factor and sign-ups per address.

An attempt claims a slot on each of its keys before the password hasher runs, in one
conditional statement per key committed before any hashing: however many requests arrive
at once, at most `limit` of them per key and window are ever checked, so guessing costs
the attacker time and costs the server nothing. A failed attempt keeps its slot and locks
the key once no slot is left; an attempt that must not count gives its slot back."""
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.dialects import postgresql, sqlite

from portal import crypto
from portal.extensions import db
from portal.models import LoginThrottle, utcnow
from portal.services.errors import ServiceError

# The upsert of a claim is dialect-specific SQL (ON CONFLICT ... DO UPDATE ... WHERE).
_INSERT: dict[str, Callable[[type[LoginThrottle]], postgresql.Insert | sqlite.Insert]] = {
    "postgresql": postgresql.insert,
    "sqlite": sqlite.insert,
}


class Throttled(ServiceError):
    """Too many failed attempts; `retry_after` is the number of seconds to wait."""

    def __init__(self, retry_after: int, what: str = "Too many failed attempts for this account or from your network."):
        minutes = max(1, math.ceil(retry_after / 60))
        super().__init__(f"{what} Please wait {minutes} minute{'s' if minutes != 1 else ''} and try again.")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Claim:
    """The slots one attempt holds: its keys with their limits, and the window each slot
    was counted in (a slot given back comes out of that window, not a later one)."""

    keys: list[tuple[str, int]]
    windows: dict[str, datetime] = field(default_factory=dict)


def account_key(email: str) -> str:
    return f"email:{email}"[:300]


def keys_for(email: str | None, client_address: str | None) -> list[tuple[str, int]]:
    """The throttle keys of one attempt with the attempt limit of each."""
    cfg = current_app.config
    keys = []
    if email:
        keys.append((account_key(email), cfg["LOGIN_MAX_FAILURES_PER_ACCOUNT"]))
    if client_address:
        keys.append((f"ip:{client_address}"[:300], cfg["LOGIN_MAX_FAILURES_PER_ADDRESS"]))
    return keys


def signup_keys(client_address: str | None) -> list[tuple[str, int]]:
    """The throttle key of creating accounts from one client address."""
    if not client_address:
        return []
    return [(f"signup:{client_address}"[:300], current_app.config["SIGNUPS_PER_ADDRESS"])]


def claim(keys: list[tuple[str, int]], now: datetime | None = None) -> Claim:
    """Take one slot on every key, or none: raise Throttled when any key is locked or has
    no slot left in its window (commits, so the slots are taken before any hashing)."""
    if not keys:
        return Claim(keys)
    now = now or utcnow()
    windows = {}
    for key, limit in keys:
        started = db.session.scalar(_claim_statement(key, limit, now))
        if started is None:
            db.session.rollback()  # the slots already taken on earlier keys go back too
            raise Throttled(_retry_after(keys, now))
        windows[key] = started
    db.session.commit()
    return Claim(keys, windows)


def claim_signup(client_address: str | None, now: datetime | None = None) -> Claim:
    """A slot for one sign-up from the client address; Throttled says so in its message."""
    try:
        return claim(signup_keys(client_address), now)
    except Throttled as exc:
        raise Throttled(exc.retry_after, "Too many new accounts from your network.") from None


def spend(attempt: Claim, now: datetime | None = None) -> None:
    """The attempt counts (a wrong password, a sign-up made): it keeps its slots, and each
    key left without a slot is locked for one window from now (commits)."""
    now = now or utcnow()
    window: timedelta = current_app.config["LOGIN_THROTTLE_WINDOW"]
    for key, limit in attempt.keys:
        db.session.execute(
            sa.update(LoginThrottle)
            .where(LoginThrottle.key == key, LoginThrottle.failures >= limit)
            .values(locked_until=now + window)
        )
    db.session.commit()


def release(attempt: Claim) -> None:
    """The attempt does not count (a right password, a sign-up refused by validation): give
    its slots back, unless their window has ended meanwhile (commits)."""
    for key, _limit in attempt.keys:
        db.session.execute(
            sa.update(LoginThrottle)
            .where(
                LoginThrottle.key == key,
                LoginThrottle.window_started_at == attempt.windows[key],
                LoginThrottle.failures > 0,
            )
            .values(failures=LoginThrottle.failures - 1)
        )
    db.session.commit()


def verify(attempt: Claim, stored_hash: str | None, password: str) -> bool:
    """The password check of a claimed attempt: a wrong password spends the attempt, a
    right one gives its slots back, and a check the hasher could not take now gives them
    back too and raises crypto.HasherBusy (a busy server is no failed attempt)."""
    try:
        ok = crypto.verify_password(stored_hash, password)
    except crypto.HasherBusy:
        release(attempt)
        raise
    if ok:
        release(attempt)
    else:
        spend(attempt)
    return ok


def reset(key: str) -> None:
    """Forget the attempts of one key (after a successful login of that account; commits)."""
    db.session.execute(sa.delete(LoginThrottle).where(LoginThrottle.key == key))
    db.session.commit()


def _claim_statement(key: str, limit: int, now: datetime):
    """INSERT ... ON CONFLICT DO UPDATE ... WHERE ... RETURNING: creates the row with the
    first slot taken, or takes the next slot only while the key is unlocked and its window
    has one left (a stale window starts over). PostgreSQL evaluates the WHERE on the row
    locked by the upsert and SQLite runs one writer at a time, so of any number of
    concurrent claims at most `limit` per window return a row."""
    window: timedelta = current_app.config["LOGIN_THROTTLE_WINDOW"]
    stale = LoginThrottle.window_started_at < now - window
    insert = _INSERT[db.session.get_bind().dialect.name]
    return (
        insert(LoginThrottle)
        .values(key=key, failures=1, window_started_at=now)
        .on_conflict_do_update(
            index_elements=[LoginThrottle.key],
            set_={
                "failures": sa.case((stale, 1), else_=LoginThrottle.failures + 1),
                "window_started_at": sa.case((stale, now), else_=LoginThrottle.window_started_at),
            },
            where=sa.and_(
                sa.or_(LoginThrottle.locked_until.is_(None), LoginThrottle.locked_until <= now),
                sa.or_(stale, LoginThrottle.failures < limit),
            ),
        )
        .returning(LoginThrottle.window_started_at)
    )


def _retry_after(keys: list[tuple[str, int]], now: datetime) -> int:
    """Seconds until every refusing key takes attempts again: its lock ends, or its window."""
    window: timedelta = current_app.config["LOGIN_THROTTLE_WINDOW"]
    limits = dict(keys)
    rows = db.session.execute(
        sa.select(
            LoginThrottle.key, LoginThrottle.failures, LoginThrottle.window_started_at, LoginThrottle.locked_until
        ).where(LoginThrottle.key.in_(limits))
    ).all()
    waits = [0.0]
    for key, failures, started, locked_until in rows:
        if locked_until is not None and locked_until > now:
            waits.append((locked_until - now).total_seconds())
        elif failures >= limits[key] and started >= now - window:
            waits.append((started + window - now).total_seconds())
    return int(max(waits)) + 1
