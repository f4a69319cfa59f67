"""What members do with a change on its way to a box: unlock now, send again, withdraw.

The states themselves belong to portal/services/deliveries.py; here are the rules a
member sees ("an unlock is never sent again", "already on its way").
"""
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app

from portal.extensions import db
from portal.models import Command, Mailbox, Pin, User, utcnow
from portal.services import activity, deliveries
from portal.services.deliveries import CommandState, DeviceState
from portal.services.errors import Conflict, NotFound
from portal.services.pins import remove_pin
from portal.services.scope import get_scoped


def unlock(account_id, mailbox_id, actor: User) -> Command:
    """Queue UNLOCK with a time to live: never delivered late, it expires instead."""
    mailbox = get_scoped(Mailbox, account_id, mailbox_id)
    if mailbox.status == DeviceState.REMOVING:
        raise Conflict("This box is being removed.")
    if mailbox.status == DeviceState.FAILED:
        raise Conflict("This box is not set up yet: retry its setup first.")
    ttl = current_app.config["UNLOCK_TTL_SECONDS"]
    command = deliveries.queue_command(
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
    if command.state != CommandState.FAILED:
        raise Conflict("Only a failed change can be sent again.")
    if command.action == "UNLOCK":
        raise Conflict("An unlock is never sent again; ask for a new one instead.")
    if command.action not in deliveries.PIN_ACTIONS:
        raise Conflict("Retry the set-up of the device instead.")
    pin = db.session.get(Pin, command.pin_id) if command.pin_id else None
    if pin is None or pin.command_id != command.id:
        raise Conflict("A newer change of this PIN replaced this one.")
    mailbox = db.session.get(Mailbox, command.mailbox_id)
    if mailbox is None or mailbox.status in (DeviceState.REMOVING, DeviceState.FAILED):
        raise Conflict("This box is not ready: retry its set-up first.")
    if not deliveries.requeue(command):
        db.session.rollback()
        raise Conflict("Only a failed change can be sent again.")
    db.session.commit()
    return command


@dataclass(frozen=True)
class Withdrawal:
    """What became of a member's "withdraw": the command, and the words for the member."""

    command: Command
    message: str


ON_ITS_WAY = "Already on its way to the box, so it can't be withdrawn"


def withdraw_command(account_id, command_id, actor: User) -> Withdrawal:
    """Take back a change that never left the portal: an added PIN disappears, a removed
    PIN stays on the list, an unlock is dropped. An add already on its way can't be
    taken back; the PIN is removed after it lands instead (UNAUTH queued behind it)."""
    command = get_scoped(Command, account_id, command_id)
    if command.action not in deliveries.PIN_ACTIONS + ("UNLOCK",):
        raise Conflict("Set-up steps cannot be withdrawn; remove the device instead.")
    if command.state not in (CommandState.QUEUED, CommandState.FAILED, CommandState.SENDING, CommandState.SENT):
        raise Conflict("This change is settled already; there is nothing left to withdraw.")
    pin = db.session.get(Pin, command.pin_id) if command.pin_id else None
    if pin is not None and pin.command_id != command.id:
        raise Conflict("A newer change of this PIN replaced this one.")
    if command.action == "AUTH" and pin is not None:
        remove_pin(account_id, pin.id, actor)
        db.session.refresh(command)
        if command.state == CommandState.WITHDRAWN:
            return Withdrawal(command, "Withdrawn: it will not be sent.")
        return Withdrawal(command, f"{ON_ITS_WAY}; the PIN will be removed from the box right after it lands.")
    if not deliveries.withdraw(command):
        db.session.rollback()
        if command.action == "UNLOCK":
            raise Conflict(f"{ON_ITS_WAY}.")
        raise Conflict(f"{ON_ITS_WAY}: the PIN is being removed.")
    if pin is not None:
        deliveries.keep_pin(pin)
        summary = f"Kept PIN “{pin.label}”: its removal was withdrawn"
        kind = "pin.added"
    else:
        summary = "Withdrew an unlock request"
        kind = "unlock.requested"
    activity.record(
        account_id,
        kind=kind,
        summary=summary,
        actor_user=actor,
        gateway_id=command.gateway_id,
        mailbox_id=command.mailbox_id,
        details={"command_id": str(command.id), "withdrawn": True},
    )
    db.session.commit()
    return Withdrawal(command, "Withdrawn: it will not be sent.")


def get_unlock(account_id, command_id) -> Command:
    """One unlock of the household, as it stands (an unlock past its deadline is expired
    first, so a poll never shows one that can no longer open the box as on its way)."""
    command = get_scoped(Command, account_id, command_id)
    if command.action != "UNLOCK":
        raise NotFound()
    if deliveries.expire_if_due(command):
        db.session.commit()
        db.session.refresh(command)
    return command
