"""A private key IoTLock made, offered once to the login session it was made in."""
import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from portal.models.base import Base, new_id, utcnow


class KeyOffer(Base):
    """The key itself travels only in that session's cookie, encrypted under this row's id;
    the row says the offer is still open, and deleting it on the first download (a
    conditional DELETE: of two racing downloads one wins) is what makes it once."""

    __tablename__ = "key_offers"
    __table_args__ = (sa.UniqueConstraint("login_session_id", "device_kind", "device_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    login_session_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("login_sessions.id", ondelete="CASCADE"), index=True
    )
    device_kind: Mapped[str] = mapped_column(sa.String(16))  # "gateway" or "mailbox"
    device_id: Mapped[uuid.UUID]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
