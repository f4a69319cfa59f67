"""Commands to devices and their delivery states, from queued to confirmed, failed or expired.

Queue one with its job, mark what sending and answers did to it (worker side), unlock
now, retry and withdraw, and the words each state is shown with.
"""
import uuid
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from portal import crypto
from portal.extensions import db
from portal.models import Command, Gateway, Job, Mailbox, Pin, User, utcnow
from portal.models.jobs import JOB_FAILED, JOB_QUEUED, JOB_RUNNING
from portal.models.devices import (
    ACTION_CHANNEL,
    CMD_CONFIRMED,
    CMD_EXPIRED,
    CMD_FAILED,
    CMD_QUEUED,
    CMD_SENT,
    CMD_WITHDRAWN,
    DEVICE_ACTIVE,
    DEVICE_FAILED,
    DEVICE_PROVISIONING,
    DEVICE_REMOVING,
    PIN_ACTIVE,
    PIN_ADDING,
    PIN_REMOVED,
    PIN_REMOVING,
)
from portal.services.errors import Conflict
from portal.services.scope import get_scoped

# Job kinds (handlers in portal/jobs/handlers/devices.py).
JOB_SEND = "device.send_command"
JOB_PROVISION_GATEWAY = "device.provision_gateway"
JOB_PROVISION_MAILBOX = "device.provision_mailbox"
JOB_REMOVE_GATEWAY = "device.remove_gateway"
JOB_REMOVE_MAILBOX = "device.remove_mailbox"

# Actions that set a device up; when one fails for good, the device shows "failed".
GATEWAY_SETUP_ACTIONS = ("CONNECT", "REGISTER")
MAILBOX_SETUP_ACTIONS = ("ADD", "Mailbox")


def job_target(gateway_id) -> str:
    """Every job of one gateway shares a target, so they run strictly in the order they
    were queued: CONNECT before REGISTER, ADD before Mailbox, Mailbox before AUTH, and
    DESTRUCT only after everything else of that gateway."""
    return f"gateway:{gateway_id}"


def enqueue_job(kind: str, payload: dict, *, account_id, gateway_id) -> Job:
    from portal.jobs import enqueue

    job = enqueue(kind, payload, account_id=account_id, target=job_target(gateway_id))
    db.session.flush()
    return job


def queue_command(
    *,
    account_id,
    gateway_id,
    action: str,
    mailbox_id=None,
    pin_id=None,
    requested_by: User | None = None,
    expires_at=None,
) -> Command:
    """A new command in state queued, with the job that will send it (caller commits)."""
    command = Command(
        id=uuid.uuid4(),
        account_id=account_id,
        gateway_id=gateway_id,
        mailbox_id=mailbox_id,
        pin_id=pin_id,
        action=action,
        channel_key=ACTION_CHANNEL[action],
        state=CMD_QUEUED,
        requested_by_id=requested_by.id if requested_by else None,
        created_at=utcnow(),
        expires_at=expires_at,
    )
    db.session.add(command)
    job = enqueue_job(JOB_SEND, {"command_id": str(command.id)}, account_id=account_id, gateway_id=gateway_id)
    command.job_id = job.id
    return command


def queue_removal(
    job_kind: str, payload: dict, *, account_id, gateway_id, action: str, mailbox_id=None, actor: User | None = None
) -> Command:
    """Queue a removal job (gateway: DESTRUCT, mailbox: DELETE) and the command whose state
    shows it. Asking again (a retry) reuses the command, re-queued unless already sent."""
    job = enqueue_job(job_kind, payload, account_id=account_id, gateway_id=gateway_id)
    owner = Command.mailbox_id == mailbox_id if mailbox_id else Command.gateway_id == gateway_id
    command = db.session.scalars(sa.select(Command).where(owner, Command.action == action)).first()
    if command is None:
        command = Command(
            account_id=account_id,
            gateway_id=gateway_id,
            mailbox_id=mailbox_id,
            action=action,
            channel_key=ACTION_CHANNEL[action],
            state=CMD_QUEUED,
            requested_by_id=actor.id if actor else None,
            created_at=utcnow(),
        )
        db.session.add(command)
    elif command.state not in (CMD_SENT, CMD_CONFIRMED):
        command.state = CMD_QUEUED
        command.reason = None
    command.job_id = job.id
    return command


def requeue_command(command: Command) -> None:
    """Send a failed command again with a fresh job behind whatever is queued now."""
    command.state = CMD_QUEUED
    command.reason = None
    command.sent_at = None
    command.answered_at = None
    job = enqueue_job(
        JOB_SEND, {"command_id": str(command.id)}, account_id=command.account_id, gateway_id=command.gateway_id
    )
    command.job_id = job.id


# --- what members see -------------------------------------------------------------------

@dataclass(frozen=True)
class Shown:
    """A state as the page shows it: CSS state key, words, optional reason, still moving?"""

    key: str
    label: str
    reason: str | None = None
    live: bool = False


_UNLOCK_WORDS = {
    CMD_QUEUED: ("queued", "Waiting to be sent"),
    CMD_SENT: ("sent", "Sent, waiting for the box"),
    CMD_CONFIRMED: ("opened", "Opened"),
    CMD_FAILED: ("refused", "Refused"),
    CMD_EXPIRED: ("expired", "Expired"),
    CMD_WITHDRAWN: ("withdrawn", "Withdrawn"),
}


def unlock_shown(command: Command) -> Shown:
    key, label = _UNLOCK_WORDS[command.state]
    reason = command.reason
    if command.state == CMD_EXPIRED and not reason:
        reason = "Not answered in time; the box was not opened."
    return Shown(key, label, reason, live=command.state in (CMD_QUEUED, CMD_SENT))


def pin_shown(pin: Pin, command: Command | None) -> Shown:
    """A PIN's delivery state: queued, sent, confirmed on the box, failed (and removal)."""
    state = command.state if command is not None else None
    if pin.status == PIN_ACTIVE:
        return Shown("confirmed", "Confirmed on the box")
    if pin.status == PIN_REMOVED:
        return Shown("removed", "Removed from the box")
    removing = pin.status == PIN_REMOVING
    if state == CMD_FAILED:
        return Shown("failed", "Removal failed" if removing else "Failed", command.reason)
    if state == CMD_SENT:
        return Shown("sent", "Removal sent, waiting for the box" if removing else "Sent, waiting for the box", live=True)
    return Shown("queued" if not removing else "removing", "Removal queued" if removing else "Queued", live=True)


def command_shown(command: Command) -> Shown:
    words = {
        CMD_QUEUED: "Queued",
        CMD_SENT: "Sent, waiting for the device",
        CMD_CONFIRMED: "Confirmed by the device",
        CMD_FAILED: "Failed",
        CMD_EXPIRED: "Expired",
        CMD_WITHDRAWN: "Withdrawn",
    }
    return Shown(command.state, words[command.state], command.reason, live=command.state in (CMD_QUEUED, CMD_SENT))


# --- member actions ---------------------------------------------------------------------

def unlock(account_id, mailbox_id, actor: User) -> Command:
    """Queue UNLOCK with a time to live: never delivered late, it expires instead."""
    from portal.services import activity

    mailbox = get_scoped(Mailbox, account_id, mailbox_id)
    if mailbox.status == DEVICE_REMOVING:
        raise Conflict("This box is being removed.")
    if mailbox.status == DEVICE_FAILED:
        raise Conflict("This box is not set up yet: retry its setup first.")
    ttl = current_app.config["UNLOCK_TTL_SECONDS"]
    command = queue_command(
        account_id=account_id,
        gateway_id=mailbox.gateway_id,
        mailbox_id=mailbox.id,
        action="UNLOCK",
        requested_by=actor,
        expires_at=utcnow() + timedelta(seconds=ttl),
    )
    activity.record(
        account_id,
        kind="unlock.requested",
        summary=f"Asked “{mailbox.name}” to open now",
        actor_user=actor,
        gateway_id=mailbox.gateway_id,
        mailbox_id=mailbox.id,
        details={"command_id": str(command.id)},
    )
    db.session.commit()
    return command


def retry_command(account_id, command_id, actor: User) -> Command:
    """Send a failed PIN change again (an unlock is never resent: it would open late)."""
    command = get_scoped(Command, account_id, command_id)
    if command.state != CMD_FAILED:
        raise Conflict("Only a failed change can be sent again.")
    if command.action == "UNLOCK":
        raise Conflict("An unlock is never sent again; ask for a new one instead.")
    if command.action not in ("AUTH", "UNAUTH"):
        raise Conflict("Retry the set-up of the device instead.")
    pin = _pin_of(command)
    if pin is None or pin.command_id != command.id:
        raise Conflict("A newer change of this PIN replaced this one.")
    mailbox = db.session.get(Mailbox, command.mailbox_id)
    if mailbox is None or mailbox.status in (DEVICE_REMOVING, DEVICE_FAILED):
        raise Conflict("This box is not ready: retry its set-up first.")
    requeue_command(command)
    db.session.commit()
    return command


def withdraw_command(account_id, command_id, actor: User) -> Command:
    """Take back a change that has not reached the box (queued or failed): an added PIN
    disappears, a removed PIN stays on the list, an unlock is dropped."""
    from portal.jobs import cancel
    from portal.services import activity

    command = get_scoped(Command, account_id, command_id)
    if command.state not in (CMD_QUEUED, CMD_FAILED):
        raise Conflict("This change has already been sent to the box and can no longer be withdrawn.")
    if command.action not in ("AUTH", "UNAUTH", "UNLOCK"):
        raise Conflict("Set-up steps cannot be withdrawn; remove the device instead.")
    pin = _pin_of(command)
    if command.action in ("AUTH", "UNAUTH") and (pin is None or pin.command_id != command.id):
        raise Conflict("A newer change of this PIN replaced this one.")
    # Lock the job row (PostgreSQL) so a worker cannot claim it while we withdraw.
    job = db.session.get(Job, command.job_id, with_for_update=True) if command.job_id else None
    if job is not None and job.state == JOB_RUNNING:
        raise Conflict("This change is being sent right now; try again in a moment.")
    command.state = CMD_WITHDRAWN
    command.reason = "Withdrawn before it reached the box."
    command.answered_at = utcnow()
    if job is not None and job.state in (JOB_QUEUED, JOB_FAILED):
        cancel(job, "Withdrawn by a member")
    if pin is not None and command.action == "AUTH":
        _retire_pin(pin)
        summary = f"Withdrew PIN “{pin.label}” before it reached the box"
    elif pin is not None:
        pin.status = PIN_ACTIVE
        summary = f"Kept PIN “{pin.label}”: its removal was withdrawn"
    else:
        summary = "Withdrew an unlock request"
    activity.record(
        account_id,
        kind="pin.removed" if command.action == "AUTH" else ("pin.added" if command.action == "UNAUTH" else "unlock.requested"),
        summary=summary,
        actor_user=actor,
        gateway_id=command.gateway_id,
        mailbox_id=command.mailbox_id,
        details={"command_id": str(command.id), "withdrawn": True},
    )
    db.session.commit()
    return command


def _pin_of(command: Command) -> Pin | None:
    if command.pin_id is None:
        return None
    return db.session.get(Pin, command.pin_id)


def _retire_pin(pin: Pin) -> None:
    """The PIN is no longer on the box: forget its digits; free its digest for reuse."""
    pin.status = PIN_REMOVED
    pin.removed_at = utcnow()
    pin.digits_enc = b""
    pin.digits_digest = f"removed:{pin.id}"


# --- worker side: what sending and answers do to the rows --------------------------------

def load_for_sending(command_id) -> tuple[Command, Gateway, Mailbox | None, Pin | None] | None:
    command = db.session.get(Command, uuid.UUID(str(command_id)))
    if command is None:
        return None
    gateway = db.session.get(Gateway, command.gateway_id)
    mailbox = db.session.get(Mailbox, command.mailbox_id) if command.mailbox_id else None
    pin = db.session.get(Pin, command.pin_id) if command.pin_id else None
    return command, gateway, mailbox, pin


def pin_digits(pin: Pin) -> int:
    return int(crypto.decrypt(pin.digits_enc, table="pins", column="digits_enc", row_id=pin.id))


def unlock_deadline(command: Command) -> int:
    """The deadline an UNLOCK carries on the wire: its expires_at in whole seconds since the
    epoch (rounded down, so the box never opens after the portal stops waiting)."""
    if command.expires_at is None:
        raise ValueError("an unlock without a time to live is never sent")
    return int(command.expires_at.timestamp())


def mark_expired_by_device(command: Command) -> None:
    """The box read the UNLOCK after its deadline, answered Failed "expired" and stayed shut."""
    if command.state in (CMD_CONFIRMED, CMD_WITHDRAWN):
        return
    ttl = current_app.config["UNLOCK_TTL_SECONDS"]
    command.state = CMD_EXPIRED
    command.reason = f"It reached the box after its {ttl}-second time to live, so the box stayed shut."
    command.answered_at = utcnow()


def expire_if_due(command: Command, now=None) -> bool:
    """An UNLOCK past its time to live is expired, never sent (or answered) late."""
    now = now or utcnow()
    if command.expires_at is None or now < command.expires_at:
        return False
    if command.state not in (CMD_QUEUED, CMD_SENT):
        return False
    ttl = current_app.config["UNLOCK_TTL_SECONDS"]
    if command.state == CMD_QUEUED:
        command.reason = f"Not delivered within {ttl} seconds, so it was never sent; the box stayed shut."
    else:
        command.reason = f"The box did not answer within {ttl} seconds."
    command.state = CMD_EXPIRED
    command.answered_at = now
    return True


def mark_sent(command: Command, gateway: Gateway, mailbox: Mailbox | None, channel_id: str) -> None:
    command.state = CMD_SENT
    command.channel_id = channel_id
    command.sent_at = utcnow()
    command.reason = None
    if command.action in GATEWAY_SETUP_ACTIONS:
        gateway.progress = {**(gateway.progress or {}), f"{command.action.lower()}_sent": True}
        if command.action == "REGISTER" and gateway.status == DEVICE_PROVISIONING:
            gateway.status = DEVICE_ACTIVE
            gateway.last_error = None
    elif command.action in MAILBOX_SETUP_ACTIONS and mailbox is not None:
        mailbox.progress = {**(mailbox.progress or {}), f"{command.action.lower()}_sent": True}
        if command.action == "Mailbox" and mailbox.status == DEVICE_PROVISIONING:
            mailbox.status = DEVICE_ACTIVE
            mailbox.last_error = None


def mark_failed(command: Command, reason: str, *, by_device: bool) -> None:
    """A command failed for good: the member sees the reason; set-up steps fail the device."""
    from portal.services import activity

    if command.state in (CMD_CONFIRMED, CMD_WITHDRAWN, CMD_EXPIRED):
        return
    command.state = CMD_FAILED
    command.reason = reason
    command.answered_at = utcnow() if by_device else None
    gateway = db.session.get(Gateway, command.gateway_id)
    mailbox = db.session.get(Mailbox, command.mailbox_id) if command.mailbox_id else None
    pin = db.session.get(Pin, command.pin_id) if command.pin_id else None
    # A set-up step that fails because its device already failed adds nothing new: the
    # device keeps the first reason and the log already has it.
    if command.action in GATEWAY_SETUP_ACTIONS and gateway and gateway.status != DEVICE_REMOVING:
        if gateway.status == DEVICE_FAILED and not by_device:
            return
        gateway.status = DEVICE_FAILED
        gateway.last_error = reason
    if command.action in MAILBOX_SETUP_ACTIONS and mailbox and mailbox.status != DEVICE_REMOVING:
        if mailbox.status == DEVICE_FAILED and not by_device:
            return
        mailbox.status = DEVICE_FAILED
        mailbox.last_error = reason
    activity.record(
        command.account_id,
        kind="delivery.failed",
        summary=_failure_summary(command, gateway, mailbox, pin, by_device),
        actor_kind="box" if by_device else "system",
        actor_label=(gateway.name if gateway else "Gateway") if by_device else "IoTLock",
        gateway_id=command.gateway_id,
        mailbox_id=command.mailbox_id,
        details={"command_id": str(command.id), "action": command.action, "reason": reason},
    )


def _failure_summary(command, gateway, mailbox, pin, by_device) -> str:
    what = {
        "CONNECT": f"Connecting gateway “{gateway.name if gateway else '?'}”",
        "REGISTER": f"Registering gateway “{gateway.name if gateway else '?'}”",
        "ADD": f"Adding “{mailbox.name if mailbox else '?'}” to its gateway",
        "Mailbox": f"Registering “{mailbox.name if mailbox else '?'}” on its gateway",
        "AUTH": f"Adding PIN “{pin.label if pin else '?'}”",
        "UNAUTH": f"Removing PIN “{pin.label if pin else '?'}”",
        "UNLOCK": f"Unlocking “{mailbox.name if mailbox else '?'}”",
        "DELETE": f"Removing “{mailbox.name if mailbox else '?'}”",
        "DESTRUCT": f"Removing gateway “{gateway.name if gateway else '?'}”",
    }.get(command.action, command.action)
    how = "was refused by the box" if by_device else "could not be delivered"
    return f"{what} {how}: {command.reason}"


def mark_confirmed(command: Command) -> None:
    """The device answered Done: the change is on the box."""
    command.state = CMD_CONFIRMED
    command.answered_at = utcnow()
    command.reason = None
    if command.action in MAILBOX_SETUP_ACTIONS and command.mailbox_id:
        mailbox = db.session.get(Mailbox, command.mailbox_id)
        if mailbox is not None:
            mailbox.progress = {**(mailbox.progress or {}), f"{command.action.lower()}_confirmed": True}
            if command.action == "Mailbox" and mailbox.status == DEVICE_PROVISIONING:
                mailbox.status = DEVICE_ACTIVE  # the gateway has it, whatever our records say
    elif command.action in GATEWAY_SETUP_ACTIONS:
        gateway = db.session.get(Gateway, command.gateway_id)
        if gateway is not None:
            gateway.progress = {**(gateway.progress or {}), f"{command.action.lower()}_confirmed": True}
    if command.pin_id is None:
        return
    pin = db.session.get(Pin, command.pin_id)
    if pin is None or pin.command_id != command.id:
        return
    if command.action == "AUTH" and pin.status == PIN_ADDING:
        pin.status = PIN_ACTIVE
    elif command.action == "UNAUTH" and pin.status == PIN_REMOVING:
        _retire_pin(pin)

