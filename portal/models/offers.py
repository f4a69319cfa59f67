"""A private key IoTLock made, kept encrypted for the member who made it until they
download it once or discard it."""
import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from portal.models.base import Base, new_id, utcnow


class KeyOffer(Base):
    """The private key is encrypted bound to this row, its device and its member (see
    services/key_offers.py); deleting the row on the first download (a conditional
    DELETE: of two racing downloads one wins) is what makes it once. One per member and
    device; a new key pair for the device replaces every offer of the older one."""

    __tablename__ = "key_offers"
    __table_args__ = (sa.UniqueConstraint("user_id", "device_kind", "device_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    device_kind: Mapped[str] = mapped_column(sa.String(16))  # "gateway" or "mailbox"
    device_id: Mapped[uuid.UUID] = mapped_column(index=True)
    private_key_enc: Mapped[bytes] = mapped_column(sa.LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
