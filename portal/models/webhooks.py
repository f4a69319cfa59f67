"""Webhooks (issue 13): a household's endpoints (owners add them) and each signed message
sent to one, with every attempt to deliver it.

portal/services/webhooks.py owns these rows; the "webhook.deliver" job
(portal/jobs/handlers/webhooks.py) sends them.
"""
import uuid
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from portal.models.base import Base, new_id, utcnow


class DeliveryState(StrEnum):
    # Waiting for its first attempt (or for a resend's).
    QUEUED = "queued"
    # An attempt failed; another one is planned (next_attempt_at).
    DELIVERING = "delivering"
    # The endpoint answered 2xx: final.
    DELIVERED = "delivered"
    # Can not be sent as things are (the endpoint was disabled or its address is refused).
    FAILED = "failed"
    # Retried for the whole retry window without a 2xx.
    GIVEN_UP = "given_up"


FINAL_STATES = (DeliveryState.DELIVERED, DeliveryState.FAILED, DeliveryState.GIVEN_UP)


class WebhookEndpoint(Base):
    """A URL of the household's that hears about the alert kinds it chose, signed with its
    secret (Standard Webhooks). The secret is only stored encrypted; during a rotation the
    previous one signs too, until previous_secret_until."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(sa.String(2048))
    description: Mapped[str] = mapped_column(sa.String(200), default="")
    # Alert kinds (ALERT_KINDS of portal/services/alerts.py) sent to this endpoint.
    kinds: Mapped[list] = mapped_column(sa.JSON, default=list)
    secret_enc: Mapped[bytes] = mapped_column(sa.LargeBinary)
    previous_secret_enc: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    previous_secret_until: Mapped[datetime | None]
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    """One message to one endpoint: its body is fixed when it is made and its webhook-id
    (message_id) stays the same across retries and resends, so the receiver can drop
    duplicates."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (sa.Index("ix_webhook_deliveries_endpoint_time", "endpoint_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    endpoint_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    alert_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("alerts.id", ondelete="SET NULL"), index=True)
    message_id: Mapped[str] = mapped_column(sa.String(64))
    event_type: Mapped[str] = mapped_column(sa.String(64))
    # The exact JSON text that is signed and sent.
    payload: Mapped[str] = mapped_column(sa.Text)
    state: Mapped[str] = mapped_column(sa.String(16), default=DeliveryState.QUEUED)
    attempts: Mapped[int] = mapped_column(default=0)
    # When the current chain of attempts began (creation, or the last resend): retries stop
    # WEBHOOK_RETRY_WINDOW after it.
    chain_started_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookAttempt(Base):
    """One POST of a delivery: when, the status code (None: no answer), and what came of it."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    account_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("accounts.id", ondelete="CASCADE"))
    delivery_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
                                                   index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None]
    ok: Mapped[bool] = mapped_column(default=False)
    # Plain words: "Delivered", "The endpoint answered 500", "No answer within 5 s"...
    result: Mapped[str] = mapped_column(sa.Text)
    # The first bytes of the endpoint's answer, as text, for the owner debugging it.
    response_snippet: Mapped[str | None] = mapped_column(sa.Text)
