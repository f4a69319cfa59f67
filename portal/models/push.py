"""Web Push (issue 13): a member's browsers that get alerts, each subscribed with its push
service (RFC 8030). One row per browser subscription, owned by one user."""
import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from portal.models.base import Base, new_id, utcnow


class PushSubscription(Base):
    """What the browser's PushManager gave: where to post (endpoint, a capability URL of the
    browser's push service) and its keys for RFC 8291 payload encryption."""

    __tablename__ = "push_subscriptions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    endpoint: Mapped[str] = mapped_column(sa.String(2048), unique=True)
    # The browser's P-256 public key (uncompressed point) and 16-byte auth secret, base64url.
    p256dh: Mapped[str] = mapped_column(sa.String(128))
    auth: Mapped[str] = mapped_column(sa.String(64))
    # "Firefox on Android": for the member to tell their devices apart.
    label: Mapped[str] = mapped_column(sa.String(80))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
