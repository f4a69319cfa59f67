"""Mailboxes on a gateway: add, rename, remove, retry, and the virtual gateway's keypad."""
import uuid

import sqlalchemy as sa
from flask import current_app

from portal import crypto
from portal.extensions import db
from portal.models import Gateway, Mailbox, User, utcnow
from portal.models.devices import MAILBOX_KINDS
from portal.services import activity, deliveries, key_offers, safe_mode
from portal.services.deliveries import DeviceState
from portal.services.errors import Conflict, NotFound, ValidationFailed
from portal.services.gateways import clean_name, key_pair_from
from portal.services.ports import VIRTUAL_DEVICES
from portal.services.reauth import require_recent_password
from portal.services.scope import get_scoped


def get_mailbox(account_id, mailbox_id) -> Mailbox:
    return get_scoped(Mailbox, account_id, mailbox_id)


def add_mailbox(
    account_id, gateway_id, actor: User, *, name: str, kind: str, key_mode: str, public_key: str | None = None
):
    """Save the box and queue its set-up: channel, connections, ADD, then Mailbox.
    Returns (mailbox, private key or None); a generated private key is offered to the
    member who added it (services/key_offers.py)."""
    gateway = get_scoped(Gateway, account_id, gateway_id)
    if gateway.status == DeviceState.REMOVING:
        raise Conflict("This gateway is being removed.")
    name = clean_name(name, what="the box")
    if kind not in MAILBOX_KINDS:
        raise ValidationFailed("Choose what kind of box this is.", field="kind")
    public, private, generated = key_pair_from(key_mode, public_key)
    if public == gateway.public_key:
        raise ValidationFailed("This is the gateway's own key; each box has its own.", field="public_key")
    clash = db.session.scalar(
        sa.select(Mailbox.name).where(
            Mailbox.account_id == account_id,
            Mailbox.gateway_id == gateway.id,
            Mailbox.public_key == public,
            Mailbox.status != DeviceState.REMOVING,
        )
    )
    if clash is not None:
        raise ValidationFailed(f"“{clash}” on this gateway already has this key.", field="public_key")
    mailbox = deliveries.new_mailbox(
        id=uuid.uuid4(),
        account_id=account_id,
        gateway_id=gateway.id,
        name=name,
        kind=kind,
        public_key=public,
        key_generated=generated,
        created_by_id=actor.id,
        created_at=utcnow(),
    )
    db.session.flush()
    _queue_setup(mailbox, actor)
    activity.record(
        account_id,
        kind="mailbox.added",
        summary=f"Added {mailbox.kind_label.lower()} “{name}” to gateway “{gateway.name}”",
        actor_user=actor,
        gateway_id=gateway.id,
        mailbox_id=mailbox.id,
    )
    if private:
        key_offers.offer(actor, key_offers.MAILBOX, mailbox.id, private)
    db.session.commit()
    return mailbox, private


def _queue_setup(mailbox: Mailbox, actor: User | None) -> None:
    deliveries.enqueue_device_job(
        deliveries.JOB_PROVISION_MAILBOX,
        {"mailbox_id": str(mailbox.id)},
        account_id=mailbox.account_id,
        gateway_id=mailbox.gateway_id,
    )
    for action in deliveries.MAILBOX_SETUP_ACTIONS:
        deliveries.queue_command(
            account_id=mailbox.account_id,
            gateway_id=mailbox.gateway_id,
            mailbox_id=mailbox.id,
            action=action,
            requested_by=actor,
        )


def rename_mailbox(account_id, mailbox_id, actor: User, name: str) -> Mailbox:
    mailbox = get_scoped(Mailbox, account_id, mailbox_id)
    name = clean_name(name, what="the box")
    if mailbox.status == DeviceState.REMOVING:
        raise Conflict("This box is being removed.")
    if name != mailbox.name:
        old, mailbox.name = mailbox.name, name
        activity.record(
            account_id,
            kind="mailbox.renamed",
            summary=f"Renamed “{old}” to “{name}”",
            actor_user=actor,
            gateway_id=mailbox.gateway_id,
            mailbox_id=mailbox.id,
        )
        db.session.commit()
    return mailbox


def remove_mailbox(account_id, mailbox_id, actor: User) -> Mailbox:
    """Mark the box "removing", withdraw its unsent changes, queue DELETE, disconnect and
    the deletion of its channel; the row goes once that is done."""
    mailbox = get_scoped(Mailbox, account_id, mailbox_id)
    if not deliveries.start_device_removal(Mailbox, mailbox.id):
        db.session.rollback()
        return get_scoped(Mailbox, account_id, mailbox_id)  # already being removed
    deliveries.withdraw_pending_of(mailbox_id=mailbox.id, reason="The box is being removed.")
    key_offers.forget_devices(key_offers.MAILBOX, [mailbox.id])
    _queue_removal(mailbox, actor)
    activity.record(
        account_id,
        kind="mailbox.removed",
        summary=f"Removed “{mailbox.name}”",
        actor_user=actor,
        gateway_id=mailbox.gateway_id,
        mailbox_id=mailbox.id,
    )
    db.session.commit()
    return mailbox


def _queue_removal(mailbox: Mailbox, actor: User | None) -> None:
    deliveries.queue_removal(
        deliveries.JOB_REMOVE_MAILBOX,
        {"mailbox_id": str(mailbox.id)},
        account_id=mailbox.account_id,
        gateway_id=mailbox.gateway_id,
        action="DELETE",
        mailbox_id=mailbox.id,
        actor=actor,
    )


def retry_mailbox(account_id, mailbox_id, actor: User) -> Mailbox:
    mailbox = get_scoped(Mailbox, account_id, mailbox_id)
    if mailbox.status == DeviceState.REMOVING:
        if not mailbox.last_error:
            raise Conflict("The removal is still running.")
        mailbox.last_error = None
        _queue_removal(mailbox, actor)
        db.session.commit()
        return mailbox
    if mailbox.status != DeviceState.FAILED:
        raise Conflict("Only a failed set-up can be retried.")
    gateway = db.session.get(Gateway, mailbox.gateway_id)
    if gateway is None or gateway.status == DeviceState.FAILED:
        raise Conflict("Its gateway is not set up yet: retry the gateway first.")
    if not deliveries.retry_mailbox_setup(mailbox):
        db.session.rollback()
        raise Conflict("Only a failed set-up can be retried.")
    db.session.commit()
    return mailbox


# --- the virtual gateway's keypad ---------------------------------------------------------

def _virtual_gateway(gateway: Gateway):
    devices = current_app.extensions.get(VIRTUAL_DEVICES)
    return devices(gateway) if devices is not None else None


def press_keypad(account_id, mailbox_id, digits: str) -> str:
    """Type digits on the box's keypad (virtual gateways only): "opened" or "rejected".
    The digits go to the virtual box only; the box reports the outcome like a real one."""
    mailbox = get_scoped(Mailbox, account_id, mailbox_id)
    digits = (digits or "").strip()
    if not digits.isascii() or not digits.isdigit() or not 1 <= len(digits) <= 8:
        raise ValidationFailed("Type up to 8 digits.", field="digits")
    gateway = db.session.get(Gateway, mailbox.gateway_id)
    if gateway is None:
        # Removed since the box was loaded (its boxes go with it): the box is gone too.
        raise NotFound()
    vg = _virtual_gateway(gateway)
    if vg is None:
        raise Conflict("The keypad works with virtual gateways only (VIRTUAL_GATEWAYS=on).")
    try:
        # The box's OPENED/REJECTED report is published by the worker's next virtual-gateway
        # step, not here: a web request never waits on StreamIoT.
        return vg.keypad(mailbox.public_key, digits, publish_now=False)
    except LookupError:
        raise Conflict("The gateway does not know this box yet: wait until it is registered.") from None


def box_snapshot(gateway: Gateway, mailbox: Mailbox) -> dict | None:
    """What the virtual box holds (PIN count, open or closed), or None without one."""
    vg = _virtual_gateway(gateway)
    if vg is None:
        return None
    try:
        snapshot = vg.snapshot()
    except Exception:  # a broken virtual gateway must not break the mailbox page
        current_app.logger.exception("virtual gateway snapshot failed")
        return None
    for box in snapshot.get("mailboxes", []):
        if box.get("public_key") == mailbox.public_key:
            return {"known": True, **box}
    return {"known": False}


# --- the private key IoTLock made for a box --------------------------------------------

def confirm_password_for(account_id, mailbox_id, login_session, user: User, password: str) -> Mailbox:
    """The password form in front of a box's generated private key."""
    mailbox = get_scoped(Mailbox, account_id, mailbox_id)
    require_recent_password(login_session, user, password)
    return mailbox


def new_key_pair(account_id, mailbox_id, actor: User, login_session, *, password=None) -> Mailbox:
    """A new key pair made by IoTLock for a box (a lost key, or one that leaked), after a
    fresh password check. The private key is offered to this member once; the gateway
    forgets the old key and is told the new one, and the box's PINs are sent again."""
    mailbox = get_scoped(Mailbox, account_id, mailbox_id)
    require_recent_password(login_session, actor, password)
    if mailbox.status != DeviceState.ACTIVE:
        raise Conflict("A box gets a new key pair once it is set up (and not while it is being removed).")
    old_key = mailbox.public_key
    public, private = crypto.generate_keypair()
    mailbox.public_key = public
    mailbox.key_generated = True
    db.session.flush()
    if not deliveries.rekey_mailbox(mailbox, old_key, actor):
        db.session.rollback()
        raise Conflict("The box changed a moment ago; look again.")
    # Its safe-mode settings too: the gateway keeps them with the old key.
    safe_mode.send_again(mailbox, actor)
    key_offers.offer(actor, key_offers.MAILBOX, mailbox.id, private)
    activity.record(
        account_id,
        kind="mailbox.key_rotated",
        summary=f"Made a new key pair for “{mailbox.name}”; its gateway is told and its PINs sent again",
        actor_user=actor,
        gateway_id=mailbox.gateway_id,
        mailbox_id=mailbox.id,
    )
    db.session.commit()
    return mailbox


def key_download(account_id, mailbox_id, actor: User, login_session, *, password=None):
    """The box's generated key pair, after a fresh password check; once only, and only for
    the member who made it: its offer (services/key_offers.py) is closed here."""
    mailbox = get_scoped(Mailbox, account_id, mailbox_id)
    require_recent_password(login_session, actor, password)
    private_key = key_offers.take(actor.id, key_offers.MAILBOX, mailbox.id, mailbox.public_key)
    if private_key is None:
        db.session.rollback()
        raise Conflict("The private key was already downloaded or discarded.")
    activity.record(
        account_id,
        kind="mailbox.key_downloaded",
        summary=f"Downloaded the private key of “{mailbox.name}”",
        actor_user=actor,
        gateway_id=mailbox.gateway_id,
        mailbox_id=mailbox.id,
    )
    db.session.commit()
    return mailbox, {"mailbox": mailbox.name, "public_key": mailbox.public_key, "private_key": private_key}

