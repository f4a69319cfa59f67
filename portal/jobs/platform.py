"""StreamIoT's health as the workers see it: back off per platform, not per job.

When StreamIoT cannot be reached (no connection, no answer in time, 502/503/504, the
empty-body 500: portal.jobs.errors.unreachable), retrying every job on its own backoff
hammers a platform that is down and then, once it is back, leaves each job waiting out
its own growing delay (one PIN took 72.6 s after an outage; issue 9). Instead:

- One row, `platform_health` (portal.models.platform), shared by every worker process,
  says up or down. This module is its only writer; every change is a compare-and-set.
- The attempt that finds StreamIoT unreachable moves it up -> down (only one attempt
  wins; it is the one attempt of the outage that counts against its job) and sets the
  first probe 0.5 s ahead (PLATFORM_PROBE_BASE).
- While down, workers do not claim StreamIoT jobs (`gate` -> CLOSED): they wait queued,
  their attempts untouched, and other job kinds run on. A StreamIoT job that was already
  running and fails is held the same way, its attempt given back.
- When the probe time comes, exactly one worker wins the probe (`gate` -> PROBE: a
  compare-and-set on probe_by, leased so a probe whose worker died is taken over). The
  probe is the real attempt of the oldest due StreamIoT job, so it costs the platform
  one request and does useful work when it answers. Unreachable again: the wait
  doubles up to PLATFORM_PROBE_CAP (0.5, 1, 2, 4, 5, 5 ... s), and the held job goes to
  the back of the due queue, so the next probe is another job's.
- Any answer of the platform (success, or an error the platform itself gave) moves it
  down -> up: the held jobs were never moved into the future, so all of them are due at
  once, in order per target (the claim keeps same-target order), and idle workers in
  this process are woken (others poll every JOB_POLL_SECONDS).

Pages read the row to say why a queued change waits and when the next try is
(portal.services.deliveries.platform_waiting). A job does not give up because the
platform is down: it gives up only on attempts made while the platform was believed up.
"""
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from portal.extensions import db
from portal.jobs.outbox import wakeup
from portal.models import PLATFORM_DOWN, PLATFORM_UP, STREAMIOT, PlatformHealth, utcnow

log = logging.getLogger("portal.jobs")

# The Table itself (PlatformHealth.__table__ is typed as any FromClause).
_health = PlatformHealth.metadata.tables[PlatformHealth.__tablename__]

OPEN, PROBE, CLOSED = "open", "probe", "closed"


@dataclass(frozen=True)
class Gate:
    """What a worker may claim now: anything (OPEN), one StreamIoT job as the probe
    (PROBE), or no StreamIoT job (CLOSED)."""

    mode: str

    @property
    def platform_known_up(self) -> bool:
        return self.mode == OPEN


KNOWN_UP = Gate(OPEN)


def _rowcount(result) -> int:
    # An UPDATE's result is a CursorResult (it has rowcount); execute is typed as returning a Result.
    return cast(sa.CursorResult, result).rowcount


def _row(conn):
    return conn.execute(sa.select(_health).where(_health.c.name == STREAMIOT)).first()


def gate(conn, worker_id: str, now: datetime, lease_seconds: float) -> Gate:
    """Read the platform's health and, when a probe is due, try to win it. The caller
    commits `conn` right after (the probe right must be visible to the others at once)."""
    row = _row(conn)
    if row is None or row.state == PLATFORM_UP:
        return KNOWN_UP
    won = _rowcount(conn.execute(
        sa.update(_health)
        .where(
            _health.c.name == STREAMIOT,
            _health.c.state == PLATFORM_DOWN,
            _health.c.next_probe_at <= now,
            sa.or_(_health.c.probe_by.is_(None), _health.c.probe_until < now),
        )
        .values(probe_by=worker_id, probe_until=now + timedelta(seconds=lease_seconds),
                probes=_health.c.probes + 1, updated_at=now)
    )) == 1
    return Gate(PROBE if won else CLOSED)


def release_probe(conn, worker_id: str, *, sent: bool) -> None:
    """Give the probe right back without news of the platform (no StreamIoT job was due,
    or the job ended without asking the platform); the next worker may probe at once."""
    conn.execute(
        sa.update(_health)
        .where(_health.c.name == STREAMIOT, _health.c.probe_by == worker_id)
        .values(probe_by=None, probe_until=None, updated_at=utcnow(),
                **({} if sent else {"probes": _health.c.probes - 1}))
    )


def unreachable(worker_id: str, reason: str, now: datetime, *, probing: bool, config,
                retry_after: float | None = None) -> tuple[datetime, bool]:
    """An attempt could not reach StreamIoT. Returns (when the next probe may go, whether
    this attempt counts against its job: only the one that found the platform up does).
    A Retry-After the platform sent puts the next probe no earlier than that. Commits."""
    base = float(config["PLATFORM_PROBE_BASE"])
    cap = float(config["PLATFORM_PROBE_CAP"])
    counted = False
    if probing:
        row = _row(db.session)
        interval = min(cap, max((row.probe_interval if row is not None else 0.0) * 2, base))
        db.session.execute(
            sa.update(_health)
            .where(_health.c.name == STREAMIOT, _health.c.state == PLATFORM_DOWN,
                   _health.c.probe_by == worker_id)
            .values(next_probe_at=now + timedelta(seconds=max(interval, retry_after or 0.0)),
                    probe_interval=interval, reason=reason, probe_by=None, probe_until=None, updated_at=now)
        )
    else:
        counted = _went_down(reason, now, base, retry_after)
    db.session.commit()
    row = _row(db.session)
    db.session.commit()
    next_probe = row.next_probe_at if row is not None and row.next_probe_at is not None else now
    if counted:
        log.warning("StreamIoT is down (%s); probing again in %.1f s", reason, base)
    return next_probe, counted


def _went_down(reason: str, now: datetime, base: float, retry_after: float | None) -> bool:
    """up -> down (the row is made on the platform's first outage). True if this call won."""
    values = dict(state=PLATFORM_DOWN, reason=reason, down_since=now, probes=0, probe_interval=base,
                  next_probe_at=now + timedelta(seconds=max(base, retry_after or 0.0)),
                  probe_by=None, probe_until=None, up_since=None,
                  updated_at=now)
    won = _rowcount(db.session.execute(
        sa.update(_health).where(_health.c.name == STREAMIOT, _health.c.state == PLATFORM_UP).values(**values)
    )) == 1
    if won or _row(db.session) is not None:
        return won
    try:
        with db.session.begin_nested():
            db.session.execute(sa.insert(_health).values(name=STREAMIOT, **values))
    except IntegrityError:
        return False  # another worker made the row (and found the outage) first
    return True


def answered(now: datetime) -> bool:
    """StreamIoT answered: down -> up, every held job is due now; wake this process's
    workers. True if this call moved it. Commits."""
    won = _rowcount(db.session.execute(
        sa.update(_health)
        .where(_health.c.name == STREAMIOT, _health.c.state == PLATFORM_DOWN)
        .values(state=PLATFORM_UP, up_since=now, next_probe_at=None, probe_by=None, probe_until=None,
                updated_at=now)
    )) == 1
    db.session.commit()
    if won:
        log.warning("StreamIoT answers again; held jobs are due")
        wakeup.set()
    return won


def next_probe_in(now: datetime | None = None) -> float | None:
    """Seconds until a worker may probe (None: StreamIoT is up). Needs an app context."""
    row = _row(db.session)
    db.session.commit()
    if row is None or row.state != PLATFORM_DOWN or row.next_probe_at is None:
        return None
    now = now or utcnow()
    when = row.next_probe_at
    if row.probe_by is not None and row.probe_until is not None:
        when = max(when, row.probe_until)
    return (when - now).total_seconds()
