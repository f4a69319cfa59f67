"""The household's activity log: what members, boxes, support and the system did."""
import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from portal.models.base import Base, utcnow


class ActivityEvent(Base):
    __tablename__ = "activity_events"
    __table_args__ = (
        sa.Index("ix_activity_account_time", "account_id", "occurred_at"),
        # A box's events newest first (the id breaks ties): its page, its filter, the
        # dashboard's newest event per box, each stopping at the rows it shows.
        sa.Index("ix_activity_mailbox_time", "mailbox_id", "occurred_at", "id"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("accounts.id", ondelete="CASCADE"))
    # When it happened (for a box event: when the platform received it, or the box's own
    # clock when that is trustworthy) and when the portal wrote it down.
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    # member | box | support | system
    actor_kind: Mapped[str] = mapped_column(sa.String(16))
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    actor_label: Mapped[str] = mapped_column(sa.String(254))
    kind: Mapped[str] = mapped_column(sa.String(48))
    gateway_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    mailbox_id: Mapped[uuid.UUID | None]
    # Plain words, never PIN digits or secrets.
    summary: Mapped[str] = mapped_column(sa.Text)
    details: Mapped[dict] = mapped_column(default=dict)
