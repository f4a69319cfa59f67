"""Gateways, mailboxes, PINs, the commands that carry changes to them, and reader cursors."""
import uuid
from datetime import datetime
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.models.base import Base, new_id, substring_index, utcnow
from portal.models.jobs import Job

MAILBOX_KINDS = {"mailbox": "Mailbox", "parcel_box": "Parcel box", "gun_safe": "Gun safe"}


class _HasId(Protocol):
    id: uuid.UUID


class _HasKind(Protocol):
    kind: str


class GatewayNames:
    """What a gateway's columns say in other words: for the model, and for a page's plain
    rows of it (services/rows.Record), which read the same."""

    __slots__ = ()

    @property
    def thing_name(self: _HasId) -> str:
        return f"iotlock-gw-{self.id}"

    @property
    def channel_name(self: _HasId) -> str:
        return f"iotlock-gw-{self.id}"


class MailboxNames:
    """What a box's columns say in other words: for the model, and for a page's plain rows
    of it (services/rows.Record), which read the same."""

    __slots__ = ()

    @property
    def channel_name(self: _HasId) -> str:
        return f"iotlock-mb-{self.id}"

    @property
    def kind_label(self: _HasKind) -> str:
        return MAILBOX_KINDS.get(self.kind, self.kind)


# Protocol levels a gateway's firmware speaks (docs/device-protocol.md).
PROTOCOL_SEALED = "sealed"
PROTOCOL_SEED = "seed"
PROTOCOLS = (PROTOCOL_SEALED, PROTOCOL_SEED)

# Record names of the messages (docs/device-protocol.md) and the channel each travels on.
ACTION_CHANNEL = {
    "CONNECT": "gateway",
    "REGISTER": "gateway",
    "DESTRUCT": "gateway",
    "ADD": "gateway",
    "Mailbox": "gateway",
    "DELETE": "gateway",
    "AUTH": "mailbox",
    "UNAUTH": "mailbox",
    "UNLOCK": "mailbox",
    "SAFE": "mailbox",
}

# What a PIN is for (docs/device-protocol.md, "Rules the box enforces"): a household
# PIN, a courier's delivery code, or a member's duress PIN (opens and raises the alarm).
PIN_HOUSEHOLD = "household"
PIN_COURIER = "courier"
PIN_DURESS = "duress"
PIN_PURPOSES = (PIN_HOUSEHOLD, PIN_COURIER, PIN_DURESS)

# The `status` and `state` columns below hold the StrEnum values of
# portal/services/deliveries.py, the one module that writes them (every write a
# compare-and-set); rows are always created there with their first state set.


class Gateway(GatewayNames, Base):
    __tablename__ = "gateways"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(80))
    public_key: Mapped[str] = mapped_column(sa.String(44))  # base64 of raw X25519, 44 chars
    key_generated: Mapped[bool] = mapped_column(default=False)
    # The protocol level its firmware speaks (docs/device-protocol.md): "sealed" (PINs
    # sealed to its key, every message authenticated) or "seed" (the first messages, PINs
    # readable by the platform). Chosen when it is added.
    protocol: Mapped[str] = mapped_column(sa.String(8), default=PROTOCOL_SEALED)
    # Sealed: the counter of the last command the portal authenticated on its channel.
    command_counter: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(sa.String(16))
    # Provisioning steps done so far, e.g. {"thing": true, "channel": true, ...}.
    progress: Mapped[dict] = mapped_column(default=dict)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    thing_id: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    thing_key_enc: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    channel_id: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    # Its last heartbeat moves only the household's `heartbeats` (models/changes.py); the
    # heartbeat that brings it online (first, or after it read offline) also sets
    # online_since, which moves the count that every polled part follows.
    last_heartbeat_at: Mapped[datetime | None]
    online_since: Mapped[datetime | None]
    settings_downloaded_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    # Replacing the gateway's StreamIoT thing (its "keys"): KeyState of
    # portal/services/gateway_keys.py, the one module that writes key_state (compare-and-set).
    key_state: Mapped[str] = mapped_column(sa.String(16), default="current", server_default="current")
    # Steps of the current (or last) replacement done so far, e.g. {"new_thing": true, ...}.
    key_progress: Mapped[dict] = mapped_column(default=dict)
    key_error: Mapped[str | None] = mapped_column(sa.Text)
    # The replacement's thing, stored before anything is connected to it (resumable).
    new_thing_id: Mapped[str | None] = mapped_column(sa.String(64))
    new_thing_key_enc: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    # The thing replaced, until it is deleted (the only revocation StreamIoT 0.13.0 knows).
    old_thing_id: Mapped[str | None] = mapped_column(sa.String(64))
    keys_replaced_at: Mapped[datetime | None]

    # Rows are removed with a Core DELETE and the database cascades: never load these
    # collections just to delete them.
    mailboxes: Mapped[list["Mailbox"]] = relationship(
        back_populates="gateway", order_by="Mailbox.created_at", passive_deletes=True
    )


class GatewayKeyHolder(Base):
    """Someone who downloaded a gateway's settings (its StreamIoT thing key): first and last
    download, and when they stopped being a member. Reset when the keys are replaced."""

    __tablename__ = "gateway_key_holders"
    __table_args__ = (sa.UniqueConstraint("gateway_id", "user_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    gateway_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("gateways.id", ondelete="CASCADE"), index=True)
    # Kept when the user is deleted: the email says who had the keys.
    user_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"), index=True)
    email: Mapped[str] = mapped_column(sa.String(254))
    first_downloaded_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_downloaded_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set when they left the household or were removed from it.
    departed_at: Mapped[datetime | None]


class Mailbox(MailboxNames, Base):
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
    # Sealed: the counter of the last command the portal authenticated on the box's channel.
    command_counter: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(sa.String(16))
    progress: Mapped[dict] = mapped_column(default=dict)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    channel_id: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    battery_percent: Mapped[int | None]
    battery_at: Mapped[datetime | None]
    is_open: Mapped[bool | None]
    last_event_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    # Safe mode (portal/services/safe_mode.py): {"attempts": 5, "lockouts": [60, 300, 900],
    # "dual_seconds": 0}, or None when off. Each change is a SAFE command with the next
    # version; safe_command_id is the one carrying the latest.
    safe_settings: Mapped[dict | None]
    safe_version: Mapped[int] = mapped_column(default=0, server_default="0")
    safe_command_id: Mapped[uuid.UUID | None]
    # The box reported a lockout after wrong PINs, until then (LOCKOUT).
    locked_until: Mapped[datetime | None]
    # A courier's delivery is in the box since then, until someone of the household opens it.
    parcel_since: Mapped[datetime | None]

    gateway: Mapped[Gateway] = relationship(back_populates="mailboxes")
    pins: Mapped[list["Pin"]] = relationship(
        back_populates="mailbox", order_by="Pin.created_at", passive_deletes=True
    )


# The support search finds households by a part of a gateway's or a box's name.
substring_index("ix_gateways_name_trgm", Gateway.name)
substring_index("ix_mailboxes_name_trgm", Mailbox.name)


class Pin(Base):
    __tablename__ = "pins"
    __table_args__ = (
        # Keyed hash of the digits: uniqueness within a mailbox without decrypting.
        sa.UniqueConstraint("mailbox_id", "digits_digest", name="uq_pins_mailbox_digest"),
        # A sealed box's answer names the PIN by its reference: one index lookup per answer.
        sa.Index("ix_pins_mailbox_ref", "mailbox_id", "ref"),
        # A box's PINs in one state, the ended ones newest first: a box's pages and its count
        # of live PINs read what they show, not the household's whole history of PINs (ended
        # ones are kept). It also serves lookups by household (its first column), as the two
        # above do by box.
        sa.Index("ix_pins_box_state", "account_id", "mailbox_id", "status", "removed_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("accounts.id", ondelete="CASCADE"))
    mailbox_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("mailboxes.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(sa.String(60))
    digits_enc: Mapped[bytes] = mapped_column(sa.LargeBinary)
    digits_digest: Mapped[str] = mapped_column(sa.String(64))
    # Sealed: how the box names this PIN in its reports (it never sends the digits back).
    ref: Mapped[str | None] = mapped_column(sa.String(16))
    status: Mapped[str] = mapped_column(sa.String(16))
    # The command that currently carries this PIN's change (AUTH, then UNAUTH): its state
    # is the PIN's delivery state. No foreign key: commands also point at pins.
    command_id: Mapped[uuid.UUID | None]
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    removed_at: Mapped[datetime | None]
    # PINs added together to several boxes share a group (same label, digits and rules);
    # each box's row keeps its own delivery state.
    group_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    # PIN_PURPOSES: household, courier (a delivery code) or duress.
    purpose: Mapped[str] = mapped_column(sa.String(16), default=PIN_HOUSEHOLD, server_default=PIN_HOUSEHOLD)
    # The member it belongs to: removed with them when they leave (unless re-assigned).
    assigned_to_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    # Rules (portal/services/pin_rules.py), enforced by a sealed box itself and by the
    # portal's schedule for a seed one. Times are UTC; windows are
    # [{"days": "1111100", "from": "08:00", "until": "18:00"}, ...] (days Mon..Sun) in
    # `time_zone`, the household's zone when the PIN was made.
    time_zone: Mapped[str | None] = mapped_column(sa.String(64))
    starts_at: Mapped[datetime | None]
    ends_at: Mapped[datetime | None]
    windows: Mapped[list | None] = mapped_column(sa.JSON())
    max_uses: Mapped[int | None]
    # Opens counted from the box's reports.
    uses: Mapped[int] = mapped_column(default=0, server_default="0")
    # Why the portal took it off its box by itself: "expired" or "used up".
    ended: Mapped[str | None] = mapped_column(sa.String(16))
    # Courier codes: None (waiting for the courier), "opened", "delivered", "collected".
    delivery_state: Mapped[str | None] = mapped_column(sa.String(16))
    delivered_at: Mapped[datetime | None]
    collected_at: Mapped[datetime | None]

    mailbox: Mapped[Mailbox] = relationship(back_populates="pins")


class Command(Base):
    """One message to a device and what became of it: queued, sent, confirmed, failed."""

    __tablename__ = "commands"
    __table_args__ = (
        sa.Index("ix_commands_state_channel", "state", "channel_id"),
        # A box's changes of one action (the worker's lookups, the support trace) stay index
        # lookups however long the history grows (benchmarks/test_pages.py).
        sa.Index("ix_commands_mailbox_action_time", "mailbox_id", "action", "created_at"),
        sa.Index("ix_commands_account_state", "account_id", "state"),
        # A listed box's changes on their way and failed (the dashboard's rows).
        sa.Index("ix_commands_mailbox_state", "mailbox_id", "state"),
        # A device answer's candidates: the gateway's commands of that action still waiting.
        sa.Index("ix_commands_gateway_action_state", "gateway_id", "action", "state"),
        # A household's changes by box (none: its gateways') and action, newest last: a box
        # page's latest unlocks and a gateway page's own steps read what they show, not the
        # household's whole history (tests/integration/test_history_cost.py). It also serves
        # lookups by household (its first column).
        sa.Index("ix_commands_account_box_action", "account_id", "mailbox_id", "action", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("accounts.id", ondelete="CASCADE"))
    gateway_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("gateways.id", ondelete="CASCADE"), index=True
    )
    mailbox_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("mailboxes.id", ondelete="CASCADE"), index=True
    )
    pin_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("pins.id", ondelete="CASCADE"), index=True
    )
    # The record name of the message: CONNECT, REGISTER, ADD, Mailbox, AUTH, UNAUTH, ...
    action: Mapped[str] = mapped_column(sa.String(16))
    # "gateway" or "mailbox": which channel it travels on (ACTION_CHANNEL).
    channel_key: Mapped[str] = mapped_column(sa.String(16))
    # The StreamIoT channel it was published on (set when sent; replies are matched on it).
    channel_id: Mapped[str | None] = mapped_column(sa.String(64))
    state: Mapped[str] = mapped_column(sa.String(16))
    reason: Mapped[str | None] = mapped_column(sa.Text)
    # A queued command whose last attempt failed: when its job tries again (shown in words).
    retry_at: Mapped[datetime | None]
    # Sealed: the counter it is authenticated with, given at its first publish and kept,
    # so a publish repeated after a crash is the same message to the gateway.
    counter: Mapped[int | None]
    # The value it carries when that is not its device's current one: the old key of the
    # DELETE that makes a gateway forget a box which got a new key pair.
    value: Mapped[str | None] = mapped_column(sa.String(64))
    # The job that sends it now; an older job of a requeued command finds itself stale.
    job_id: Mapped[int | None] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"))
    requested_by_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When the portal first handed it to StreamIoT: from then on it may reach the box, so
    # it can no longer be withdrawn, and an answer received after it may be its answer.
    publish_started_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    # Set with a job not yet saved: the flush that saves both fills job_id from the job's
    # new id (no database foreign key: a job row is pruned while its command stays).
    job: Mapped[Job | None] = relationship(primaryjoin="foreign(Command.job_id) == Job.id", lazy="raise")


class IgnoredDeviceMessage(Base):
    """A message on a device channel that changed nothing: an answer to no command waiting
    for one, a publisher that is not the gateway, a record the portal does not know. Kept
    for the support trace; never its value (an answer's value can be PIN digits)."""

    __tablename__ = "ignored_device_messages"
    __table_args__ = (sa.Index("ix_ignored_device_messages_account_time", "account_id", "received_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("accounts.id", ondelete="CASCADE"))
    gateway_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("gateways.id", ondelete="CASCADE"), index=True)
    mailbox_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("mailboxes.id", ondelete="CASCADE"))
    channel_id: Mapped[str] = mapped_column(sa.String(64))
    publisher: Mapped[str | None] = mapped_column(sa.String(64))
    # The record name and unit, e.g. "AUTH" / "Done".
    name: Mapped[str] = mapped_column(sa.String(64))
    unit: Mapped[str | None] = mapped_column(sa.String(32))
    received_at: Mapped[datetime]
    why: Mapped[str] = mapped_column(sa.String(200))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class IdleRead(Base):
    """When the idle sweep last took a linked household, shared by every worker process, so
    each household is read once per interval however many workers sweep
    (portal/services/device_reports.py is its only writer)."""

    __tablename__ = "idle_reads"

    account_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    read_at: Mapped[datetime] = mapped_column(index=True)


class ChannelCursor(Base):
    """How far the worker has read a channel in the reader, so no reply is applied twice."""

    __tablename__ = "channel_cursors"

    channel_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    # The newest platform time read from the gateway on this channel (never a device time
    # outside the trusted window: see portal/services/device_reports.py).
    last_time: Mapped[float] = mapped_column(sa.Float, default=0.0)
    # What was applied already, so overlapping reads change nothing: {"recent": {digest:
    # time} of the look-back window, "strays": {digest: count} of device-dated messages,
    # "stray_total": how many of those the reader held at the last sweep}.
    seen: Mapped[dict] = mapped_column(default=dict)
    last_polled_at: Mapped[datetime | None]
    # Sealed gateways: the counter of the last authenticated report applied from this
    # channel; a report must carry a higher one (no replays).
    report_counter: Mapped[int] = mapped_column(default=0)
