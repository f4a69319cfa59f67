"""Delivery: the one owner of every state of commands, PINs, gateways and mailboxes.

Each state is a StrEnum and a transition table says what may follow what. Every
transition is one function here, done as a compare-and-set in SQL (`UPDATE ... WHERE
id = :id AND state IN (:expected)`, rowcount checked), so of two actors (two workers,
two members, a member and a device answer) exactly one wins and the other learns it
lost. No other module writes these columns (tests/unit/test_state_owner.py checks).

A command travels queued -> sending -> sent -> confirmed (or failed, expired,
withdrawn). "sending" is committed *before* the worker hands the message to StreamIoT:
from that moment it may reach the box, so it can no longer be withdrawn, and only from
then on can a device answer match it.
"""
import enum
import math
import secrets
import string
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

import sqlalchemy as sa
from flask import current_app
from sqlalchemy import orm

from portal import crypto
from portal.extensions import db
from portal.jobs import outbox
from portal.models import PLATFORM_DOWN, STREAMIOT, Command, Gateway, Job, Mailbox, Pin, PlatformHealth, User, utcnow
from portal.models.devices import ACTION_CHANNEL
from portal.services import activity, device_link
from portal.services.rows import read
from portal.services.visitors import Actor


class CommandState(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    CONFIRMED = "confirmed"
    FAILED = "failed"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"


class PinState(enum.StrEnum):
    ADDING = "adding"
    ACTIVE = "active"
    # Still on the box until the box confirms the removal.
    REMOVING = "removing"
    # Kept for its label and history; digits wiped, digest freed.
    REMOVED = "removed"
    # Seed gateways only (they cannot keep a PIN's hours): the portal takes the PIN off
    # its box outside its hours (UNAUTH on its way) and puts it back (AUTH: adding again).
    PAUSING = "pausing"
    PAUSED = "paused"


class DeviceState(enum.StrEnum):
    """Lifecycle of a gateway or a box (whether a gateway is online comes from heartbeats)."""

    PROVISIONING = "provisioning"
    ACTIVE = "active"
    FAILED = "failed"
    REMOVING = "removing"


C, P, D = CommandState, PinState, DeviceState

COMMAND_TRANSITIONS: dict[CommandState, frozenset[CommandState]] = {
    # withdrawn only while never handed to StreamIoT (publish_started_at IS NULL); queued
    # again behind a fresh job when its device's set-up is retried
    C.QUEUED: frozenset({C.QUEUED, C.SENDING, C.FAILED, C.EXPIRED, C.WITHDRAWN}),
    # back to queued when the publish failed and will be tried again; confirmed or
    # failed when the box's answer overtakes the publish's own acknowledgement
    C.SENDING: frozenset({C.SENDING, C.SENT, C.QUEUED, C.CONFIRMED, C.FAILED, C.EXPIRED}),
    # queued again: a set-up step sent once more when its device's set-up is retried
    C.SENT: frozenset({C.CONFIRMED, C.FAILED, C.EXPIRED, C.QUEUED}),
    C.FAILED: frozenset({C.QUEUED, C.WITHDRAWN}),
    # an unlock the box answered Done after the portal stopped waiting: it did open
    C.EXPIRED: frozenset({C.CONFIRMED}),
    C.CONFIRMED: frozenset(),
    C.WITHDRAWN: frozenset(),
}
PIN_TRANSITIONS: dict[PinState, frozenset[PinState]] = {
    P.ADDING: frozenset({P.ACTIVE, P.REMOVING, P.REMOVED, P.PAUSING}),
    # back to adding: sent again to its box, which got a new key pair (rekey_mailbox)
    P.ACTIVE: frozenset({P.REMOVING, P.ADDING, P.PAUSING}),
    # back when its removal is withdrawn before it left
    P.REMOVING: frozenset({P.REMOVED, P.ACTIVE, P.ADDING}),
    P.REMOVED: frozenset(),
    # a removal takes over the UNAUTH on its way; back to active when it is withdrawn
    P.PAUSING: frozenset({P.PAUSED, P.REMOVING, P.ACTIVE}),
    # adding again when its hours start; removed at once (it is not on the box)
    P.PAUSED: frozenset({P.ADDING, P.REMOVED}),
}
DEVICE_TRANSITIONS: dict[DeviceState, frozenset[DeviceState]] = {
    D.PROVISIONING: frozenset({D.ACTIVE, D.FAILED, D.REMOVING}),
    # set up again: a box with a new key pair is registered on its gateway anew
    D.ACTIVE: frozenset({D.FAILED, D.REMOVING, D.PROVISIONING}),
    D.FAILED: frozenset({D.PROVISIONING, D.REMOVING}),
    D.REMOVING: frozenset(),
}

PENDING = (C.QUEUED, C.SENDING, C.SENT)
FINAL = (C.CONFIRMED, C.FAILED, C.EXPIRED, C.WITHDRAWN)
LIVE_PIN_STATES = (P.ADDING, P.ACTIVE, P.REMOVING, P.PAUSING, P.PAUSED)
# States in which a device answer may settle a command (see match_answer).
ANSWERABLE = (C.SENDING, C.SENT)

# Job kinds (handlers in portal/jobs/handlers/devices.py).
JOB_SEND = "device.send_command"
JOB_PROVISION_GATEWAY = "device.provision_gateway"
JOB_PROVISION_MAILBOX = "device.provision_mailbox"
JOB_REMOVE_GATEWAY = "device.remove_gateway"
JOB_REMOVE_MAILBOX = "device.remove_mailbox"

# Actions that set a device up; when one fails for good, the device shows "failed".
GATEWAY_SETUP_ACTIONS = ("CONNECT", "REGISTER")
MAILBOX_SETUP_ACTIONS = ("ADD", "Mailbox")
PIN_ACTIONS = ("AUTH", "UNAUTH")
# A box's safe-mode settings (portal/services/safe_mode.py); command.value is their version.
SAFE = "SAFE"
# How far the platform's clock may run behind the portal's: an answer stamped this much
# before the publish started can still be its answer.
CLOCK_SKEW = timedelta(seconds=2)


class IllegalTransition(RuntimeError):
    """A transition the tables do not allow: a bug in the caller, never a race."""


def _check(table: dict, expected: Iterable, new) -> list:
    expected = list(expected)
    for state in expected:
        if new not in table[state]:
            raise IllegalTransition(f"{state} -> {new} is not a transition")
    return expected


def _cas(model, row_id, column, expected: list, new, *conditions, **values) -> bool:
    """UPDATE one row to `new` if its state is still one of `expected`: True if this
    call won. Objects of the row loaded in the session are brought up to date."""
    # An UPDATE's result is a CursorResult (it has rowcount); Session.execute is typed as returning a Result.
    result = cast(
        sa.CursorResult,
        db.session.execute(
            sa.update(model)
            .where(model.id == row_id, column.in_(expected), *conditions)
            .values({column.key: new, **values})
            .execution_options(synchronize_session="fetch")
        ),
    )
    return result.rowcount == 1


def _command_cas(command_id, expected: Iterable[CommandState], new: CommandState, *conditions, **values) -> bool:
    return _cas(Command, command_id, Command.state, _check(COMMAND_TRANSITIONS, expected, new), new,
                *conditions, **values)


def _pin_cas(pin_id, expected: Iterable[PinState], new: PinState, *conditions, **values) -> bool:
    return _cas(Pin, pin_id, Pin.status, _check(PIN_TRANSITIONS, expected, new), new, *conditions, **values)


def _device_cas(model, device_id, expected: Iterable[DeviceState], new: DeviceState, **values) -> bool:
    return _cas(model, device_id, model.status, _check(DEVICE_TRANSITIONS, expected, new), new, **values)


def job_target(gateway_id) -> str:
    """Every job of one gateway shares a target, so they run strictly in the order they
    were queued: CONNECT before REGISTER, ADD before Mailbox, Mailbox before AUTH, an
    AUTH before the UNAUTH of the same PIN, and DESTRUCT after everything else."""
    return f"gateway:{gateway_id}"


def enqueue_device_job(kind: str, payload: dict, *, account_id, gateway_id) -> Job:
    job = outbox.enqueue(kind, payload, account_id=account_id, target=job_target(gateway_id))
    db.session.flush()
    return job


# --- creating rows in their first state ----------------------------------------------

def new_gateway(**fields) -> Gateway:
    gateway = Gateway(status=D.PROVISIONING, progress={}, **fields)
    db.session.add(gateway)
    return gateway


def new_mailbox(**fields) -> Mailbox:
    mailbox = Mailbox(status=D.PROVISIONING, progress={}, **fields)
    db.session.add(mailbox)
    return mailbox


def pin_row(*, paused: bool = False, **fields) -> dict:
    """A new PIN's columns (save_new_pins takes them), on its way to its box; or `paused`:
    made outside its hours for a seed gateway, so it waits off the box (no command) until
    its schedule puts it on."""
    return {"status": P.PAUSED if paused else P.ADDING, **fields}


def queue_command(
    *,
    account_id,
    gateway_id,
    action: str,
    mailbox_id=None,
    pin_id=None,
    requested_by: Actor | None = None,
    expires_at: datetime | None = None,
    command_id: uuid.UUID | None = None,
) -> Command:
    """A new command in state queued, with the job that will send it (the caller commits;
    the commit's flush saves the job first and gives the command its id)."""
    job = outbox.enqueue(JOB_SEND, {}, account_id=account_id, target=job_target(gateway_id))
    command = _new_command(account_id, gateway_id, action, job, mailbox_id=mailbox_id, pin_id=pin_id,
                           requested_by=requested_by, expires_at=expires_at, command_id=command_id)
    job.payload = {"command_id": str(command.id)}
    return command


def _new_command(account_id, gateway_id, action: str, job: Job, *, mailbox_id=None, pin_id=None,
                 requested_by: Actor | None = None, expires_at: datetime | None = None,
                 command_id: uuid.UUID | None = None) -> Command:
    command = Command(**command_row(account_id, gateway_id, action, mailbox_id=mailbox_id, pin_id=pin_id,
                                    requested_by=requested_by, expires_at=expires_at, command_id=command_id),
                      job=job)
    db.session.add(command)
    return command


def command_row(account_id, gateway_id, action: str, *, mailbox_id=None, pin_id=None,
                requested_by: Actor | None = None, expires_at: datetime | None = None,
                command_id: uuid.UUID | None = None) -> dict:
    """A new command's columns, queued, without its job (save_new_pins takes them)."""
    return {
        "id": command_id or uuid.uuid4(),
        "account_id": account_id,
        "gateway_id": gateway_id,
        "mailbox_id": mailbox_id,
        "pin_id": pin_id,
        "action": action,
        "channel_key": ACTION_CHANNEL[action],
        "state": C.QUEUED,
        "requested_by_id": requested_by.id if requested_by else None,
        "created_at": utcnow(),
        "expires_at": expires_at,
    }


# The INSERTs of save_new_pins, built once.
_INSERT_PINS = sa.insert(Pin)
_INSERT_COMMANDS = sa.insert(Command)


def save_new_pins(pins: list[dict], commands: list[dict]) -> list[Pin]:
    """Save new PINs (pin_row's) and the commands that carry them to their boxes
    (command_row's), each command with the job that sends it, now and in the caller's
    transaction: one INSERT a table, without the session's unit of work, which took a
    quarter of an add-PIN request (docs/performance.md, round 18). An IntegrityError (a PIN
    with the same digits saved meanwhile) goes to the caller, who rolls back. The PINs come
    back as the session's objects, as if read after their INSERT: a column left to its
    default loads when first read."""
    if commands:
        job_ids = outbox.insert_jobs([
            outbox.job_row(JOB_SEND, {"command_id": str(command["id"])}, account_id=command["account_id"],
                           target=job_target(command["gateway_id"]))
            for command in commands])
        commands = [{**command, "job_id": job_id} for command, job_id in zip(commands, job_ids, strict=True)]
    connection = db.session.connection()
    connection.execute(_INSERT_PINS, pins)  # before their commands (commands.pin_id)
    if commands:
        connection.execute(_INSERT_COMMANDS, commands)
    made = []
    for row in pins:
        pin = Pin(**row)
        orm.make_transient_to_detached(pin)
        db.session.add(pin)
        made.append(pin)
    return made


def queue_removal(job_kind: str, payload: dict, *, account_id, gateway_id, action: str, mailbox_id=None,
                  actor: User | None = None) -> Command:
    """Queue a removal job (gateway: DESTRUCT, mailbox: DELETE) and the command whose state
    shows it. Asking again (a retry) reuses the command, queued again unless it left."""
    job = enqueue_device_job(job_kind, payload, account_id=account_id, gateway_id=gateway_id)
    owner = Command.mailbox_id == mailbox_id if mailbox_id else Command.gateway_id == gateway_id
    command = db.session.scalars(sa.select(Command).where(owner, Command.action == action)).first()
    if command is None:
        return _new_command(account_id, gateway_id, action, job, mailbox_id=mailbox_id, requested_by=actor)
    if not _command_cas(command.id, [C.FAILED], C.QUEUED, reason=None, job_id=job.id):
        command.job_id = job.id
    return command


# --- commands: the worker's side -----------------------------------------------------

def start_sending(command_id, job_id: int, channel_id: str) -> bool:
    """Claim a queued command for publishing (or publish again one whose worker died in
    the middle). Commit right after: once this wins, the message may reach the box."""
    now = utcnow()
    return _command_cas(
        command_id,
        [C.QUEUED, C.SENDING],
        C.SENDING,
        Command.job_id == job_id,
        channel_id=channel_id,
        publish_started_at=sa.func.coalesce(Command.publish_started_at, now),
        reason=None,
        retry_at=None,
    )


def counter_for(command_id) -> int:
    """The counter a command is authenticated with on a sealed gateway: the next of its
    channel's counter at its first publish, then kept, so a publish repeated after a crash
    is the same command to the gateway (which ignores a counter it has seen). The caller
    commits it with start_sending."""
    command = db.session.get(Command, command_id, populate_existing=True)
    if command is None:
        raise LookupError("no such command")
    if command.counter is not None:
        return command.counter
    model: type[Gateway] | type[Mailbox] = Mailbox if command.channel_key == "mailbox" else Gateway
    device_id = command.mailbox_id if model is Mailbox else command.gateway_id
    counter = device_link.next_command_counter(model, device_id)
    db.session.execute(
        sa.update(Command).where(Command.id == command_id, Command.counter.is_(None)).values(counter=counter)
        .execution_options(synchronize_session="fetch")
    )
    return counter


def mark_sent(command_id) -> bool:
    """StreamIoT took the message. (False: the answer already settled it, or it expired.)"""
    won = _command_cas(command_id, [C.SENDING], C.SENT, sent_at=utcnow())
    if won:
        _setup_progress(db.session.get(Command, command_id), "sent")
    return won


def publish_failed(command_id, reason: str) -> bool:
    """The publish failed and will be tried again: queued, with the reason shown."""
    return _command_cas(command_id, [C.SENDING], C.QUEUED, reason=f"Trying again: {reason}")


def note_retry(command_id, job_id: int, reason: str, retry_at: datetime) -> None:
    """Keep why a queued command waits (for support: the platform's words) and when it is
    tried next (members see "not delivered yet; trying again in 8 s"). Not a state change."""
    db.session.execute(
        sa.update(Command)
        .where(Command.id == command_id, Command.job_id == job_id, Command.state == C.QUEUED)
        .values(reason=f"Trying again: {reason}", retry_at=retry_at)
        .execution_options(synchronize_session="fetch")
    )


def give_up(command_id, reason: str, *, job_id: int | None = None) -> bool:
    """The command cannot be delivered: failed, with the reason (set-up steps fail the device)."""
    conditions = [Command.job_id == job_id] if job_id is not None else []
    if not _command_cas(command_id, [C.QUEUED, C.SENDING], C.FAILED, *conditions, reason=reason):
        return False
    _after_failure(db.session.get(Command, command_id), reason, by_device=False)
    return True


def withdraw_for_removal(command_id, reason: str) -> bool:
    """The device is being removed: a command that has not left yet is withdrawn."""
    return _command_cas(command_id, [C.QUEUED], C.WITHDRAWN, reason=reason, answered_at=utcnow())


def withdraw_pending_of(*, gateway_id=None, mailbox_id=None, reason: str) -> None:
    """Everything queued or failed for a device being removed (its channels go with it,
    so nothing can arrive later): withdrawn."""
    device = Command.mailbox_id == mailbox_id if mailbox_id else Command.gateway_id == gateway_id
    expected = _check(COMMAND_TRANSITIONS, [C.QUEUED, C.FAILED], C.WITHDRAWN)
    db.session.execute(
        sa.update(Command)
        .where(device, Command.state.in_(expected), Command.action.not_in(("DESTRUCT", "DELETE")))
        .values(state=C.WITHDRAWN, reason=reason, answered_at=utcnow())
        .execution_options(synchronize_session="fetch")
    )


# --- commands: the device's answers ----------------------------------------------------

def answer_candidates(*, gateway_id, mailbox_id, action: str, received_at: datetime,
                      echoing: sa.ColumnElement[bool] | None = None) -> list[Command]:
    """Commands a device answer may settle: same device and record name, handed to
    StreamIoT before the answer was received, and still waiting (an unlock the portal
    stopped waiting for, too), narrowed by `echoing` (the value the answer carries, as an
    indexed condition). Settled commands (failed, confirmed, withdrawn) are never
    candidates. Oldest first."""
    waiting: sa.ColumnElement[bool] = Command.state.in_(ANSWERABLE)
    if action == "UNLOCK":
        waiting = sa.or_(waiting, Command.state == C.EXPIRED)
    stmt = sa.select(Command).where(
        Command.gateway_id == gateway_id,
        Command.action == action,
        waiting,
        Command.publish_started_at.is_not(None),
        Command.publish_started_at <= received_at + CLOCK_SKEW,
    )
    if echoing is not None:
        stmt = stmt.where(echoing)
    if mailbox_id is not None:  # answers on a box's channel; the gateway channel's may be about a box too
        stmt = stmt.where(Command.mailbox_id == mailbox_id)
    return list(db.session.scalars(stmt.order_by(Command.created_at, Command.id)))


def confirm(command: Command, *, late: bool = False) -> bool:
    """The device answered Done: the change is on the box."""
    expected = [C.SENDING, C.SENT] + ([C.EXPIRED] if command.action == "UNLOCK" else [])
    reason = "The box opened late, after the request had expired." if late else None
    if not _command_cas(command.id, expected, C.CONFIRMED, Command.publish_started_at.is_not(None),
                        answered_at=utcnow(), reason=reason):
        return False
    _setup_progress(command, "confirmed")
    if command.action == "Mailbox" and command.mailbox_id:
        _device_cas(Mailbox, command.mailbox_id, [D.PROVISIONING], D.ACTIVE, last_error=None)
    if command.pin_id is not None:
        if command.action == "AUTH":
            _pin_cas(command.pin_id, [P.ADDING], P.ACTIVE, Pin.command_id == command.id)
        elif command.action == "UNAUTH" and not pause_done(command.pin_id, command.id):
            retire_pin(command.pin_id, Pin.command_id == command.id)
    return True


def refuse(command: Command, reason: str) -> bool:
    """The device answered Failed with its reason."""
    if not _command_cas(command.id, [C.SENDING, C.SENT], C.FAILED, answered_at=utcnow(), reason=reason):
        return False
    _after_failure(command, reason, by_device=True)
    return True


def expired_on_device(command: Command) -> bool:
    """The box read the UNLOCK after its deadline, answered Failed "expired", stayed shut."""
    ttl = current_app.config["UNLOCK_TTL_SECONDS"]
    reason = f"It reached the box after its {ttl}-second time to live, so the box stayed shut."
    if _command_cas(command.id, [C.SENDING, C.SENT], C.EXPIRED, answered_at=utcnow(), reason=reason):
        return True
    # The portal had stopped waiting already: the box's word replaces its guess (no new state).
    # An UPDATE's result is a CursorResult (it has rowcount); Session.execute is typed as returning a Result.
    result = cast(
        sa.CursorResult,
        db.session.execute(
            sa.update(Command).where(Command.id == command.id, Command.state == C.EXPIRED)
            .values(reason=reason, answered_at=utcnow()).execution_options(synchronize_session="fetch")
        ),
    )
    return result.rowcount == 1


def confirm_waiting_unlock(mailbox_id) -> bool:
    """A box reported "opened remotely": if the Done of its unlock got lost, this says the same."""
    waiting = db.session.scalars(
        sa.select(Command)
        .where(Command.mailbox_id == mailbox_id, Command.action == "UNLOCK", Command.state == C.SENT)
        .order_by(Command.created_at)
    ).first()
    return waiting is not None and confirm(waiting)


def expire_if_due(command: Command, now: datetime | None = None) -> bool:
    """An UNLOCK past its time to live is expired, never sent (or answered) late."""
    now = now or utcnow()
    if command.expires_at is None or now < command.expires_at or command.state not in PENDING:
        return False
    ttl = current_app.config["UNLOCK_TTL_SECONDS"]
    if command.state == C.QUEUED:
        reason = f"Not delivered within {ttl} seconds, so it was never sent; the box stayed shut."
    else:
        reason = f"The box did not answer within {ttl} seconds."
    return _command_cas(command.id, [C(command.state)], C.EXPIRED, answered_at=now, reason=reason)


def expire_overdue_unlocks(now: datetime | None = None) -> int:
    """Unlocks past their time to live: expired, whether still queued or unanswered."""
    now = now or utcnow()
    overdue = db.session.scalars(
        sa.select(Command).where(
            Command.expires_at.is_not(None), Command.expires_at <= now, Command.state.in_(PENDING)
        )
    ).all()
    expired = sum(1 for command in overdue if expire_if_due(command, now))
    db.session.commit()
    return expired


def unlock_deadline(command: Command) -> int:
    """The deadline an UNLOCK carries on the wire: its expires_at in whole seconds since the
    epoch (rounded down, so the box never opens after the portal stops waiting)."""
    if command.expires_at is None:
        raise ValueError("an unlock without a time to live is never sent")
    return int(command.expires_at.timestamp())


def _setup_progress(command: Command | None, what: str) -> None:
    """Set-up steps leave their mark on the device's progress (the page ticks them off);
    a gateway counts as set up once REGISTER went out, a box once its Mailbox did."""
    if command is None:
        return
    step = f"{command.action.lower()}_{what}"
    if command.action in GATEWAY_SETUP_ACTIONS:
        gateway = db.session.get(Gateway, command.gateway_id)
        if gateway is not None:
            gateway.progress = {**(gateway.progress or {}), step: True}
            if command.action == "REGISTER" and what == "sent":
                _device_cas(Gateway, gateway.id, [D.PROVISIONING], D.ACTIVE, last_error=None)
    elif command.action in MAILBOX_SETUP_ACTIONS and command.mailbox_id:
        mailbox = db.session.get(Mailbox, command.mailbox_id)
        if mailbox is not None:
            mailbox.progress = {**(mailbox.progress or {}), step: True}
            if command.action == "Mailbox" and what == "sent":
                _device_cas(Mailbox, mailbox.id, [D.PROVISIONING], D.ACTIVE, last_error=None)


def _after_failure(command: Command | None, reason: str, *, by_device: bool) -> None:
    """A failed set-up step fails its device (which keeps its first reason); the log says so."""
    if command is None:
        return
    gateway = db.session.get(Gateway, command.gateway_id)
    mailbox = db.session.get(Mailbox, command.mailbox_id) if command.mailbox_id else None
    pin = db.session.get(Pin, command.pin_id) if command.pin_id else None
    device_failed = None
    if command.action in GATEWAY_SETUP_ACTIONS and gateway is not None:
        device_failed = mark_device_failed(Gateway, gateway.id, reason)
    elif command.action in MAILBOX_SETUP_ACTIONS and mailbox is not None:
        device_failed = mark_device_failed(Mailbox, mailbox.id, reason)
    if device_failed is False and not by_device:
        return  # its device had already failed: nothing new to tell
    what = {
        "CONNECT": f"Connecting gateway “{gateway.name if gateway else '?'}”",
        "REGISTER": f"Registering gateway “{gateway.name if gateway else '?'}”",
        "ADD": f"Adding “{mailbox.name if mailbox else '?'}” to its gateway",
        "Mailbox": f"Registering “{mailbox.name if mailbox else '?'}” on its gateway",
        "AUTH": f"Adding PIN “{pin.label if pin else '?'}”",
        "UNAUTH": f"Removing PIN “{pin.label if pin else '?'}”",
        "UNLOCK": f"Unlocking “{mailbox.name if mailbox else '?'}”",
        SAFE: f"Safe mode for “{mailbox.name if mailbox else '?'}”",
        "DELETE": f"Removing “{mailbox.name if mailbox else '?'}”",
        "DESTRUCT": f"Removing gateway “{gateway.name if gateway else '?'}”",
    }.get(command.action, command.action)
    how = "was refused by the box" if by_device else "could not be delivered"
    activity.record(
        command.account_id,
        kind="delivery.failed",
        summary=f"{what} {how}: {reason}",
        actor_kind="box" if by_device else "system",
        actor_label=(gateway.name if gateway else "Gateway") if by_device else "IoTLock",
        gateway_id=command.gateway_id,
        mailbox_id=command.mailbox_id,
        details={"command_id": str(command.id), "action": command.action, "reason": reason},
    )


# --- commands: the member's side -------------------------------------------------------

def _not_on_its_way():
    """Never handed to StreamIoT, or refused by the box itself: either way not on the box."""
    return sa.or_(
        Command.publish_started_at.is_(None),
        sa.and_(Command.state == C.FAILED, Command.answered_at.is_not(None)),
    )


def withdraw(command: Command, reason: str = "Withdrawn before it reached the box.") -> bool:
    """Take back a command that is not on its way to the box (never handed to StreamIoT, or
    refused by the box); its job is cancelled. False when it may still reach the box (or
    is settled): then nothing changed."""
    if not _command_cas(command.id, [C.QUEUED, C.FAILED], C.WITHDRAWN, _not_on_its_way(),
                        reason=reason, answered_at=utcnow()):
        return False
    if command.job_id is not None:
        # A job already running finds its command withdrawn and does nothing.
        outbox.cancel(command.job_id, reason)
    return True


def requeue(command: Command, expected: Iterable[CommandState] = (C.FAILED,)) -> bool:
    """Send a command again with a fresh job behind whatever is queued now (a job it had
    finds itself replaced and does nothing)."""
    job = enqueue_device_job(JOB_SEND, {"command_id": str(command.id)}, account_id=command.account_id,
                             gateway_id=command.gateway_id)
    return _command_cas(command.id, expected, C.QUEUED, reason=None, retry_at=None, sent_at=None,
                        answered_at=None, job_id=job.id)


def requeue_with_its_job(command: Command) -> bool:
    """Support's requeue: the failed command's own job goes back to the queue with fresh
    attempts, and the command to queued; both compare-and-set, so two staff can't both."""
    if command.job_id is None or not outbox.requeue(command.job_id):
        return False
    return _command_cas(command.id, [C.FAILED], C.QUEUED, reason=None, retry_at=None, sent_at=None,
                        answered_at=None)


def retry_mailbox_setup(mailbox: Mailbox) -> bool:
    """Set a failed box up again, then send its PIN changes that were waiting for it: its
    set-up job first, then ADD and Mailbox in protocol order (sent again when they were
    never answered: set-up steps are idempotent on the device), then the PIN and safe-mode
    changes that failed or wait. False when the box had not failed (any more)."""
    if not retry_device_setup(Mailbox, mailbox.id):
        return False
    mailbox.progress = {k: v for k, v in (mailbox.progress or {}).items() if k in ("channel", "connect")}
    enqueue_device_job(JOB_PROVISION_MAILBOX, {"mailbox_id": str(mailbox.id)}, account_id=mailbox.account_id,
                       gateway_id=mailbox.gateway_id)
    waiting = db.session.scalars(
        sa.select(Command)
        .where(Command.mailbox_id == mailbox.id, Command.action.in_(MAILBOX_SETUP_ACTIONS + PIN_ACTIONS + (SAFE,)))
        .order_by(Command.created_at)
    ).all()
    setup = sorted((c for c in waiting if c.action in MAILBOX_SETUP_ACTIONS),
                   key=lambda c: MAILBOX_SETUP_ACTIONS.index(c.action))
    retry_setup_steps(setup)
    for command in waiting:
        if command.action in PIN_ACTIONS + (SAFE,) and command.state in (C.FAILED, C.QUEUED):
            requeue(command, [C(command.state)])
    return True


def rekey_mailbox(mailbox: Mailbox, old_key: str, actor: User | None) -> bool:
    """A box got a new key pair (its row holds the new public key already): its gateway
    forgets the old key (DELETE carrying it), learns the new one (ADD, Mailbox) and is sent
    the box's PINs again, all in order behind whatever is queued. False unless the box was
    set up (active). The caller commits."""
    if not _device_cas(Mailbox, mailbox.id, [D.ACTIVE], D.PROVISIONING, last_error=None):
        return False
    mailbox.progress = {k: v for k, v in (mailbox.progress or {}).items() if k in ("channel", "connect")}
    def again(action: str, pin_id=None) -> Command:
        return queue_command(account_id=mailbox.account_id, gateway_id=mailbox.gateway_id, mailbox_id=mailbox.id,
                             pin_id=pin_id, action=action, requested_by=actor)

    again("DELETE").value = old_key
    for action in MAILBOX_SETUP_ACTIONS:
        again(action)
    pins = db.session.scalars(
        sa.select(Pin).where(Pin.mailbox_id == mailbox.id, Pin.status.in_((P.ACTIVE, P.ADDING)))
        .order_by(Pin.created_at)
    ).all()
    for pin in pins:
        if pin.status == P.ACTIVE and not _pin_cas(pin.id, [P.ACTIVE], P.ADDING):
            continue
        auth = again("AUTH", pin.id)
        db.session.execute(
            sa.update(Pin).where(Pin.id == pin.id).values(command_id=auth.id)
            .execution_options(synchronize_session="fetch")
        )
    return True


def retry_setup_steps(commands: Iterable[Command]) -> None:
    """A device's set-up steps go again, in order, unless the device confirmed them."""
    for command in commands:
        if command.state in (C.FAILED, C.QUEUED, C.SENT):
            requeue(command, [C(command.state)])


# --- PINs ------------------------------------------------------------------------------

REF_ALPHABET = string.ascii_letters + string.digits


def new_pin_ref() -> str:
    """8 random letters and digits (47 bits): how a sealed box names a PIN in its reports."""
    return "".join(secrets.choice(REF_ALPHABET) for _ in range(8))


def pin_ref(pin: Pin) -> str:
    """The PIN's reference, given now if it has none (a PIN older than the sealed level);
    set once, so every command of the PIN carries the same one. The caller commits."""
    if not pin.ref:
        db.session.execute(
            sa.update(Pin).where(Pin.id == pin.id, Pin.ref.is_(None)).values(ref=new_pin_ref())
            .execution_options(synchronize_session="fetch")
        )
        db.session.refresh(pin, ["ref"])
    assert pin.ref, "set just now"
    return pin.ref


def pin_digits(pin: Pin) -> int:
    return int(crypto.decrypt(pin.digits_enc, table="pins", column="digits_enc", row_id=pin.id))


def activate_pin(pin_id, command_id) -> bool:
    return _pin_cas(pin_id, [P.ADDING], P.ACTIVE, Pin.command_id == command_id)


def start_pin_removal(pin_id, command_id: uuid.UUID) -> bool:
    """Mark the PIN as being removed by `command_id` (queued next by the caller). False
    when another member got there first: their removal is the one."""
    return _pin_cas(pin_id, [P.ACTIVE, P.ADDING], P.REMOVING, command_id=command_id)


def end_pin(pin_id, command_id: uuid.UUID, ended: str) -> bool:
    """An active PIN past its end or its last use is taken off its box by the portal
    (`ended`: "expired" or "used up"); `command_id` is the UNAUTH the caller queues next."""
    return _pin_cas(pin_id, [P.ACTIVE], P.REMOVING, command_id=command_id, ended=ended)


def _wipe(pin_id, expected: list[PinState], *conditions, **values) -> bool:
    return _pin_cas(pin_id, expected, P.REMOVED, *conditions, removed_at=utcnow(), digits_enc=b"",
                    digits_digest=f"removed:{pin_id}", **values)


def retire_pin(pin_id, *conditions) -> bool:
    """The PIN is no longer on the box: forget its digits, free its digest for reuse."""
    return _wipe(pin_id, [P.ADDING, P.REMOVING], *conditions)


def retire_paused_pin(pin_id, *, ended: str | None = None) -> bool:
    """A paused PIN is not on its box: removing it (or its end) needs no command."""
    return _wipe(pin_id, [P.PAUSED], **({"ended": ended} if ended else {}))


# Seed gateways keep no hours: the portal takes a PIN off outside them and puts it back.

def pause_pin(pin_id, command_id: uuid.UUID) -> bool:
    """Outside its hours: the PIN comes off its box by `command_id` (an UNAUTH the caller
    queues next). False when something else changed it first."""
    return _pin_cas(pin_id, [P.ACTIVE, P.ADDING], P.PAUSING, command_id=command_id)


def pause_done(pin_id, command_id) -> bool:
    """The box confirmed the UNAUTH of a pause: the PIN waits off the box."""
    return _pin_cas(pin_id, [P.PAUSING], P.PAUSED, Pin.command_id == command_id)


def resume_pin(pin_id, command_id: uuid.UUID) -> bool:
    """Its hours start: the paused PIN goes back on by `command_id` (an AUTH the caller
    queues next)."""
    return _pin_cas(pin_id, [P.PAUSED], P.ADDING, command_id=command_id)


def take_over_pause(pin_id) -> bool:
    """A removal while the PIN is coming off for its hours: the UNAUTH on its way is the
    removal (the box confirming it removes the PIN)."""
    return _pin_cas(pin_id, [P.PAUSING], P.REMOVING)


def keep_pin(pin: Pin) -> bool:
    """A removal (or a pause) was withdrawn: the PIN is back to what its add reached. The add
    is read locked, as it stands once a confirmation being committed lands: read unlocked,
    an add confirmed meanwhile was seen still on its way and the PIN left adding for good
    (the confirmation's own move to active expects adding and found removing)."""
    auth = db.session.scalars(
        sa.select(Command).where(Command.pin_id == pin.id, Command.action == "AUTH")
        .order_by(Command.created_at.desc()).limit(1).with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if pin.status == P.PAUSING:
        return _pin_cas(pin.id, [P.PAUSING], P.ACTIVE, command_id=auth.id if auth else pin.command_id)
    if auth is not None and auth.state != C.CONFIRMED:
        return _pin_cas(pin.id, [P.REMOVING], P.ADDING, command_id=auth.id)
    return _pin_cas(pin.id, [P.REMOVING], P.ACTIVE, command_id=auth.id if auth else pin.command_id)


# --- gateways and boxes -------------------------------------------------------------------

def start_device_removal(model, device_id) -> bool:
    return _device_cas(model, device_id, [D.PROVISIONING, D.ACTIVE, D.FAILED], D.REMOVING, last_error=None)


def remove_boxes_of(gateway_id) -> None:
    """The boxes of a gateway being removed go with it."""
    expected = _check(DEVICE_TRANSITIONS, [D.PROVISIONING, D.ACTIVE, D.FAILED], D.REMOVING)
    db.session.execute(
        sa.update(Mailbox).where(Mailbox.gateway_id == gateway_id, Mailbox.status.in_(expected))
        .values(status=D.REMOVING).execution_options(synchronize_session="fetch")
    )


def mark_device_failed(model, device_id, reason: str) -> bool:
    return _device_cas(model, device_id, [D.PROVISIONING, D.ACTIVE], D.FAILED, last_error=reason)


def retry_device_setup(model, device_id) -> bool:
    return _device_cas(model, device_id, [D.FAILED], D.PROVISIONING, last_error=None)


# --- what members see -----------------------------------------------------------------

# Read on every device page: two columns, the statement built once.
_PLATFORM_HEALTH = sa.select(PlatformHealth.state, PlatformHealth.next_probe_at).where(
    PlatformHealth.name == STREAMIOT)
# The same two columns, for statements that read them beside their own (a box's live version).
PLATFORM_STATE = sa.select(PlatformHealth.state).where(PlatformHealth.name == STREAMIOT)
PLATFORM_NEXT_TRY = sa.select(PlatformHealth.next_probe_at).where(PlatformHealth.name == STREAMIOT)


def platform_waiting(now: datetime | None = None, *, staff: bool = False) -> str | None:
    """Why every queued change waits while StreamIoT can't be reached, and when the next try
    is (portal/jobs/platform.py keeps the row): None while it is up. One query. Households
    read "the device service"; staff read StreamIoT's name."""
    health = read(_PLATFORM_HEALTH).first()
    if health is None:
        return None
    return waiting_words(health.state, health.next_probe_at, now or utcnow(), staff=staff)


def waiting_words(state: str | None, next_probe_at: datetime | None, now: datetime, *,
                  staff: bool = False) -> str | None:
    """platform_waiting's words from its row's two columns, read by the caller."""
    if state != PLATFORM_DOWN:
        return None
    who = "StreamIoT" if staff else "The device service"
    return f"{who} can't be reached; {next_try_words(next_probe_at, now)}"


def next_try_words(when: datetime | None, now: datetime) -> str:
    """"trying again in 4 s", counted at render from the stored time so it stays honest."""
    seconds = math.ceil((when - now).total_seconds()) if when is not None else 0
    if seconds <= 0:
        return "trying again now"
    if seconds < 120:
        return f"trying again in {seconds} s"
    return f"trying again in {math.ceil(seconds / 60)} min"


@dataclass(frozen=True)
class Shown:
    """A state as a page shows it: CSS state key, words, optional reason, still moving?"""

    key: str
    label: str
    reason: str | None = None
    live: bool = False


_UNLOCK_WORDS = {
    C.QUEUED: ("queued", "Waiting to be sent"),
    C.SENDING: ("sent", "Being sent to the box"),
    C.SENT: ("sent", "Sent, waiting for the box"),
    C.CONFIRMED: ("opened", "Opened"),
    C.FAILED: ("refused", "Refused"),
    C.EXPIRED: ("expired", "Expired"),
    C.WITHDRAWN: ("withdrawn", "Withdrawn"),
}


def queued_reason(command: Command, waiting: str | None = None, now: datetime | None = None) -> str | None:
    """Why a queued command waits, in household words: StreamIoT can't be reached (`waiting`,
    platform_waiting), or its last attempt failed and it is tried again soon (the platform's
    own words stay in command.reason, for support's trace)."""
    if waiting:
        return waiting
    if command.retry_at is not None:
        return f"Not delivered yet; {next_try_words(command.retry_at, now or utcnow())}"
    return None


def unlock_shown(command: Command, waiting: str | None = None) -> Shown:
    """`waiting` (platform_waiting) is why a queued change waits, when StreamIoT is down."""
    key, label = _UNLOCK_WORDS[C(command.state)]
    reason = command.reason
    if command.state == C.QUEUED:
        reason = queued_reason(command, waiting)
    if command.state == C.EXPIRED and not reason:
        reason = "Not answered in time; the box was not opened."
    return Shown(key, label, reason, live=command.state in PENDING)


def pin_shown(pin: Pin, command: Command | None, waiting: str | None = None) -> Shown:
    """A PIN's delivery state: queued, sent, confirmed on the box, failed (and removal);
    `waiting` (platform_waiting) is why a queued change waits, when StreamIoT is down."""
    state = command.state if command is not None else None
    if pin.status == P.ACTIVE:
        return Shown("confirmed", "Confirmed on the box")
    if pin.status == P.REMOVED:
        return Shown("removed", "Removed from the box")
    if pin.status == P.PAUSED:
        return Shown("paused", "Off the box outside its hours")
    if pin.status == P.PAUSING:
        if state == C.FAILED:
            return Shown("failed", "Taking it off for its hours failed", command.reason if command else None)
        return Shown("pausing", "Being taken off the box outside its hours", live=True)
    removing = pin.status == P.REMOVING
    if state == C.FAILED:
        return Shown("failed", "Removal failed" if removing else "Failed", command.reason if command else None)
    if state in (C.SENDING, C.SENT):
        return Shown("sent", "Removal sent, waiting for the box" if removing else "Sent, waiting for the box",
                     live=True)
    reason = queued_reason(command, waiting) if command is not None and state == C.QUEUED else None
    return Shown("removing" if removing else "queued", "Removal queued" if removing else "Queued", reason, live=True)


_COMMAND_WORDS = {
    C.QUEUED: "Queued",
    C.SENDING: "Being sent",
    C.SENT: "Sent, waiting for the device",
    C.CONFIRMED: "Confirmed by the device",
    C.FAILED: "Failed",
    C.EXPIRED: "Expired",
    C.WITHDRAWN: "Withdrawn",
}


def command_shown(command: Command, waiting: str | None = None) -> Shown:
    key = C.SENT.value if command.state == C.SENDING else command.state
    reason = queued_reason(command, waiting) if command.state == C.QUEUED else command.reason
    return Shown(key, _COMMAND_WORDS[C(command.state)], reason, live=command.state in PENDING)


def gateway_shown(gateway: Gateway, now: datetime | None = None, waiting: str | None = None) -> Shown:
    now = now or utcnow()
    lifecycle = _lifecycle_shown(gateway, waiting)
    if lifecycle is not None:
        return lifecycle
    if gateway.last_heartbeat_at is None:
        return Shown("waiting", "Waiting for the device", live=True)
    if now < offline_from(gateway.last_heartbeat_at):
        return Shown("online", "Online")
    return Shown("offline", "Offline")


def offline_from(heard: datetime) -> datetime:
    """The first moment a gateway last heard at `heard` reads offline: it is online while no
    more than the heartbeat window has passed (a polled part's version ends then)."""
    return heard + timedelta(seconds=current_app.config["HEARTBEAT_WINDOW_SECONDS"], microseconds=1)


def _lifecycle_shown(device: Gateway | Mailbox, waiting: str | None = None) -> Shown | None:
    """Removing, failed or setting up, in words; None once the device is active. `waiting`
    (platform_waiting) is why a set-up or removal in progress waits, when StreamIoT is down."""
    if device.status == D.REMOVING:
        if device.last_error:
            return Shown("failed", "Removal stuck", device.last_error)
        return Shown("removing", "Removing", waiting, live=True)
    if device.status == D.FAILED:
        return Shown("failed", "Set-up failed", device.last_error)
    if device.status == D.PROVISIONING:
        return Shown("provisioning", "Setting up", waiting or device.last_error, live=True)
    return None


def mailbox_shown(mailbox: Mailbox, waiting: str | None = None) -> Shown:
    lifecycle = _lifecycle_shown(mailbox, waiting)
    if lifecycle is not None:
        return lifecycle
    if (mailbox.progress or {}).get("mailbox_confirmed"):
        return Shown("active", "Ready")
    return Shown("sent", "Waiting for the gateway to confirm", live=True)


def can_withdraw(command: Command | None) -> bool:
    """Whether a member may still take this change back (it never left the portal)."""
    return (
        command is not None
        and command.state in (C.QUEUED, C.FAILED)
        and (command.publish_started_at is None or (command.state == C.FAILED and command.answered_at is not None))
        and command.action in PIN_ACTIONS + ("UNLOCK",)
    )
