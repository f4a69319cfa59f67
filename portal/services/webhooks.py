"""Webhooks: owners point alerts at their own URLs; each alert goes out as a message signed
per the Standard Webhooks specification (https://www.standardwebhooks.com), retried with
backoff for up to WEBHOOK_RETRY_WINDOW, with every attempt kept for the delivery log.

Addresses are vetted twice against pointing inside a private network: when an owner saves
one (`check_url`), and right before each attempt, whose connection then goes to the very
address that was vetted (portal/jobs/handlers/webhooks.py), so a name that changes its
answer in between (DNS rebinding) can not steer a request inside.
"""
import base64
import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

import sqlalchemy as sa
from flask import current_app

from portal import crypto, egress
from portal.extensions import db
from portal.jobs import outbox
from portal.models import (
    ALERT_KINDS,
    Alert,
    DeliveryState,
    Membership,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    utcnow,
)
from portal.models.webhooks import FINAL_STATES
from portal.services import alert_payload
from portal.services.errors import Conflict, Forbidden, ValidationFailed
from portal.services.scope import get_scoped, scoped

DELIVER = "webhook.deliver"
# The window, not this count, ends the retries (WEBHOOK_RETRY_WINDOW); the count only
# bounds a handler that keeps failing unexpectedly.
MAX_JOB_ATTEMPTS = 60
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
SNIPPET_CHARS = 300

# The alert kinds owners choose from, in the words the form shows.
KINDS = ALERT_KINDS


# --- addresses ---------------------------------------------------------------------------

def check_url(url: str, config=None) -> egress.Target:
    """Vet a webhook URL: https (http only where WEBHOOK_ALLOW_HTTP), no credentials in it,
    and a host whose every resolved address is public. Raises ValidationFailed (field "url")
    with the reason in plain words."""
    config = config or current_app.config
    url = (url or "").strip()
    if not url:
        raise ValidationFailed("Enter the address that should receive the alerts.", field="url")
    if len(url) > 2048:
        raise ValidationFailed("This address is too long (2048 characters at most).", field="url")
    schemes = ("https", "http") if config.get("WEBHOOK_ALLOW_HTTP") else ("https",)
    try:
        return egress.vet(url, schemes=schemes, allowed=tuple(config.get("WEBHOOK_ALLOW_PRIVATE_FOR_TESTS") or ()))
    except egress.NotPublic as refused:
        raise ValidationFailed(refused.message, field="url") from None


# --- secrets and signatures --------------------------------------------------------------

def generate_secret() -> str:
    """A new signing secret: "whsec_" + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def sign(secret: str, message_id: str, timestamp: int, body: str) -> str:
    """One Standard Webhooks signature: "v1," + base64 HMAC-SHA256 over "id.timestamp.body",
    keyed with the base64-decoded part of the secret after "whsec_"."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    digest = hmac.new(key, f"{message_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def _secret(endpoint: WebhookEndpoint, column: str) -> str:
    return crypto.decrypt(getattr(endpoint, column), table=WebhookEndpoint.__tablename__, column=column,
                          row_id=endpoint.id)


def _seal(endpoint: WebhookEndpoint, column: str, secret: str) -> bytes:
    return crypto.encrypt(secret, table=WebhookEndpoint.__tablename__, column=column, row_id=endpoint.id)


def signing_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The secrets that sign now: the current one, and the previous one during its overlap."""
    found = [_secret(endpoint, "secret_enc")]
    if endpoint.previous_secret_enc and endpoint.previous_secret_until and now < endpoint.previous_secret_until:
        found.append(_secret(endpoint, "previous_secret_enc"))
    return found


def headers(endpoint: WebhookEndpoint, delivery: WebhookDelivery, now: datetime) -> dict[str, str]:
    """The headers of one attempt: its timestamp is the attempt's, so each is signed anew."""
    timestamp = int(now.timestamp())
    signatures = " ".join(sign(secret, delivery.message_id, timestamp, delivery.payload)
                          for secret in signing_secrets(endpoint, now))
    return {
        "content-type": "application/json",
        "webhook-id": delivery.message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signatures,
        "user-agent": "IoTLock-Webhooks/1",
    }


# --- what a message says -----------------------------------------------------------------

def alert_data(alert: Alert) -> dict:
    """What an alert says to the outside (portal/services/alert_payload.py)."""
    return alert_payload.payload(alert)


def message_body(alert: Alert) -> str:
    """The JSON text a webhook carries (Standard Webhooks' type, timestamp, data)."""
    return json.dumps(
        {"type": f"alert.{alert.kind}", "timestamp": alert_payload.iso(alert.occurred_at), "data": alert_data(alert)},
        separators=(",", ":"), ensure_ascii=False,
    )


# --- fan-out -----------------------------------------------------------------------------

def _enqueue(delivery: WebhookDelivery, run_after: datetime | None = None) -> None:
    outbox.enqueue(
        DELIVER,
        {"delivery_id": str(delivery.id)},
        account_id=delivery.account_id,
        # One target per delivery: a failing endpoint's retries never hold back the others.
        target=f"webhook-delivery:{delivery.id}",
        run_after=run_after,
        max_attempts=MAX_JOB_ATTEMPTS,
    )


def fan_out(alert: Alert) -> None:
    """In the caller's transaction (no commit): a delivery and a "webhook.deliver" job for
    each enabled endpoint of the household that chose this alert's kind. One query and
    nothing else when the household has none."""
    endpoints = [
        endpoint
        for endpoint in db.session.scalars(
            scoped(WebhookEndpoint, alert.account_id).where(WebhookEndpoint.enabled.is_(True))
        )
        if alert.kind in (endpoint.kinds or [])
    ]
    if not endpoints:
        return
    if alert.id is None:
        alert.id = uuid.uuid4()  # assigned at flush otherwise; the deliveries name it now
    body = message_body(alert)
    now = utcnow()
    for endpoint in endpoints:
        delivery = WebhookDelivery(
            id=uuid.uuid4(), account_id=alert.account_id, endpoint_id=endpoint.id, alert_id=alert.id,
            # Stable for the alert: a receiver hearing it on two endpoints can drop the copy.
            message_id=f"msg_{alert.id.hex}", event_type=f"alert.{alert.kind}", payload=body,
            state=DeliveryState.QUEUED, attempts=0, chain_started_at=now, next_attempt_at=now,
        )
        db.session.add(delivery)
        _enqueue(delivery)


# --- owners' pages -----------------------------------------------------------------------

def _owner(membership: Membership) -> None:
    if not membership.is_owner:
        raise Forbidden("Only owners can manage webhooks.")


def _clean_kinds(kinds) -> list[str]:
    chosen = [kind for kind in KINDS if kind in set(kinds or ())]
    if not chosen:
        raise ValidationFailed("Choose at least one kind of alert to send.", field="kinds")
    return chosen


def list_endpoints(account_id: uuid.UUID) -> list[WebhookEndpoint]:
    return list(db.session.scalars(scoped(WebhookEndpoint, account_id).order_by(WebhookEndpoint.created_at)))


def get_endpoint(membership: Membership, endpoint_id) -> WebhookEndpoint:
    _owner(membership)
    return get_scoped(WebhookEndpoint, membership.account_id, endpoint_id)


def add_endpoint(membership: Membership, *, url: str, description: str, kinds) -> tuple[WebhookEndpoint, str]:
    """Save an endpoint; returns it with its secret, which is shown this once."""
    _owner(membership)
    chosen = _clean_kinds(kinds)
    check_url(url)
    endpoint = WebhookEndpoint(id=uuid.uuid4(), account_id=membership.account_id, url=url.strip(),
                               description=(description or "").strip()[:200], kinds=chosen, enabled=True)
    secret = generate_secret()
    endpoint.secret_enc = _seal(endpoint, "secret_enc", secret)
    db.session.add(endpoint)
    db.session.commit()
    return endpoint, secret


def rotate_secret(membership: Membership, endpoint_id, now: datetime | None = None) -> tuple[WebhookEndpoint, str]:
    """A new secret, shown this once; the one it replaces keeps signing beside it for
    WEBHOOK_ROTATION_OVERLAP, so the receiver can switch without losing a message."""
    endpoint = get_endpoint(membership, endpoint_id)
    now = now or utcnow()
    secret = generate_secret()
    endpoint.previous_secret_enc = _seal(endpoint, "previous_secret_enc", _secret(endpoint, "secret_enc"))
    endpoint.previous_secret_until = now + current_app.config["WEBHOOK_ROTATION_OVERLAP"]
    endpoint.secret_enc = _seal(endpoint, "secret_enc", secret)
    db.session.commit()
    return endpoint, secret


def set_enabled(membership: Membership, endpoint_id, enabled: bool) -> WebhookEndpoint:
    endpoint = get_endpoint(membership, endpoint_id)
    endpoint.enabled = enabled
    db.session.commit()
    return endpoint


def delete_endpoint(membership: Membership, endpoint_id) -> str:
    """Delete an endpoint with its log (their jobs find nothing and end); returns its URL."""
    endpoint = get_endpoint(membership, endpoint_id)
    url = endpoint.url
    db.session.execute(sa.delete(WebhookAttempt).where(
        WebhookAttempt.delivery_id.in_(sa.select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == endpoint.id))
    ))
    db.session.execute(sa.delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id))
    db.session.delete(endpoint)
    db.session.commit()
    return url


@dataclass(frozen=True)
class LogEntry:
    delivery: WebhookDelivery
    attempts: list[WebhookAttempt]


def delivery_log(membership: Membership, endpoint_id, limit: int = 50) -> tuple[WebhookEndpoint, list[LogEntry]]:
    """The endpoint's latest deliveries, newest first, each with its attempts (oldest first)."""
    endpoint = get_endpoint(membership, endpoint_id)
    deliveries = list(db.session.scalars(
        scoped(WebhookDelivery, membership.account_id)
        .where(WebhookDelivery.endpoint_id == endpoint.id)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id)
        .limit(limit)
    ))
    by_delivery: dict[uuid.UUID, list[WebhookAttempt]] = {d.id: [] for d in deliveries}
    if deliveries:
        for attempt in db.session.scalars(
            sa.select(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(list(by_delivery)))
            .order_by(WebhookAttempt.at, WebhookAttempt.id)
        ):
            by_delivery[attempt.delivery_id].append(attempt)
    return endpoint, [LogEntry(d, by_delivery[d.id]) for d in deliveries]


def resend(membership: Membership, delivery_id, now: datetime | None = None) -> WebhookDelivery:
    """Send a finished message again (same webhook-id and body): a new chain of attempts
    with a new retry window."""
    _owner(membership)
    delivery = get_scoped(WebhookDelivery, membership.account_id, delivery_id)
    endpoint = db.session.get(WebhookEndpoint, delivery.endpoint_id)
    if endpoint is None or not endpoint.enabled:
        raise Conflict("Turn the webhook on before sending its messages again.")
    now = now or utcnow()
    if not _transition(delivery.id, FINAL_STATES, state=DeliveryState.QUEUED, chain_started_at=now,
                       next_attempt_at=now, last_error=None):
        raise Conflict("This message is still being sent.")
    _enqueue(delivery, run_after=now)
    db.session.commit()
    return delivery


# --- delivering (the "webhook.deliver" job) ----------------------------------------------

def _transition(delivery_id: uuid.UUID, expected, **values) -> bool:
    """Compare-and-set: move the delivery on only from one of the `expected` states."""
    result = cast(sa.CursorResult, db.session.execute(
        sa.update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.state.in_([str(s) for s in expected]))
        .values(**values)
        .execution_options(synchronize_session="fetch")
    ))
    return result.rowcount == 1


SENDABLE = (DeliveryState.QUEUED, DeliveryState.DELIVERING)


@dataclass(frozen=True)
class Outgoing:
    """One attempt, ready to send: where (vetted), what, signed for `now`."""

    delivery_id: uuid.UUID
    url: str
    body: str
    headers: dict[str, str]


def prepare(delivery_id, now: datetime) -> Outgoing | None:
    """The attempt to make now, or None when there is nothing to send (delivered already,
    given up, endpoint gone or disabled: the delivery then says why)."""
    delivery = db.session.get(WebhookDelivery, uuid.UUID(str(delivery_id)))
    if delivery is None or delivery.state not in SENDABLE:
        return None
    endpoint = db.session.get(WebhookEndpoint, delivery.endpoint_id)
    if endpoint is None or not endpoint.enabled:
        _transition(delivery.id, SENDABLE, state=DeliveryState.FAILED, next_attempt_at=None,
                    last_error="The webhook was turned off before this message could be sent.")
        db.session.commit()
        return None
    return Outgoing(delivery.id, endpoint.url, delivery.payload, headers(endpoint, delivery, now))


def record_attempt(delivery_id: uuid.UUID, now: datetime, *, status_code: int | None, result: str,
                   snippet: str | None) -> float | None:
    """Keep one attempt and move the delivery on; commits. A 2xx delivers it (once: a
    compare-and-set). Otherwise returns the seconds until the next attempt, or None when
    the retry window is over (given up) or the message was settled meanwhile."""
    delivery = db.session.get(WebhookDelivery, delivery_id, populate_existing=True)
    if delivery is None:
        return None
    ok = status_code is not None and 200 <= status_code < 300
    db.session.add(WebhookAttempt(account_id=delivery.account_id, delivery_id=delivery.id, at=now,
                                  status_code=status_code, ok=ok, result=result[:500],
                                  response_snippet=(snippet or None) and snippet[:SNIPPET_CHARS]))
    attempts = delivery.attempts + 1
    if ok:
        _transition(delivery.id, SENDABLE, state=DeliveryState.DELIVERED, attempts=attempts, delivered_at=now,
                    next_attempt_at=None, last_error=None)
        db.session.commit()
        return None
    config = current_app.config
    in_chain = db.session.scalar(
        sa.select(sa.func.count()).select_from(WebhookAttempt)
        .where(WebhookAttempt.delivery_id == delivery.id, WebhookAttempt.at >= delivery.chain_started_at)
    ) or 1
    window_ends = delivery.chain_started_at + config["WEBHOOK_RETRY_WINDOW"]
    if now >= window_ends:
        _transition(delivery.id, SENDABLE, state=DeliveryState.GIVEN_UP, attempts=attempts, next_attempt_at=None,
                    last_error=f"{result} (gave up after retrying for {_hours(config['WEBHOOK_RETRY_WINDOW'])})")
        db.session.commit()
        return None
    delay = min(config["WEBHOOK_RETRY_CAP"], config["WEBHOOK_RETRY_BASE"] * 2 ** min(in_chain - 1, 30))
    # The last attempt goes when the window ends, not later.
    delay = min(delay, (window_ends - now).total_seconds())
    moved = _transition(delivery.id, SENDABLE, state=DeliveryState.DELIVERING, attempts=attempts,
                        next_attempt_at=now + timedelta(seconds=delay), last_error=result[:500])
    db.session.commit()
    return delay if moved else None


def give_up(delivery_id, reason: str) -> None:
    """The job ended without settling the delivery (the outbox gave up on it)."""
    _transition(uuid.UUID(str(delivery_id)), SENDABLE, state=DeliveryState.GIVEN_UP, next_attempt_at=None,
                last_error=reason[:500])


def _hours(window: timedelta) -> str:
    hours = window.total_seconds() / 3600
    return f"{hours:g} h"
