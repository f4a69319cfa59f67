"""PINs of a mailbox: add (refusing guessable ones), remove, and show behind a password check.

States move only through portal/services/deliveries.py; adding and removing are idempotent
intents: two members removing one PIN at once make one removal and one log line.

Digits are stored encrypted, with a keyed digest for the uniqueness check, and never
appear in a summary or a list.
"""
import itertools
import uuid

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from portal import crypto
from portal.extensions import db
from portal.models import Command, Mailbox, Pin, User, utcnow
from portal.services import activity, deliveries
from portal.services.deliveries import DeviceState, PinState
from portal.services.errors import Conflict, ValidationFailed
from portal.services.reauth import require_recent_password
from portal.services.scope import get_scoped
from portal.services.text import refuse_controls

LABEL_MAX = 60
MIN_DIGITS = 4
MAX_DIGITS = 8


def check_digits(text: str | None) -> str:
    """The digits of a new PIN, or ValidationFailed on the digits field saying why not."""
    digits = "".join((text or "").split())

    def refuse(message):
        raise ValidationFailed(message, field="digits")

    if not digits:
        refuse("Enter the PIN's digits.")
    if not digits.isascii() or not digits.isdigit():
        refuse("Use digits only (0 to 9), no letters or signs.")
    if not MIN_DIGITS <= len(digits) <= MAX_DIGITS:
        refuse(f"A PIN has {MIN_DIGITS} to {MAX_DIGITS} digits; this one has {len(digits)}.")
    if digits[0] == "0":
        refuse("A PIN cannot start with 0: the box receives it as a number, which drops a leading zero.")
    if len(set(digits)) == 1:
        refuse("One digit repeated is the first thing anyone tries. Use different digits.")
    steps = {int(b) - int(a) for a, b in itertools.pairwise(digits)}
    if steps in ({1}, {-1}):
        refuse("Digits in a straight run (like 1234 or 9876) are easy to guess. Mix them up.")
    return digits


def check_label(label: str | None) -> str:
    refuse_controls(label, "label")
    label = " ".join((label or "").split())
    if not label:
        raise ValidationFailed("Say who this PIN is for, like “Grandma” or “Parcel courier”.", field="label")
    if len(label) > LABEL_MAX:
        raise ValidationFailed(f"Keep the label under {LABEL_MAX} characters.", field="label")
    return label


def digest_of(mailbox_id, digits: str) -> str:
    return crypto.keyed_digest("pin", f"{mailbox_id}:{digits}")


def mailbox_id_of(account_id, pin_id) -> uuid.UUID:
    """The box a PIN of the household belongs to (NotFound for another household's)."""
    return get_scoped(Pin, account_id, pin_id).mailbox_id


def add_pin(account_id, mailbox_id, actor: User, *, label: str, digits: str) -> Pin:
    """Save the PIN and queue AUTH; the job sends it once the box is registered."""
    mailbox = get_scoped(Mailbox, account_id, mailbox_id)
    if mailbox.status == DeviceState.REMOVING:
        raise Conflict("This box is being removed.")
    if mailbox.status == DeviceState.FAILED:
        raise Conflict("This box is not set up yet: retry its set-up first.")
    label = check_label(label)
    digits = check_digits(digits)
    digest = digest_of(mailbox.id, digits)
    taken = ValidationFailed("This box already has a PIN with these digits. Choose others.", field="digits")
    if db.session.scalar(sa.select(Pin.id).where(Pin.mailbox_id == mailbox.id, Pin.digits_digest == digest)):
        raise taken
    pin_id = uuid.uuid4()
    pin = deliveries.new_pin(
        id=pin_id,
        account_id=account_id,
        mailbox_id=mailbox.id,
        label=label,
        digits_digest=digest,
        digits_enc=crypto.encrypt(digits, table="pins", column="digits_enc", row_id=pin_id),
        # How a sealed box names this PIN in its reports, instead of the digits.
        ref=deliveries.new_pin_ref(),
        created_by_id=actor.id,
        created_at=utcnow(),
    )
    try:
        db.session.flush()
    except IntegrityError:
        # Another member added the same digits a moment ago.
        db.session.rollback()
        raise taken from None
    command = deliveries.queue_command(account_id=account_id, gateway_id=mailbox.gateway_id, mailbox_id=mailbox.id,
                                       pin_id=pin.id, action="AUTH", requested_by=actor)
    pin.command_id = command.id
    _log(pin, mailbox, actor, "pin.added", f"Added PIN “{label}” to “{mailbox.name}”")
    db.session.commit()
    return pin


def remove_pin(account_id, pin_id, actor: User) -> Pin:
    """Take a PIN off its box. A PIN whose add never left the portal is simply withdrawn;
    otherwise UNAUTH is queued (the PIN works until the box confirms), behind its add if
    that is still on its way. Removing a PIN already being removed returns that removal."""
    pin = get_scoped(Pin, account_id, pin_id)
    if pin.status == PinState.REMOVED:
        raise Conflict("This PIN was already removed.")
    if pin.status == PinState.REMOVING:
        return pin
    mailbox = db.session.get(Mailbox, pin.mailbox_id)
    if mailbox is None or mailbox.status == DeviceState.REMOVING:
        raise Conflict("This box is being removed, with all its PINs.")
    current = db.session.get(Command, pin.command_id) if pin.command_id else None
    if pin.status == PinState.ADDING and current is not None and current.action == "AUTH" \
            and deliveries.withdraw(current):
        if deliveries.retire_pin(pin.id):
            _log(pin, mailbox, actor, "pin.removed", f"Withdrew PIN “{pin.label}” before it reached the box",
                 withdrawn=True)
        db.session.commit()
        return pin
    command_id = uuid.uuid4()
    if not deliveries.start_pin_removal(pin.id, command_id):
        # Another member's removal won this instant: theirs is the one.
        db.session.rollback()
        return get_scoped(Pin, account_id, pin_id)
    deliveries.queue_command(account_id=pin.account_id, gateway_id=mailbox.gateway_id, mailbox_id=mailbox.id,
                             pin_id=pin.id, action="UNAUTH", requested_by=actor, command_id=command_id)
    _log(pin, mailbox, actor, "pin.removed", f"Removed PIN “{pin.label}” from “{mailbox.name}”")
    db.session.commit()
    return pin


def _log(pin: Pin, mailbox: Mailbox, actor: User, kind: str, summary: str, **details) -> None:
    activity.record(
        pin.account_id,
        kind=kind,
        summary=summary,
        actor_user=actor,
        gateway_id=mailbox.gateway_id,
        mailbox_id=mailbox.id,
        details={"pin_id": str(pin.id), **details},
    )


def show_pin(account_id, pin_id, actor: User, login_session, *, password: str | None = None) -> tuple[Pin, str]:
    """The digits of a PIN, after a fresh password check; recorded (without the digits)."""
    pin = get_scoped(Pin, account_id, pin_id)
    if pin.status == PinState.REMOVED:
        raise Conflict("This PIN was removed; its digits are gone.")
    require_recent_password(login_session, actor, password)
    digits = crypto.decrypt(pin.digits_enc, table="pins", column="digits_enc", row_id=pin.id)
    mailbox_name, gateway_id = db.session.execute(
        sa.select(Mailbox.name, Mailbox.gateway_id).where(Mailbox.id == pin.mailbox_id)
    ).one()
    activity.record(
        account_id,
        kind="pin.shown",
        summary=f"Looked at the digits of PIN “{pin.label}” of “{mailbox_name}”",
        actor_user=actor,
        gateway_id=gateway_id,
        mailbox_id=pin.mailbox_id,
        details={"pin_id": str(pin.id)},
    )
    db.session.commit()
    return pin, digits
