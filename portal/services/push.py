"""Web Push (issue 13): members' browsers subscribe (RFC 8030 push services), and alerts are
sent to them encrypted (RFC 8291, aes128gcm) and signed by this portal's VAPID key (RFC 8292)
through pywebpush. A subscription the push service says is gone (404/410) is removed.

A push service's address comes from a browser, so it is vetted like a webhook's: public
addresses only, when the browser subscribes and again before each send, whose connection
goes to the address vetted (portal/egress.py)."""
import base64
import json
import uuid
from collections.abc import Collection
from typing import Any
from urllib.parse import urlsplit

import requests
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import current_app
from py_vapid import Vapid
from pywebpush import WebPushException, webpush
from sqlalchemy.exc import IntegrityError

from portal import egress
from portal.extensions import db
from portal.models import Alert, Notification, PushSubscription, User, utcnow
from portal.services import alert_payload
from portal.services.errors import NotFound, ValidationFailed

# Statuses of a push service meaning "this subscription is no more" (RFC 8030 section 7.3).
GONE_STATUSES = (404, 410)
_MAX_ENDPOINT = 2048


class PushError(Exception):
    """Sending an alert did not (fully) work; `reason` in plain words, without a secret."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Undeliverable(PushError):
    """No browser of the member took the alert, and trying again will not change that."""


class NoDevice(Undeliverable):
    """The member has no browser (left) that takes push alerts: nothing to send to."""


class TryLater(PushError):
    """A push service asked to come back (429, 5xx, no answer). `delivered` names the
    browsers reached so far, so a later try sends to the others only (an alert arrives once
    on each browser); `delay`: the push service's Retry-After, in seconds."""

    def __init__(self, reason: str, delivered: list[str], delay: float | None = None):
        super().__init__(reason)
        self.delivered = delivered
        self.delay = delay


# --- the VAPID key ---------------------------------------------------------------------------

def new_vapid_key() -> str:
    """A new VAPID private key: base64url (unpadded) of a P-256 private scalar's 32 bytes."""
    key = ec.generate_private_key(ec.SECP256R1())
    return _b64url(key.private_numbers().private_value.to_bytes(32, "big"))


def enabled() -> bool:
    """Whether this portal can send push alerts (it has a VAPID key)."""
    return bool(current_app.config.get("VAPID_PRIVATE_KEY"))


def _vapid() -> Vapid:
    raw = current_app.config.get("VAPID_PRIVATE_KEY")
    if not raw:
        raise Undeliverable("Push alerts are off on this portal (no VAPID_PRIVATE_KEY)")
    return Vapid.from_raw(raw.strip().encode())


def application_server_key() -> str | None:
    """The VAPID public key as browsers take it (applicationServerKey): base64url of the
    uncompressed P-256 point. None when push is off."""
    if not enabled():
        return None
    point = _vapid().public_key.public_bytes(serialization.Encoding.X962,
                                             serialization.PublicFormat.UncompressedPoint)
    return _b64url(point)


# --- subscriptions ---------------------------------------------------------------------------

def subscribe(user: User, subscription: Any, user_agent: str | None = None) -> PushSubscription:
    """Save what the browser's PushManager.subscribe() gave ({"endpoint", "keys": {"p256dh",
    "auth"}}) for `user`, and commit. Subscribing again from the same browser updates its row;
    a browser that another user of it had subscribed now gets this user's alerts only."""
    endpoint, p256dh, auth = _checked(subscription)
    row = db.session.scalar(sa.select(PushSubscription).where(PushSubscription.endpoint == endpoint))
    if row is None:
        row = PushSubscription(endpoint=endpoint, user_id=user.id, p256dh=p256dh, auth=auth,
                               label=device_label(user_agent))
        db.session.add(row)
    else:
        row.user_id, row.p256dh, row.auth = user.id, p256dh, auth
        row.label = device_label(user_agent)
    try:
        db.session.commit()
    except IntegrityError:
        # The same browser subscribed twice at once: the other request saved it.
        db.session.rollback()
        row = db.session.scalars(sa.select(PushSubscription).where(PushSubscription.endpoint == endpoint)).one()
    return row


def unsubscribe(user: User, endpoint: str) -> bool:
    """Forget `user`'s subscription at `endpoint` (the browser turned alerts off); commits.
    False when the user has none there."""
    return _delete(sa.and_(PushSubscription.user_id == user.id, PushSubscription.endpoint == str(endpoint)))


def remove(user: User, subscription_id: uuid.UUID | str) -> None:
    """Remove one of `user`'s devices from the list; NotFound for another user's (or none)."""
    try:
        wanted = uuid.UUID(str(subscription_id))
    except ValueError:
        raise NotFound() from None
    if not _delete(sa.and_(PushSubscription.user_id == user.id, PushSubscription.id == wanted)):
        raise NotFound()


def subscriptions_of(user: User) -> list[PushSubscription]:
    """The user's browsers that get push alerts, oldest first."""
    return list(db.session.scalars(
        sa.select(PushSubscription).where(PushSubscription.user_id == user.id)
        .order_by(PushSubscription.created_at, PushSubscription.id)
    ))


def has_subscription(user_id: uuid.UUID) -> bool:
    """Whether the user has a browser to push alerts to (the alerts fan-out asks)."""
    return db.session.scalar(
        sa.select(PushSubscription.id).where(PushSubscription.user_id == user_id).limit(1)
    ) is not None


def device_label(user_agent: str | None) -> str:
    """"Firefox on Android": the browser and system a User-Agent names, in plain words."""
    ua = user_agent or ""
    browser = next((name for token, name in (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"),
                                             ("Chrome/", "Chrome"), ("Safari/", "Safari")) if token in ua),
                   "A browser")
    system = next((name for token, name in (("Android", "Android"), ("iPhone", "iPhone"), ("iPad", "iPad"),
                                            ("Windows", "Windows"), ("Mac OS X", "macOS"), ("CrOS", "ChromeOS"),
                                            ("Linux", "Linux")) if token in ua), None)
    return f"{browser} on {system}" if system else browser


def _delete(condition) -> bool:
    result = db.session.execute(sa.delete(PushSubscription).where(condition)
                                .execution_options(synchronize_session="fetch"))
    db.session.commit()
    return bool(getattr(result, "rowcount", 0))


def _vet(endpoint: str) -> egress.Target:
    config = current_app.config
    schemes = ("https",) if config.get("ENV_NAME") == "production" else ("https", "http")
    return egress.vet(endpoint, schemes=schemes, allowed=tuple(config.get("PUSH_ALLOW_PRIVATE_FOR_TESTS") or ()))


def _checked(subscription: Any) -> tuple[str, str, str]:
    """(endpoint, p256dh, auth) of a browser's subscription, or ValidationFailed."""
    if not isinstance(subscription, dict) or not isinstance(subscription.get("keys"), dict):
        raise ValidationFailed("This is not a push subscription from a browser.")
    endpoint, keys = subscription.get("endpoint"), subscription["keys"]
    p256dh, auth = keys.get("p256dh"), keys.get("auth")
    if not isinstance(endpoint, str) or not isinstance(p256dh, str) or not isinstance(auth, str):
        raise ValidationFailed("This is not a push subscription from a browser.")
    if len(endpoint) > _MAX_ENDPOINT or any(c.isspace() for c in endpoint):
        raise ValidationFailed("The browser's push service address is not one the portal can use.")
    try:
        _vet(endpoint)
    except egress.NotPublic:
        raise ValidationFailed("The browser's push service address is not one the portal can use.") from None
    point, secret = _b64url_decode(p256dh), _b64url_decode(auth)
    if point is None or len(point) != 65 or point[0] != 4 or secret is None or len(secret) != 16:
        raise ValidationFailed("The browser's push keys are not valid.")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        raise ValidationFailed("The browser's push keys are not valid.") from None
    return endpoint, _b64url(point), _b64url(secret)


# --- sending ---------------------------------------------------------------------------------

def send(notification: Notification, *, skip: Collection[str] = ()) -> None:
    """Push `notification`'s alert to each of its member's browsers (but those in `skip`,
    reached by an earlier attempt), and commit what was learnt: browsers gone (404/410) are
    removed, the others' last use noted. Raises TryLater when a push service asked to come
    back (429, 5xx, no answer), NoDevice when the member has no browser left, Undeliverable
    when no browser took it. A browser refusing it otherwise (another 4xx) is skipped."""
    vapid = _vapid()
    alert = db.session.get(Alert, notification.alert_id)
    if alert is None:
        raise Undeliverable("The alert no longer exists")
    subscriptions = list(db.session.scalars(
        sa.select(PushSubscription).where(PushSubscription.user_id == notification.user_id)
        .order_by(PushSubscription.created_at, PushSubscription.id)
    ))
    data = json.dumps(alert_payload.payload(alert), separators=(",", ":"))
    config = current_app.config
    delivered: list[str] = list(skip)
    gone = refused = 0
    retry: list[str] = []
    delay: float | None = None
    late = f"the push service did not answer within {config['PUSH_TIMEOUT']:g} s"
    for subscription in subscriptions:
        if str(subscription.id) in skip:
            continue
        try:
            target = _vet(subscription.endpoint)
        except egress.NotPublic:
            refused += 1  # its name now points inside: never sent there
            continue
        session = egress.Session(target, float(config["PUSH_TIMEOUT"]))
        parts = urlsplit(subscription.endpoint)
        try:
            webpush(
                {"endpoint": egress.pinned_url(target),
                 "keys": {"p256dh": subscription.p256dh, "auth": subscription.auth}},
                data=data,
                vapid_private_key=vapid,
                # The audience is the push service's own origin, not the address connected to.
                vapid_claims={"sub": config["VAPID_SUBJECT"], "aud": f"{parts.scheme}://{parts.netloc}"},
                ttl=int(config["PUSH_TTL_SECONDS"]),
                timeout=float(config["PUSH_TIMEOUT"]),
                headers={"Urgency": "high" if alert.kind == "duress" else "normal", "Host": egress.host_header(target)},
                requests_session=session,
            )
        except WebPushException as exc:
            status = exc.response.status_code if exc.response is not None else None
            if status in GONE_STATUSES:
                db.session.delete(subscription)
                gone += 1
            elif status is None or status == 429 or status >= 500:
                retry.append(f"the push service answered {status}" if status else "the push service failed")
                delay = _seconds(exc.response.headers.get("Retry-After")) if exc.response is not None else None
            else:
                refused += 1
        except requests.RequestException as exc:
            retry.append(late if session.timed_out else f"the push service could not be reached ({type(exc).__name__})")
        else:
            if session.timed_out:  # shut mid-answer: what arrived is not an answer
                retry.append(late)
            else:
                subscription.last_used_at = utcnow()
                delivered.append(str(subscription.id))
        finally:
            session.close()
    db.session.commit()
    if retry:
        raise TryLater(f"Push not delivered yet: {retry[0]}", delivered, delay)
    if delivered:
        return
    if refused:
        raise Undeliverable("The push service refused the alert for every browser of the member")
    raise NoDevice("No browser of the member takes push alerts" + (" any more" if gone else ""))


def _seconds(value: str | None) -> float | None:
    return float(value) if value and value.strip().isdigit() else None


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except (ValueError, TypeError):
        return None
