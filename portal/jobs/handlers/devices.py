"""Device jobs: set up and remove devices in StreamIoT, and send commands.

Handlers only translate: a job becomes StreamIoT calls, and what happened is recorded
through the delivery transitions (portal/services/deliveries.py), which own every state.
Every step is safe to run again: things and channels are looked up by their exact name
before one is created, "already connected" and "already deleted" count as done, and the
progress of each step is committed as soon as it is done. No transaction is open while
StreamIoT is asked. All jobs of one gateway share a target, so they run in the order
they were queued (deliveries.job_target).
"""
import contextlib
import uuid

import sqlalchemy as sa

from portal import crypto
from portal.extensions import db
from portal.jobs.errors import PermanentFailure, RetryLater, judge
from portal.jobs.registry import handler
from portal.models import PROTOCOL_SEALED, Account, Command, Gateway, Mailbox, Pin
from portal.services import activity, deliveries, device_link, device_reports, pin_rules, safe_mode
from portal.services.deliveries import CommandState, DeviceState
from portal.streamiot import errors as sie
from portal.streamiot import messages


def _uuid(value) -> uuid.UUID:
    return uuid.UUID(str(value))


def _progress(device, step: str) -> None:
    """Record one finished step and commit it, so a retry starts after it."""
    device.progress = {**(device.progress or {}), step: True}
    db.session.commit()


def _connect(api, channel_id: str, thing_id: str) -> None:
    with contextlib.suppress(sie.Conflict):  # already connected: a retried step
        api.connect([channel_id], [thing_id])


def _find_or_create_thing(api, name: str, metadata: dict) -> str:
    found = api.find_thing(name)
    return found["id"] if found else api.create_thing(name, metadata=metadata)


def _find_or_create_channel(api, name: str, metadata: dict) -> str:
    found = api.find_channel(name)
    return found["id"] if found else api.create_channel(name, metadata=metadata)


def _household(device) -> Account:
    account = db.session.get(Account, device.account_id)
    if account is None or not account.portal_thing_id or not account.portal_thing_key_enc:
        raise RetryLater("waiting for the household's StreamIoT link")
    return account


def _portal_thing_id(account: Account) -> str:
    """The household's portal thing, which _household made sure of (read again here, as
    a commit since may have expired it)."""
    if not account.portal_thing_id:
        raise RetryLater("waiting for the household's StreamIoT link")
    return account.portal_thing_id


# --- gateway set-up ----------------------------------------------------------------------

def _gateway_setup_retrying(job, reason, retry_at) -> None:
    gateway = db.session.get(Gateway, _uuid(job.payload["gateway_id"]))
    if gateway is not None and gateway.status == DeviceState.PROVISIONING:
        gateway.last_error = f"Trying again: {reason}"


def _gateway_setup_gave_up(job, reason) -> None:
    gateway = db.session.get(Gateway, _uuid(job.payload["gateway_id"]))
    if gateway is None or not deliveries.mark_device_failed(Gateway, gateway.id, reason):
        return
    activity.record(
        gateway.account_id,
        kind="delivery.failed",
        summary=f"Setting up gateway “{gateway.name}” failed: {reason}",
        actor_kind="system",
        gateway_id=gateway.id,
    )


@handler(deliveries.JOB_PROVISION_GATEWAY, on_give_up=_gateway_setup_gave_up, on_retry=_gateway_setup_retrying)
def provision_gateway(job, ctx) -> None:
    gateway = db.session.get(Gateway, _uuid(job.payload["gateway_id"]))
    if gateway is None or gateway.status != DeviceState.PROVISIONING:
        return
    account = _household(gateway)
    api = ctx.user_api(account)
    metadata = {"iotlock": "gateway", "gateway_id": str(gateway.id), "account_id": str(account.id)}
    if not gateway.thing_id:
        gateway.thing_id = _find_or_create_thing(api, gateway.thing_name, metadata)
        _progress(gateway, "thing")
    if not gateway.channel_id:
        gateway.channel_id = _find_or_create_channel(api, gateway.channel_name, metadata)
        _progress(gateway, "channel")
    if not (gateway.progress or {}).get("connect"):
        _connect(api, gateway.channel_id, gateway.thing_id)
        _connect(api, gateway.channel_id, _portal_thing_id(account))
        _progress(gateway, "connect")
    if not gateway.thing_key_enc:
        key = api.get_thing(gateway.thing_id)["key"]
        gateway.thing_key_enc = crypto.encrypt(key, table="gateways", column="thing_key_enc", row_id=gateway.id)
        gateway.last_error = None
        _progress(gateway, "key")
    if gateway.last_error:
        gateway.last_error = None
        db.session.commit()


# --- mailbox set-up ----------------------------------------------------------------------

def _mailbox_setup_retrying(job, reason, retry_at) -> None:
    mailbox = db.session.get(Mailbox, _uuid(job.payload["mailbox_id"]))
    if mailbox is not None and mailbox.status == DeviceState.PROVISIONING:
        mailbox.last_error = f"Trying again: {reason}"


def _mailbox_setup_gave_up(job, reason) -> None:
    mailbox = db.session.get(Mailbox, _uuid(job.payload["mailbox_id"]))
    if mailbox is None or mailbox.status != DeviceState.PROVISIONING:
        return
    if not deliveries.mark_device_failed(Mailbox, mailbox.id, reason):
        return
    activity.record(
        mailbox.account_id,
        kind="delivery.failed",
        summary=f"Setting up “{mailbox.name}” failed: {reason}",
        actor_kind="system",
        gateway_id=mailbox.gateway_id,
        mailbox_id=mailbox.id,
    )


def _gateway_ready(gateway: Gateway | None) -> bool:
    return bool(
        gateway is not None
        and gateway.thing_id
        and gateway.channel_id
        and (gateway.progress or {}).get("connect")
        and gateway.status != DeviceState.FAILED
    )


@handler(deliveries.JOB_PROVISION_MAILBOX, on_give_up=_mailbox_setup_gave_up, on_retry=_mailbox_setup_retrying)
def provision_mailbox(job, ctx) -> None:
    mailbox = db.session.get(Mailbox, _uuid(job.payload["mailbox_id"]))
    if mailbox is None or mailbox.status != DeviceState.PROVISIONING:
        return
    gateway = db.session.get(Gateway, mailbox.gateway_id)
    if not _gateway_ready(gateway):
        raise PermanentFailure(
            "Its gateway is not set up in StreamIoT yet; the box goes again when the gateway is retried."
        )
    assert gateway is not None and gateway.thing_id, "_gateway_ready checked the gateway and its thing"
    account = _household(mailbox)
    api = ctx.user_api(account)
    if not mailbox.channel_id:
        metadata = {"iotlock": "mailbox", "mailbox_id": str(mailbox.id), "gateway_id": str(gateway.id)}
        mailbox.channel_id = _find_or_create_channel(api, mailbox.channel_name, metadata)
        _progress(mailbox, "channel")
    if not (mailbox.progress or {}).get("connect"):
        _connect(api, mailbox.channel_id, gateway.thing_id)
        _connect(api, mailbox.channel_id, _portal_thing_id(account))
        mailbox.last_error = None
        _progress(mailbox, "connect")


# --- sending a command -------------------------------------------------------------------

def _send_retrying(job, reason, retry_at) -> None:
    deliveries.note_retry(_uuid(job.payload["command_id"]), job.id, reason, retry_at)


def _send_gave_up(job, reason) -> None:
    deliveries.give_up(_uuid(job.payload["command_id"]), reason, job_id=job.id)


def _box_channel(mailbox: Mailbox) -> str:
    """The box's channel, which send_command made sure of before packing its commands."""
    if not mailbox.channel_id:
        raise PermanentFailure("The box's channel is not set up yet; retry the box.")
    return mailbox.channel_id


def _pack(command: Command, gateway: Gateway, mailbox: Mailbox | None, pin: Pin | None) -> tuple[str, list[dict]]:
    """(channel, pack) of a command, exactly as docs/device-protocol.md has it."""
    g, gc = gateway.thing_id, gateway.channel_id
    if not g or not gc:  # send_command checked _gateway_ready first
        raise PermanentFailure("The gateway is not set up in StreamIoT yet; retry the gateway.")
    action = command.action
    if action in ("CONNECT", "REGISTER"):
        return gc, (messages.connect_gateway(g) if action == "CONNECT" else messages.register_gateway(g))
    if mailbox is None:
        raise PermanentFailure(f"{action} needs its box, which is gone")
    if action == "ADD":
        return gc, messages.add_mailbox(g, mailbox.public_key)
    if action == "Mailbox":
        return gc, messages.register_mailbox(_box_channel(mailbox), mailbox.public_key)
    if action == "DELETE" and command.value:
        # The box got a new key pair: its gateway forgets the old key first.
        return gc, messages.remove_mailbox(g, command.value)
    if action in deliveries.PIN_ACTIONS:
        if pin is None or not pin.digits_enc:
            raise PermanentFailure("The PIN's digits are gone; nothing to send.")
        digits = deliveries.pin_digits(pin)
        # An AUTH carries the PIN's rules; a seed gateway ignores them (the portal's
        # schedule keeps them for it), a sealed box keeps them itself.
        rules = messages.BoxRules(**pin_rules.box_rules(pin)) if action == "AUTH" else None
        if gateway.protocol == PROTOCOL_SEALED:
            # Only the gateway's private key opens it; the platform stores a sealed blob.
            sealed = messages.sealed_pin(gateway.public_key, digits, deliveries.pin_ref(pin))
            if action == "AUTH":
                return _box_channel(mailbox), messages.add_pin_sealed_with_rules(g, sealed, rules)
            return _box_channel(mailbox), messages.remove_pin_sealed(g, sealed)
        if action == "AUTH":
            return _box_channel(mailbox), messages.add_pin_with_rules(g, digits, rules)
        return _box_channel(mailbox), messages.remove_pin(g, digits)
    if action == "UNLOCK":
        if command.expires_at is None:
            raise PermanentFailure("An unlock without a time to live is never sent.")
        return _box_channel(mailbox), messages.unlock(g, deliveries.unlock_deadline(command))
    if action == deliveries.SAFE:
        # The box's settings now (a newer change withdrew this one unless it had left),
        # with this command's version, which the answer echoes.
        if not command.value or not command.value.isdigit():
            raise PermanentFailure("A safe-mode change without its version is never sent.")
        settings = safe_mode.settings_of(mailbox)
        return _box_channel(mailbox), messages.safe_settings(
            g, int(command.value), attempts=settings.attempts, lockouts=settings.lockouts,
            dual_seconds=settings.dual_seconds)
    raise PermanentFailure(f"IoTLock does not send {action} this way")


@handler(deliveries.JOB_SEND, on_give_up=_send_gave_up, on_retry=_send_retrying)
def send_command(job, ctx) -> None:
    command = db.session.get(Command, _uuid(job.payload["command_id"]))
    # Withdrawn, expired, sent, or requeued with a newer job: nothing to do here. A command
    # still "sending" lost its worker in the middle of a publish: it goes again.
    if command is None or command.job_id != job.id or command.state not in (CommandState.QUEUED,
                                                                            CommandState.SENDING):
        return
    if deliveries.expire_if_due(command):
        db.session.commit()
        return
    gateway = db.session.get(Gateway, command.gateway_id)
    mailbox = db.session.get(Mailbox, command.mailbox_id) if command.mailbox_id else None
    pin = db.session.get(Pin, command.pin_id) if command.pin_id else None
    if gateway is None:
        return
    if gateway.status == DeviceState.REMOVING or (mailbox is not None and mailbox.status == DeviceState.REMOVING):
        deliveries.withdraw_for_removal(command.id, "Its device is being removed.")
        db.session.commit()
        return
    account = _household(gateway)
    portal_key = ctx.portal_thing_key(account)
    if not _gateway_ready(gateway):
        raise PermanentFailure("The gateway is not set up in StreamIoT yet; retry the gateway.")
    if command.action in deliveries.MAILBOX_SETUP_ACTIONS and not (
        mailbox and mailbox.channel_id and (mailbox.progress or {}).get("connect")
    ):
        raise PermanentFailure("The box's channel is not set up yet; retry the box.")
    if pin is not None and not pin.digits_enc:
        # Its PIN was withdrawn a moment ago (the withdraw won while this job was starting):
        # the command is settled already, or fails here with the reason; the job is done.
        deliveries.give_up(command.id, "The PIN was removed before this could be sent.", job_id=job.id)
        db.session.commit()
        return
    if command.channel_key == "mailbox" and mailbox is not None and mailbox.status != DeviceState.ACTIVE:
        _wait_for_registration(job, mailbox)
    channel, pack = _pack(command, gateway, mailbox, pin)
    command_id = command.id
    pack = _signed(account, gateway, command_id, channel, pack)
    # From this commit on the message may reach the box: a member can no longer withdraw it.
    if not deliveries.start_sending(command_id, job.id, channel):
        db.session.rollback()
        return  # withdrawn or expired a moment ago
    db.session.commit()
    try:
        ctx.streamiot.publish(channel, portal_key, pack)
    except Exception as exc:
        deliveries.publish_failed(command_id, judge(exc).reason)
        db.session.commit()
        raise
    deliveries.mark_sent(command_id)
    db.session.commit()


def _signed(account: Account, gateway: Gateway, command_id, channel: str, pack: list[dict]) -> list[dict]:
    """A sealed gateway's command with its counter and MAC (docs/device-protocol.md); a
    seed gateway's as it is."""
    key = device_link.link_key(account, gateway, device_link.COMMAND)
    if gateway.protocol != PROTOCOL_SEALED:
        return pack
    if key is None:
        raise PermanentFailure("The household has no link key for its sealed gateways; add the gateway again.")
    return messages.signed(pack, channel, deliveries.counter_for(command_id), key)


def _wait_for_registration(job, mailbox: Mailbox) -> None:
    """PINs and unlocks go out only after the box's Mailbox registration was sent."""
    registration = db.session.scalars(
        sa.select(Command).where(Command.mailbox_id == mailbox.id, Command.action == "Mailbox")
    ).first()
    ahead = (
        registration is not None
        and registration.state in deliveries.PENDING
        and registration.job_id is not None
        and registration.job_id < job.id
    )
    if mailbox.status == DeviceState.PROVISIONING and ahead:
        raise RetryLater("waiting until the box is registered on its gateway", delay=1.0)
    raise PermanentFailure(
        "The box is not registered on its gateway; this goes again when the box's set-up is retried."
    )


# --- removal -------------------------------------------------------------------------------

def _removal_gave_up(model, key):
    def gave_up(job, reason) -> None:
        row = db.session.get(model, _uuid(job.payload[key]))
        if row is None or row.status != DeviceState.REMOVING:
            return
        row.last_error = reason
        activity.record(
            row.account_id,
            kind="delivery.failed",
            summary=f"Removing “{row.name}” is stuck: {reason}",
            actor_kind="system",
            gateway_id=row.id if model is Gateway else row.gateway_id,
            mailbox_id=row.id if model is Mailbox else None,
        )

    return gave_up


def _ignore_missing(call, *args) -> None:
    """Delete or disconnect; "not there" (404) counts as done."""
    with contextlib.suppress(sie.NotFound):
        call(*args)


def _publish_unless_channel_gone(ctx, api, channel_id: str, key: str, pack: list[dict]) -> bool:
    """Publish; False when the channel no longer exists (nobody could hear it anyway)."""
    try:
        ctx.streamiot.publish(channel_id, key, pack)
        return True
    except (sie.ServerError, sie.NotFound):
        try:
            api.get_channel(channel_id)
        except sie.NotFound:
            return False
        raise


def _publish_removal(ctx, api, job, device_filter, action: str, channel_id: str, key: str, pack) -> None:
    """Publish DESTRUCT or DELETE through its command's states (nobody answers it: its
    channels are deleted right after)."""
    command = db.session.scalars(sa.select(Command).where(device_filter, Command.action == action)).first()
    command_id = command.id if command is not None else None
    if command is not None:
        gateway = db.session.get(Gateway, command.gateway_id)
        account = db.session.get(Account, command.account_id)
        if gateway is not None and account is not None:
            pack = _signed(account, gateway, command_id, channel_id, pack)
        deliveries.start_sending(command_id, job.id, channel_id)
    db.session.commit()
    if _publish_unless_channel_gone(ctx, api, channel_id, key, pack) and command_id is not None:
        deliveries.mark_sent(command_id)


def _ids(known: str | None, found: list[dict]) -> list[str]:
    ids = [known] if known else []
    return ids + [item["id"] for item in found if item.get("id") not in ids]


@handler(deliveries.JOB_REMOVE_GATEWAY, on_give_up=_removal_gave_up(Gateway, "gateway_id"))
def remove_gateway(job, ctx) -> None:
    gateway = db.session.get(Gateway, _uuid(job.payload["gateway_id"]))
    if gateway is None or gateway.status != DeviceState.REMOVING:
        return
    account = db.session.get(Account, gateway.account_id)
    boxes = db.session.scalars(sa.select(Mailbox).where(Mailbox.gateway_id == gateway.id)).all()
    channels = [gateway.channel_id] + [b.channel_id for b in boxes]
    if account is not None and account.streamiot_email and account.streamiot_password_enc:
        api = ctx.user_api(account)
        progress = gateway.progress or {}
        if not progress.get("destruct_sent") and gateway.channel_id and progress.get("connect"):
            key = ctx.portal_thing_key(account)
            pack = messages.remove_gateway(gateway.channel_id, gateway.public_key)
            _publish_removal(ctx, api, job, Command.gateway_id == gateway.id, "DESTRUCT", gateway.channel_id, key,
                             pack)
            _progress(gateway, "destruct_sent")
        for box in boxes:
            for channel_id in _ids(box.channel_id, api.find_channels(box.channel_name)):
                _ignore_missing(api.delete_channel, channel_id)
                channels.append(channel_id)
        _progress(gateway, "mailbox_channels_deleted")
        for channel_id in _ids(gateway.channel_id, api.find_channels(gateway.channel_name)):
            _ignore_missing(api.delete_channel, channel_id)
            channels.append(channel_id)
        _progress(gateway, "channel_deleted")
        # A key replacement cut short leaves its new (or its old) thing in the row.
        for thing_id in [t for t in (gateway.new_thing_id, gateway.old_thing_id) if t] + _ids(
            gateway.thing_id, api.find_things(gateway.thing_name)
        ):
            _ignore_missing(api.delete_thing, thing_id)
        _progress(gateway, "thing_deleted")
    # Nothing of it is left in StreamIoT: the rows go (the database cascades to boxes,
    # PINs and commands); the activity log keeps the story.
    device_reports.forget_cursors(channels)
    db.session.execute(sa.delete(Gateway).where(Gateway.id == gateway.id))
    db.session.commit()


@handler(deliveries.JOB_REMOVE_MAILBOX, on_give_up=_removal_gave_up(Mailbox, "mailbox_id"))
def remove_mailbox(job, ctx) -> None:
    mailbox = db.session.get(Mailbox, _uuid(job.payload["mailbox_id"]))
    if mailbox is None or mailbox.status != DeviceState.REMOVING:
        return
    gateway = db.session.get(Gateway, mailbox.gateway_id)
    account = db.session.get(Account, mailbox.account_id)
    channels = [mailbox.channel_id]
    if account is not None and account.streamiot_email and account.streamiot_password_enc:
        api = ctx.user_api(account)
        progress = mailbox.progress or {}
        if not progress.get("delete_sent") and progress.get("add_sent") and _gateway_ready(gateway):
            assert gateway is not None and gateway.thing_id and gateway.channel_id, "_gateway_ready checked them"
            key = ctx.portal_thing_key(account)
            pack = messages.remove_mailbox(gateway.thing_id, mailbox.public_key)
            _publish_removal(ctx, api, job, Command.mailbox_id == mailbox.id, "DELETE", gateway.channel_id, key,
                             pack)
            _progress(mailbox, "delete_sent")
        for channel_id in _ids(mailbox.channel_id, api.find_channels(mailbox.channel_name)):
            for thing_id in (gateway.thing_id if gateway else None, account.portal_thing_id):
                if thing_id:
                    _ignore_missing(api.disconnect, [channel_id], [thing_id])
            _ignore_missing(api.delete_channel, channel_id)
            channels.append(channel_id)
    device_reports.forget_cursors(channels)
    db.session.execute(sa.delete(Mailbox).where(Mailbox.id == mailbox.id))
    db.session.commit()
