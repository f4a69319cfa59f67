"""Device jobs: set up and remove devices in StreamIoT, send commands, read the answers.

Every step is safe to run again: things and channels are looked up by their exact name
before one is created, "already connected" and "already deleted" count as done, and the
progress of each step is committed as soon as it is done. All jobs of one gateway share
a target, so they run in the order they were queued (portal.services.commands.job_target).
"""
import logging
import uuid

import sqlalchemy as sa

from portal import crypto
from portal.extensions import db
from portal.jobs.context import get_streamiot
from portal.jobs.errors import PermanentFailure, RetryLater
from portal.jobs.registry import handler, periodic
from portal.models import Account, Command, Gateway, Mailbox, utcnow
from portal.models.devices import (
    CMD_QUEUED,
    CMD_SENT,
    CMD_WITHDRAWN,
    DEVICE_ACTIVE,
    DEVICE_FAILED,
    DEVICE_PROVISIONING,
    DEVICE_REMOVING,
)
from portal.services import commands, replies
from portal.streamiot import errors as sie
from portal.streamiot import messages

log = logging.getLogger(__name__)

READ_PAGE = 200
READ_MAX_PAGES = 20


def _uuid(value) -> uuid.UUID:
    return uuid.UUID(str(value))


def _progress(device, step: str) -> None:
    """Record one finished step and commit it, so a retry starts after it."""
    device.progress = {**(device.progress or {}), step: True}
    db.session.commit()


def _connect(api, channel_id: str, thing_id: str) -> None:
    try:
        api.connect([channel_id], [thing_id])
    except sie.Conflict:
        pass  # already connected: a retried step


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


# --- gateway set-up ----------------------------------------------------------------------

def _gateway_setup_retrying(job, reason, retry_at) -> None:
    gateway = db.session.get(Gateway, _uuid(job.payload["gateway_id"]))
    if gateway is not None and gateway.status == DEVICE_PROVISIONING:
        gateway.last_error = f"Trying again: {reason}"


def _gateway_setup_gave_up(job, reason) -> None:
    from portal.services import activity

    gateway = db.session.get(Gateway, _uuid(job.payload["gateway_id"]))
    if gateway is None or gateway.status != DEVICE_PROVISIONING:
        return
    gateway.status = DEVICE_FAILED
    gateway.last_error = reason
    activity.record(
        gateway.account_id,
        kind="delivery.failed",
        summary=f"Setting up gateway “{gateway.name}” failed: {reason}",
        actor_kind="system",
        gateway_id=gateway.id,
    )


@handler(commands.JOB_PROVISION_GATEWAY, on_give_up=_gateway_setup_gave_up, on_retry=_gateway_setup_retrying)
def provision_gateway(job, ctx) -> None:
    gateway = db.session.get(Gateway, _uuid(job.payload["gateway_id"]))
    if gateway is None or gateway.status != DEVICE_PROVISIONING:
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
        _connect(api, gateway.channel_id, account.portal_thing_id)
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
    if mailbox is not None and mailbox.status == DEVICE_PROVISIONING:
        mailbox.last_error = f"Trying again: {reason}"


def _mailbox_setup_gave_up(job, reason) -> None:
    from portal.services import activity

    mailbox = db.session.get(Mailbox, _uuid(job.payload["mailbox_id"]))
    if mailbox is None or mailbox.status != DEVICE_PROVISIONING:
        return
    mailbox.status = DEVICE_FAILED
    mailbox.last_error = reason
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
        and gateway.status != DEVICE_FAILED
    )


@handler(commands.JOB_PROVISION_MAILBOX, on_give_up=_mailbox_setup_gave_up, on_retry=_mailbox_setup_retrying)
def provision_mailbox(job, ctx) -> None:
    mailbox = db.session.get(Mailbox, _uuid(job.payload["mailbox_id"]))
    if mailbox is None or mailbox.status != DEVICE_PROVISIONING:
        return
    gateway = db.session.get(Gateway, mailbox.gateway_id)
    if not _gateway_ready(gateway):
        raise PermanentFailure("Its gateway is not set up in StreamIoT yet; the box goes again when the gateway is retried.")
    account = _household(mailbox)
    api = ctx.user_api(account)
    if not mailbox.channel_id:
        metadata = {"iotlock": "mailbox", "mailbox_id": str(mailbox.id), "gateway_id": str(gateway.id)}
        mailbox.channel_id = _find_or_create_channel(api, mailbox.channel_name, metadata)
        _progress(mailbox, "channel")
    if not (mailbox.progress or {}).get("connect"):
        _connect(api, mailbox.channel_id, gateway.thing_id)
        _connect(api, mailbox.channel_id, account.portal_thing_id)
        mailbox.last_error = None
        _progress(mailbox, "connect")


# --- sending a command -------------------------------------------------------------------

def _send_retrying(job, reason, retry_at) -> None:
    command = db.session.get(Command, _uuid(job.payload["command_id"]))
    if command is not None and command.state == CMD_QUEUED and command.job_id == job.id:
        command.reason = f"Trying again: {reason}"


def _send_gave_up(job, reason) -> None:
    command = db.session.get(Command, _uuid(job.payload["command_id"]))
    if command is None or command.job_id != job.id or command.state != CMD_QUEUED:
        return
    commands.mark_failed(command, reason, by_device=False)


def _pack(command: Command, gateway: Gateway, mailbox: Mailbox | None, pin) -> tuple[str, list[dict]]:
    """(channel, pack) of a command, exactly as DEVICE_PROTOCOL.md has it."""
    g, gc = gateway.thing_id, gateway.channel_id
    action = command.action
    if action == "CONNECT":
        return gc, messages.connect_gateway(g)
    if action == "REGISTER":
        return gc, messages.register_gateway(g)
    if action == "ADD":
        return gc, messages.add_mailbox(g, mailbox.public_key)
    if action == "Mailbox":
        return gc, messages.register_mailbox(mailbox.channel_id, mailbox.public_key)
    if action == "AUTH":
        return mailbox.channel_id, messages.add_pin(g, commands.pin_digits(pin))
    if action == "UNAUTH":
        return mailbox.channel_id, messages.remove_pin(g, commands.pin_digits(pin))
    if action == "UNLOCK":
        if command.expires_at is None:
            raise PermanentFailure("An unlock without a time to live is never sent.")
        return mailbox.channel_id, messages.unlock(g, commands.unlock_deadline(command))
    raise PermanentFailure(f"IoTLock does not send {action} this way")


def _withdraw(command: Command, why: str) -> None:
    command.state = CMD_WITHDRAWN
    command.reason = why
    command.answered_at = utcnow()
    db.session.commit()


@handler(commands.JOB_SEND, on_give_up=_send_gave_up, on_retry=_send_retrying)
def send_command(job, ctx) -> None:
    loaded = commands.load_for_sending(job.payload["command_id"])
    if loaded is None:
        return
    command, gateway, mailbox, pin = loaded
    # Withdrawn, expired, already sent, or requeued with a newer job: nothing to do here.
    if command.state != CMD_QUEUED or command.job_id != job.id or gateway is None:
        return
    if commands.expire_if_due(command):
        db.session.commit()
        return
    if gateway.status == DEVICE_REMOVING:
        return _withdraw(command, "The gateway is being removed.")
    if mailbox is not None and mailbox.status == DEVICE_REMOVING:
        return _withdraw(command, "The box is being removed.")
    account = _household(gateway)
    portal_key = ctx.portal_thing_key(account)
    if not _gateway_ready(gateway):
        raise PermanentFailure("The gateway is not set up in StreamIoT yet; retry the gateway.")
    if command.action in commands.MAILBOX_SETUP_ACTIONS and not (mailbox and mailbox.channel_id
                                                                 and (mailbox.progress or {}).get("connect")):
        raise PermanentFailure("The box's channel is not set up yet; retry the box.")
    if command.channel_key == "mailbox" and mailbox.status != DEVICE_ACTIVE:
        _wait_for_registration(job, mailbox)
    channel, pack = _pack(command, gateway, mailbox, pin)
    # The last moment to honour the time to live: after this the message is out.
    if commands.expire_if_due(command):
        db.session.commit()
        return
    ctx.streamiot.publish(channel, portal_key, pack)
    commands.mark_sent(command, gateway, mailbox, channel)
    db.session.commit()


def _wait_for_registration(job, mailbox: Mailbox) -> None:
    """PINs and unlocks go out only after the box's Mailbox registration was sent."""
    registration = db.session.scalars(
        sa.select(Command).where(Command.mailbox_id == mailbox.id, Command.action == "Mailbox")
    ).first()
    ahead = (
        registration is not None
        and registration.state in (CMD_QUEUED, CMD_SENT)
        and registration.job_id is not None
        and registration.job_id < job.id
    )
    if mailbox.status == DEVICE_PROVISIONING and ahead:
        raise RetryLater("waiting until the box is registered on its gateway", delay=1.0)
    raise PermanentFailure(
        "The box is not registered on its gateway; this goes again when the box's set-up is retried."
    )


# --- removal -------------------------------------------------------------------------------

def _removal_gave_up(model, key):
    def gave_up(job, reason) -> None:
        from portal.services import activity

        row = db.session.get(model, _uuid(job.payload[key]))
        if row is None or row.status != DEVICE_REMOVING:
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
    try:
        call(*args)
    except sie.NotFound:
        pass


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


def _mark_removal_sent(device_filter, action: str, channel_id: str) -> None:
    command = db.session.scalars(sa.select(Command).where(device_filter, Command.action == action)).first()
    if command is not None and command.state == CMD_QUEUED:
        command.state = CMD_SENT
        command.channel_id = channel_id
        command.sent_at = utcnow()


def _ids(known: str | None, found: list[dict]) -> list[str]:
    ids = [known] if known else []
    return ids + [item["id"] for item in found if item.get("id") not in ids]


@handler(commands.JOB_REMOVE_GATEWAY, on_give_up=_removal_gave_up(Gateway, "gateway_id"))
def remove_gateway(job, ctx) -> None:
    gateway = db.session.get(Gateway, _uuid(job.payload["gateway_id"]))
    if gateway is None or gateway.status != DEVICE_REMOVING:
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
            if _publish_unless_channel_gone(ctx, api, gateway.channel_id, key, pack):
                _mark_removal_sent(Command.gateway_id == gateway.id, "DESTRUCT", gateway.channel_id)
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
        for thing_id in _ids(gateway.thing_id, api.find_things(gateway.thing_name)):
            _ignore_missing(api.delete_thing, thing_id)
        _progress(gateway, "thing_deleted")
    # Nothing of it is left in StreamIoT: the rows go (the database cascades to boxes,
    # PINs and commands); the activity log keeps the story.
    replies.forget_cursors(channels)
    db.session.execute(sa.delete(Gateway).where(Gateway.id == gateway.id))
    db.session.commit()


@handler(commands.JOB_REMOVE_MAILBOX, on_give_up=_removal_gave_up(Mailbox, "mailbox_id"))
def remove_mailbox(job, ctx) -> None:
    mailbox = db.session.get(Mailbox, _uuid(job.payload["mailbox_id"]))
    if mailbox is None or mailbox.status != DEVICE_REMOVING:
        return
    gateway = db.session.get(Gateway, mailbox.gateway_id)
    account = db.session.get(Account, mailbox.account_id)
    channels = [mailbox.channel_id]
    if account is not None and account.streamiot_email and account.streamiot_password_enc:
        api = ctx.user_api(account)
        progress = mailbox.progress or {}
        if not progress.get("delete_sent") and progress.get("add_sent") and _gateway_ready(gateway):
            key = ctx.portal_thing_key(account)
            pack = messages.remove_mailbox(gateway.thing_id, mailbox.public_key)
            if _publish_unless_channel_gone(ctx, api, gateway.channel_id, key, pack):
                _mark_removal_sent(Command.mailbox_id == mailbox.id, "DELETE", gateway.channel_id)
            _progress(mailbox, "delete_sent")
        for channel_id in _ids(mailbox.channel_id, api.find_channels(mailbox.channel_name)):
            for thing_id in (gateway.thing_id if gateway else None, account.portal_thing_id):
                if thing_id:
                    _ignore_missing(api.disconnect, [channel_id], [thing_id])
            _ignore_missing(api.delete_channel, channel_id)
            channels.append(channel_id)
    replies.forget_cursors(channels)
    db.session.execute(sa.delete(Mailbox).where(Mailbox.id == mailbox.id))
    db.session.commit()


# --- reading the devices' answers --------------------------------------------------------

def read_channel(client, target: replies.ChannelToRead) -> list[dict]:
    """Every message of the gateway on this channel since the cursor, newest first.

    Pages shift while new messages arrive (newest first), which only repeats messages;
    the cursor's digests make repeats harmless.
    """
    filters = {"publisher": target.publisher}
    if target.since:
        filters["from"] = target.since
    found, offset = [], 0
    for _ in range(READ_MAX_PAGES):
        page = client.read_messages(target.channel_id, thing_key=target.thing_key, offset=offset,
                                    limit=READ_PAGE, **filters)
        batch = page["messages"]
        found.extend(batch)
        offset += len(batch)
        if not batch or offset >= int(page.get("total") or 0):
            break
    return found


def poll(app, targets) -> int:
    """Read and apply each channel; one unreadable channel does not stop the others."""
    client = get_streamiot(app)
    applied = 0
    for target in targets:
        try:
            found = read_channel(client, target)
        except sie.StreamIoTError as exc:
            log.warning("reading channel %s failed: %s", target.channel_id, exc)
            continue
        try:
            applied += replies.apply_messages(target, found)
        except Exception:  # noqa: BLE001  (one bad channel must not stop the rest)
            db.session.rollback()
            log.exception("applying the messages of channel %s failed", target.channel_id)
    return applied


@periodic("REPLY_POLL_SECONDS")
def poll_waiting_channels(app) -> None:
    """Channels with a command waiting for its answer, every second or two."""
    # Read first, then expire: an answer already in the reader is the box's word.
    poll(app, replies.channels_waiting())
    replies.expire_overdue_unlocks()


@periodic("IDLE_POLL_SECONDS")
def poll_all_channels(app) -> None:
    """Every channel of every linked household, now and then: events and heartbeats."""
    poll(app, replies.channels_of_linked_households())
