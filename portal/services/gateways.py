"""Gateways: add, rename, remove, retry, new key pair, and the device settings download.

Keys are pasted or generated (a generated private half is kept encrypted for the member
who made it until their next settings download, services/key_offers.py); the settings file (it holds
the gateway's StreamIoT key) is for owners only, each download behind the password typed
for it, and every downloader is recorded as a key holder (portal/services/gateway_keys.py).
"""
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from flask import current_app

from portal import crypto
from portal.extensions import db
from portal.models import (
    PROTOCOL_SEALED,
    PROTOCOLS,
    Account,
    Command,
    Gateway,
    Mailbox,
    Membership,
    User,
    utcnow,
)
from portal.services import activity, deliveries, device_link, gateway_keys, key_offers
from portal.services.deliveries import DeviceState
from portal.services.errors import Conflict, ValidationFailed
from portal.services.ports import VIRTUAL_DEVICE_KEYS
from portal.services.reauth import require_password_now
from portal.services.scope import get_scoped
from portal.services.text import refuse_controls

NAME_MAX = 80
KEY_GENERATE = "generate"
KEY_PASTE = "paste"
DEFAULT_PROTOCOL = PROTOCOL_SEALED


# --- small shared checks ----------------------------------------------------------------

def clean_name(name: str | None, *, what: str = "the gateway") -> str:
    refuse_controls(name, "name")
    name = " ".join((name or "").split())
    if not name:
        raise ValidationFailed(f"Give {what} a name.", field="name")
    if len(name) > NAME_MAX:
        raise ValidationFailed(f"Keep the name under {NAME_MAX} characters.", field="name")
    return name


def key_pair_from(key_mode: str, public_key_text: str | None) -> tuple[str, str | None, bool]:
    """(public key base64, private key or None, generated?) from the form's choice."""
    if key_mode == KEY_GENERATE:
        public, private = crypto.generate_keypair()
        return public, private, True
    if key_mode != KEY_PASTE:
        raise ValidationFailed("Choose whether to paste the device's key or let IoTLock make one.", field="key_mode")
    try:
        return crypto.normalize_public_key(public_key_text or ""), None, False
    except crypto.InvalidPublicKey as exc:
        raise ValidationFailed(str(exc), field="public_key") from None


# --- member actions ---------------------------------------------------------------------

def get_gateway(account_id, gateway_id) -> Gateway:
    return get_scoped(Gateway, account_id, gateway_id)


def check_protocol(protocol: str | None) -> str:
    if protocol not in PROTOCOLS:
        raise ValidationFailed("Choose how the gateway talks to IoTLock: sealed, or the first protocol.",
                               field="protocol")
    return protocol


def add_gateway(account_id, actor: User, *, name: str, key_mode: str, public_key: str | None = None,
                protocol: str = PROTOCOL_SEALED):
    """Save the gateway and queue its set-up: StreamIoT thing and channel, then CONNECT and
    REGISTER. Returns (gateway, private key or None); a generated private key is offered to
    the member who added it (services/key_offers.py) and given to the virtual gateway that
    plays the device, if any (its own storage)."""
    name = clean_name(name)
    protocol = check_protocol(protocol)
    public, private, generated = key_pair_from(key_mode, public_key)
    if protocol == PROTOCOL_SEALED:
        device_link.household_public_key(account_id)
    gateway = deliveries.new_gateway(
        id=uuid.uuid4(),
        account_id=account_id,
        name=name,
        protocol=protocol,
        public_key=public,
        key_generated=generated,
        created_by_id=actor.id,
        created_at=utcnow(),
    )
    db.session.flush()
    deliveries.enqueue_device_job(
        deliveries.JOB_PROVISION_GATEWAY, {"gateway_id": str(gateway.id)}, account_id=account_id,
        gateway_id=gateway.id,
    )
    for action in deliveries.GATEWAY_SETUP_ACTIONS:
        deliveries.queue_command(account_id=account_id, gateway_id=gateway.id, action=action, requested_by=actor)
    activity.record(
        account_id,
        kind="gateway.added",
        summary=f"Added gateway “{name}”",
        actor_user=actor,
        gateway_id=gateway.id,
        details={"key": "generated" if generated else "pasted", "protocol": protocol},
    )
    if private:
        key_offers.offer(actor, key_offers.GATEWAY, gateway.id, private)
    db.session.commit()
    if private:
        _give_virtual_device(gateway.id, private)
    return gateway, private


def _give_virtual_device(gateway_id, private_key: str) -> None:
    """Hand a generated private key to the virtual gateway that plays this device, if any."""
    keep = current_app.extensions.get(VIRTUAL_DEVICE_KEYS)
    if keep is not None:
        keep(gateway_id, private_key)


def rename_gateway(account_id, gateway_id, actor: User, name: str) -> Gateway:
    gateway = get_scoped(Gateway, account_id, gateway_id)
    name = clean_name(name)
    if gateway.status == DeviceState.REMOVING:
        raise Conflict("This gateway is being removed.")
    if name != gateway.name:
        old, gateway.name = gateway.name, name
        activity.record(
            account_id,
            kind="gateway.renamed",
            summary=f"Renamed gateway “{old}” to “{name}”",
            actor_user=actor,
            gateway_id=gateway.id,
        )
        db.session.commit()
    return gateway


def remove_gateway(account_id, gateway_id, actor: User) -> Gateway:
    """Mark the gateway and its boxes "removing", withdraw what was not sent yet, and queue
    DESTRUCT followed by the deletion of its StreamIoT channels and thing."""
    gateway = get_scoped(Gateway, account_id, gateway_id)
    if not start_removal(gateway, actor):
        db.session.rollback()
        return get_scoped(Gateway, account_id, gateway_id)  # already being removed
    activity.record(
        account_id,
        kind="gateway.removed",
        summary=f"Removed gateway “{gateway.name}” and its boxes",
        actor_user=actor,
        gateway_id=gateway.id,
    )
    db.session.commit()
    return gateway


def start_removal(gateway: Gateway, actor: User | None) -> bool:
    """The removal of a gateway the caller scoped (the caller commits): False when it is
    already being removed. Also the path of a household closed with its last member's
    account (portal/services/deletion.py)."""
    if not deliveries.start_device_removal(Gateway, gateway.id):
        return False
    deliveries.remove_boxes_of(gateway.id)
    key_offers.forget_devices(key_offers.GATEWAY, [gateway.id])
    key_offers.forget_devices(key_offers.MAILBOX, db.session.scalars(
        sa.select(Mailbox.id).where(Mailbox.gateway_id == gateway.id)))
    deliveries.withdraw_pending_of(gateway_id=gateway.id, reason="The gateway is being removed.")
    _queue_removal(gateway, actor)
    return True


def _queue_removal(gateway: Gateway, actor: User | None) -> None:
    deliveries.queue_removal(
        deliveries.JOB_REMOVE_GATEWAY,
        {"gateway_id": str(gateway.id)},
        account_id=gateway.account_id,
        gateway_id=gateway.id,
        action="DESTRUCT",
        actor=actor,
    )


def retry_gateway(account_id, gateway_id, actor: User) -> Gateway:
    """Run a failed set-up (or a stuck removal) again, from the step it stopped at."""
    gateway = get_scoped(Gateway, account_id, gateway_id)
    if gateway.status == DeviceState.REMOVING:
        if not gateway.last_error:
            raise Conflict("The removal is still running.")
        gateway.last_error = None
        _queue_removal(gateway, actor)
        db.session.commit()
        return gateway
    if not deliveries.retry_device_setup(Gateway, gateway.id):
        db.session.rollback()
        raise Conflict("Only a failed set-up can be retried.")
    deliveries.enqueue_device_job(
        deliveries.JOB_PROVISION_GATEWAY, {"gateway_id": str(gateway.id)}, account_id=account_id,
        gateway_id=gateway.id,
    )
    setup = db.session.scalars(
        sa.select(Command)
        .where(Command.gateway_id == gateway.id, Command.mailbox_id.is_(None),
               Command.action.in_(deliveries.GATEWAY_SETUP_ACTIONS))
        .order_by(Command.created_at)
    ).all()
    # CONNECT and REGISTER go again as a pair, in order, unless the gateway confirmed them.
    gateway.progress = {k: v for k, v in (gateway.progress or {}).items()
                        if k in ("thing", "channel", "connect", "key")}
    deliveries.retry_setup_steps(setup)
    # Boxes that failed because their gateway was not there yet go again behind it.
    for mailbox in db.session.scalars(
        sa.select(Mailbox).where(Mailbox.gateway_id == gateway.id, Mailbox.status == DeviceState.FAILED)
    ).all():
        deliveries.retry_mailbox_setup(mailbox)
    db.session.commit()
    return gateway


def rotate_gateway_key(membership: Membership | None, gateway_id, actor: User) -> tuple[Gateway, str]:
    """A new key pair made by IoTLock (e.g. the first download was lost). The private key
    is offered to the owner who made it (in their next settings download); the device needs
    the new settings file (owners only)."""
    gateway_keys.require_owner(membership, "Only owners can make a new key pair: it goes into the settings file.")
    assert membership is not None
    account_id = membership.account_id
    gateway = get_scoped(Gateway, account_id, gateway_id)
    if gateway.status == DeviceState.REMOVING:
        raise Conflict("This gateway is being removed.")
    public, private = crypto.generate_keypair()
    gateway.public_key = public
    gateway.key_generated = True
    gateway.settings_downloaded_at = None
    activity.record(
        account_id,
        kind="gateway.key_rotated",
        summary=f"Made a new key pair for gateway “{gateway.name}”",
        actor_user=actor,
        gateway_id=gateway.id,
    )
    key_offers.offer(actor, key_offers.GATEWAY, gateway.id, private)
    db.session.commit()
    _give_virtual_device(gateway.id, private)
    return gateway, private


# --- device settings --------------------------------------------------------------------

@dataclass
class SettingsAccess:
    gateway: Gateway
    allowed: bool  # owners only: the file holds the gateway's keys
    ready: bool  # the StreamIoT thing and channel exist, so there is something to download


def settings_access(membership: Membership | None, gateway_id) -> SettingsAccess:
    assert membership is not None, "household_required gave a membership"
    gateway = get_scoped(Gateway, membership.account_id, gateway_id)
    return SettingsAccess(
        gateway=gateway,
        allowed=membership.is_owner,
        ready=bool(gateway.thing_id and gateway.channel_id and gateway.thing_key_enc),
    )


def settings_document(gateway: Gateway, private_key: str | None = None) -> dict:
    """The settings file of the contract (the virtual gateway reads the same shape)."""
    # Only handed out once the gateway is set up in StreamIoT (device_settings checks).
    assert gateway.thing_key_enc is not None, "settings of a gateway without a thing key"
    settings = {
        "streamiot_url": current_app.config["STREAMIOT_DEVICE_URL"],
        "streamiot_reader_url": current_app.config["STREAMIOT_DEVICE_READER_URL"],
        "thing_id": gateway.thing_id,
        "thing_key": crypto.decrypt(gateway.thing_key_enc, table="gateways", column="thing_key_enc", row_id=gateway.id),
        "channel_id": gateway.channel_id,
        "public_key": gateway.public_key,
        # The only publisher whose commands the gateway obeys.
        "portal_thing_id": db.session.scalar(
            sa.select(Account.portal_thing_id).where(Account.id == gateway.account_id)
        ),
    }
    settings["protocol"] = gateway.protocol
    if gateway.protocol == PROTOCOL_SEALED:
        # The household's link key: the gateway derives from it the keys that authenticate
        # every message both ways.
        settings["portal_public_key"] = db.session.scalar(
            sa.select(Account.link_public_key).where(Account.id == gateway.account_id)
        )
    if private_key:
        settings["private_key"] = private_key
    return settings


def device_settings(
    membership: Membership | None, gateway_id, actor: User, *, password: str | None,
) -> tuple[Gateway, dict]:
    """The settings file: owners only, after the password typed for THIS download (no
    earlier check counts); recorded in the activity log and among the key holders. With
    the private key IoTLock made for this downloader, the first time (then it is gone)."""
    gateway_keys.require_owner(membership, "Only owners can download a gateway’s settings: they hold its keys.")
    assert membership is not None
    gateway = get_scoped(Gateway, membership.account_id, gateway_id)
    require_password_now(actor, password, "Enter your password to download the settings.")
    if gateway.status == DeviceState.REMOVING:
        raise Conflict("This gateway is being removed.")
    if not (gateway.thing_id and gateway.channel_id and gateway.thing_key_enc):
        raise Conflict("The settings are ready once the gateway is set up. Try again in a moment.")
    private_key = key_offers.take(actor.id, key_offers.GATEWAY, gateway.id, gateway.public_key)
    settings = settings_document(gateway, private_key)
    now = utcnow()
    gateway.settings_downloaded_at = now
    gateway_keys.record_download(gateway, actor, now)
    activity.record(
        gateway.account_id,
        kind="gateway.settings_viewed",
        summary=f"Downloaded the settings of gateway “{gateway.name}”"
        + (" with its private key" if private_key else ""),
        actor_user=actor,
        gateway_id=gateway.id,
        details={"private_key": bool(private_key)},
    )
    db.session.commit()
    return gateway, settings
