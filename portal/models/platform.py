"""The health of the platform every device job talks to: one row per platform, shared by
every worker process (portal/jobs/platform.py is its only writer)."""
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from portal.models.base import Base, utcnow

STREAMIOT = "streamiot"
PLATFORM_UP = "up"
PLATFORM_DOWN = "down"


class PlatformHealth(Base):
    __tablename__ = "platform_health"

    name: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    state: Mapped[str] = mapped_column(sa.String(8), default=PLATFORM_UP)
    # The last "can't be reached" reason, in staff words (safe to show: no secrets).
    reason: Mapped[str | None] = mapped_column(sa.Text)
    # The outage in progress (or the last one): when it started, probes sent during it.
    down_since: Mapped[datetime | None]
    probes: Mapped[int] = mapped_column(default=0)
    # While down: when the next probe may go, and the wait before it (it doubles per failed probe).
    next_probe_at: Mapped[datetime | None]
    probe_interval: Mapped[float] = mapped_column(sa.Float, default=0.0)
    # The one worker probing now, until when (a probe whose worker died is taken over then).
    probe_by: Mapped[str | None] = mapped_column(sa.String(64))
    probe_until: Mapped[datetime | None]
    up_since: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
