"""Worker heartbeats: each worker process records that it is alive, and /healthz asks
whether any did recently. The only writer of worker_heartbeats."""
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

import sqlalchemy as sa
from flask import current_app

from portal.extensions import db
from portal.models import WorkerHeartbeat, utcnow

# Rows of workers gone without saying so (killed, machine lost) are dropped this late.
FORGET_AFTER = timedelta(days=1)


@dataclass(frozen=True)
class WorkerHealth:
    alive: int  # workers that beat within WORKER_STALE_SECONDS
    last_beat_age: float | None  # seconds since the newest beat of any worker, None if none ever


def beat(worker_id: str, *, starting: bool = False, now: datetime | None = None) -> None:
    """The worker is alive now (commits). A starting worker also drops rows of workers that
    have not beaten for FORGET_AFTER."""
    now = now or utcnow()
    # An UPDATE's result is a CursorResult (it has rowcount); Session.execute is typed as returning a Result.
    touched = cast(sa.CursorResult, db.session.execute(
        sa.update(WorkerHeartbeat).where(WorkerHeartbeat.worker_id == worker_id).values(beat_at=now)
    ))
    if not touched.rowcount:
        db.session.add(WorkerHeartbeat(worker_id=worker_id, started_at=now, beat_at=now))
    if starting:
        db.session.execute(sa.delete(WorkerHeartbeat).where(WorkerHeartbeat.beat_at < now - FORGET_AFTER))
    db.session.commit()


def forget(worker_id: str) -> None:
    """The worker stopped cleanly (commits)."""
    db.session.execute(sa.delete(WorkerHeartbeat).where(WorkerHeartbeat.worker_id == worker_id))
    db.session.commit()


def health(now: datetime | None = None) -> WorkerHealth:
    """One aggregate statement, no ORM objects (a load balancer asks every few seconds)."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=current_app.config["WORKER_STALE_SECONDS"])
    column = WorkerHeartbeat.beat_at
    alive, newest = db.session.execute(
        sa.select(
            sa.func.count().filter(column >= cutoff),
            sa.func.max(column),
        )
    ).one()
    db.session.rollback()  # end the read transaction: nothing is kept open between probes
    return WorkerHealth(alive=alive, last_beat_age=(now - newest).total_seconds() if newest else None)
