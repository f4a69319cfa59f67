"""The transactional outbox: device work saved with the change that needs it."""
import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from portal.models.base import Base, utcnow

JOB_QUEUED = "queued"
JOB_RUNNING = "running"
JOB_DONE = "done"
JOB_FAILED = "failed"
JOB_CANCELLED = "cancelled"
JOB_FINAL_STATES = (JOB_DONE, JOB_FAILED, JOB_CANCELLED)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        sa.Index("ix_jobs_due", "state", "run_after"),
        sa.Index("ix_jobs_target", "target", "id"),
        # The claim's "is an older job of this target unfinished?" probe, kept small
        # (finished jobs leave it) so the planner always takes it.
        sa.Index(
            "ix_jobs_unfinished_target",
            "target",
            "id",
            postgresql_where=sa.text("state IN ('queued', 'running')"),
            sqlite_where=sa.text("state IN ('queued', 'running')"),
        ),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    account_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(sa.String(64))
    # Jobs with the same target run one at a time, in id order.
    target: Mapped[str] = mapped_column(sa.String(128))
    payload: Mapped[dict] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(sa.String(16), default=JOB_QUEUED)
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=12)
    run_after: Mapped[datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[datetime | None]
    locked_by: Mapped[str | None] = mapped_column(sa.String(64))
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None]


class WorkerHeartbeat(Base):
    """One row per running worker process, touched every WORKER_BEAT_SECONDS, so /healthz
    can tell that jobs are being worked (portal/services/worker_health.py is its only writer)."""

    __tablename__ = "worker_heartbeats"

    worker_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    beat_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
