"""Gateways, mailboxes, PINs, the commands that carry changes to them, and reader cursors."""
import uuid
from datetime import datetime
from typing import Optional

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.models.base import Base, new_id, utcnow

# Lifecycle of a gateway or a mailbox (whether a gateway is online comes from heartbeats).
DEVICE_PROVISIONING = "provisioning"
DEVICE_ACTIVE = "active"
DEVICE_REMOVING = "removing"
DEVICE_FAILED = "failed"

MAILBOX_KINDS = {"mailbox": "Mailbox", "parcel_box": "Parcel box", "gun_safe": "Gun safe"}

PIN_ADDING = "adding"
PIN_ACTIVE = "active"
PIN_REMOVING = "removing"
PIN_REMOVED = "removed"

# Delivery state of a command (DEVICE_PROTOCOL.md, "States the portal shows").
CMD_QUEUED = "queued"
CMD_SENT = "sent"
CMD_CONFIRMED = "confirmed"
CMD_FAILED = "failed"
CMD_EXPIRED = "expired"
CMD_WITHDRAWN = "withdrawn"
CMD_FINAL_STATES = (CMD_CONFIRMED, CMD_FAILED, CMD_EXPIRED, CMD_WITHDRAWN)


class Gateway(Base):
    __tablename__ = "gateways"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(80))
    public_key: Mapped[str] = mapped_column(sa.String(44))  # base64 of raw X25519, 44 chars
    key_generated: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(sa.String(16), default=DEVICE_PROVISIONING)
    # Provisioning steps done so far, e.g. {"thing": true, "channel": true, ...}.
    progress: Mapped[dict] = mapped_column(default=dict)
    last_error: Mapped[Optional[str]] = mapped_column(sa.Text)
    thing_id: Mapped[Optional[str]] = mapped_column(sa.String(64), index=True)
    thing_key_enc: Mapped[Optional[bytes]] = mapped_column(sa.LargeBinary)
    channel_id: Mapped[Optional[str]] = mapped_column(sa.String(64), index=True)
    last_heartbeat_at: Mapped[Optional[datetime]]
    settings_downloaded_at: Mapped[Optional[datetime]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    mailboxes: Mapped[list["Mailbox"]] = relationship(
        back_populates="gateway", order_by="Mailbox.created_at"
    )


class Mailbox(Base):
    __tablename__ = "mailboxes"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    gateway_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("gateways.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(80))
    kind: Mapped[str] = mapped_column(sa.String(16), default="mailbox")
    public_key: Mapped[str] = mapped_column(sa.String(44))
    key_generated: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(sa.String(16), default=DEVICE_PROVISIONING)
    progress: Mapped[dict] = mapped_column(default=dict)
    last_error: Mapped[Optional[str]] = mapped_column(sa.Text)
    channel_id: Mapped[Optional[str]] = mapped_column(sa.String(64), index=True)
    battery_percent: Mapped[Optional[int]]
    battery_at: Mapped[Optional[datetime]]
    is_open: Mapped[Optional[bool]]
    last_event_at: Mapped[Optional[datetime]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    gateway: Mapped[Gateway] = relationship(back_populates="mailboxes")
    pins: Mapped[list["Pin"]] = relationship(back_populates="mailbox", order_by="Pin.created_at")


class Pin(Base):
    __tablename__ = "pins"
    __table_args__ = (
        # Keyed hash of the digits: uniqueness within a mailbox without decrypting.
        sa.Index("ix_pins_mailbox_digest", "mailbox_id", "digits_digest"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    mailbox_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("mailboxes.id", ondelete="CASCADE")
    )
    label: Mapped[str] = mapped_column(sa.String(60))
    digits_enc: Mapped[bytes] = mapped_column(sa.LargeBinary)
    digits_digest: Mapped[str] = mapped_column(sa.String(64))
    status: Mapped[str] = mapped_column(sa.String(16), default=PIN_ADDING)
    created_by_id: Mapped[Optional[uuid.UUID]] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    removed_at: Mapped[Optional[datetime]]

    mailbox: Mapped[Mailbox] = relationship(back_populates="pins")


class Command(Base):
    """One message to a device and what became of it: queued, sent, confirmed, failed."""

    __tablename__ = "commands"
    __table_args__ = (sa.Index("ix_commands_channel_state", "channel_key", "state"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    gateway_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("gateways.id", ondelete="CASCADE"), index=True
    )
    mailbox_id: Mapped[Optional[uuid.UUID]] = mapped_column(
        sa.ForeignKey("mailboxes.id", ondelete="CASCADE"), index=True
    )
    pin_id: Mapped[Optional[uuid.UUID]] = mapped_column(
        sa.ForeignKey("pins.id", ondelete="CASCADE"), index=True
    )
    # The record name of the message: CONNECT, REGISTER, ADD, Mailbox, AUTH, UNAUTH, ...
    action: Mapped[str] = mapped_column(sa.String(16))
    # "gateway" or "mailbox": which channel it travels on (resolved when sent).
    channel_key: Mapped[str] = mapped_column(sa.String(16))
    channel_id: Mapped[Optional[str]] = mapped_column(sa.String(64))
    state: Mapped[str] = mapped_column(sa.String(16), default=CMD_QUEUED)
    reason: Mapped[Optional[str]] = mapped_column(sa.Text)
    job_id: Mapped[Optional[int]] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"))
    requested_by_id: Mapped[Optional[uuid.UUID]] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[Optional[datetime]]
    answered_at: Mapped[Optional[datetime]]
    expires_at: Mapped[Optional[datetime]]


class ChannelCursor(Base):
    """How far the worker has read a channel in the reader, so no reply is applied twice."""

    __tablename__ = "channel_cursors"

    channel_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    last_time: Mapped[float] = mapped_column(sa.Float, default=0.0)
    # Digests of the messages already applied at exactly last_time (reads overlap by design).
    seen_at_last_time: Mapped[dict] = mapped_column(default=dict)
    last_polled_at: Mapped[Optional[datetime]]
