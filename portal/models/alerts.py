"""Alerts (issue 13): what happened that members may want to hear about, each member's
choices, and each delivery of an alert to a member on a channel.

portal/services/alerts.py owns these rows: it records an Alert in the same transaction as
the event that raised it, and fans it out (a Notification per member and channel it
reaches, with an outbox job for email and push; webhooks keep their own deliveries).
"""
import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from portal.models.base import Base, new_id, utcnow

# Channels a member hears on ("portal" is the bell).
CHANNEL_PORTAL = "portal"
CHANNEL_EMAIL = "email"
CHANNEL_PUSH = "push"
CHANNELS = (CHANNEL_PORTAL, CHANNEL_EMAIL, CHANNEL_PUSH)

# Every kind of alert, in the words the settings page, the webhook form and the API show.
# The order is the order of the settings page.
ALERT_KINDS = {
    "opened": "A box was opened",
    "wrong_pins": "Several wrong PINs in a row",
    "refused": "A PIN was refused",
    "locked_out": "The keypad locked after wrong PINs",
    "duress": "A duress PIN was used",
    "left_open": "A box was left open",
    "gateway_offline": "A gateway went offline",
    "gateway_online": "A gateway is back online",
    "battery_low": "A battery is low",
    "parcel_delivered": "A parcel was delivered",
    "parcel_collected": "A parcel was collected",
    "pin_expiring": "A PIN is about to expire",
    "delivery_failed": "A change could not reach a box",
    "member_joined": "Someone joined the household",
    "member_left": "Someone left the household",
    "support_visit": "Support looked at the household",
}
# A test a member sends themselves from the settings page: never to webhooks.
TEST_KIND = "test"


class Alert(Base):
    """One thing that happened that may be alerted: never PIN digits or keys."""

    __tablename__ = "alerts"
    __table_args__ = (sa.Index("ix_alerts_account_time", "account_id", "occurred_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("accounts.id", ondelete="CASCADE"))
    # ALERT_KINDS of portal/services/alerts.py: opened, wrong_pins, refused, locked_out, ...
    kind: Mapped[str] = mapped_column(sa.String(32))
    gateway_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("gateways.id", ondelete="SET NULL"))
    mailbox_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("mailboxes.id", ondelete="SET NULL"))
    # Plain words, as the bell, the email and the push show them.
    summary: Mapped[str] = mapped_column(sa.Text)
    details: Mapped[dict] = mapped_column(default=dict)
    # The activity row that raised it, when one did.
    activity_event_id: Mapped[int | None] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"))
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AlertPreference(Base):
    """A choice: alerts of `kind`, for one box (mailbox_id) or all (None), on `channel`,
    on or off. user_id None: the household's default, set by owners, for members who
    have not chosen."""

    __tablename__ = "alert_preferences"
    __table_args__ = (
        sa.UniqueConstraint("account_id", "user_id", "kind", "mailbox_id", "channel",
                            name="uq_alert_preferences_choice"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(32))
    mailbox_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("mailboxes.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(sa.String(16))
    enabled: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Notification(Base):
    """An alert for one member on one channel: the bell's row (read_at), or an email or a
    push on its way (state). One per alert, member and channel: an alert arrives once."""

    __tablename__ = "notifications"
    __table_args__ = (
        sa.UniqueConstraint("alert_id", "user_id", "channel", name="uq_notifications_once"),
        sa.Index("ix_notifications_user_unread", "user_id", "account_id", "channel", "read_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    alert_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(sa.String(16))
    # queued -> sent | held (quiet hours: sent when they end) | failed | skipped (no address,
    # unsubscribed...); the bell's rows are "sent" at once.
    state: Mapped[str] = mapped_column(sa.String(16), default="queued")
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(sa.Text)
    hold_until: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    read_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @classmethod
    def unread_in_bell(cls, user_id, account_id) -> tuple:
        """The conditions of a member's unread bell rows in a household (ids or columns)."""
        return (cls.user_id == user_id, cls.account_id == account_id, cls.channel == CHANNEL_PORTAL,
                cls.read_at.is_(None))
