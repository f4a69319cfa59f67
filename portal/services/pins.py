"""PINs of a household's boxes: add (to one box or several, with rules, refusing guessable
ones), delivery codes, duress PINs, who a PIN belongs to, remove, show behind a password
check, and the schedule that keeps rules the box cannot keep itself.

States move only through portal/services/deliveries.py; adding and removing are idempotent
intents: two members removing one PIN at once make one removal and one log line, and two
workers keeping the schedule at once queue one command.

Digits are stored encrypted, with a keyed digest for the uniqueness check, and never
appear in a summary or a list.
"""
import itertools
import secrets
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from portal import crypto
from portal.extensions import db
from portal.models import (
    PROTOCOL_SEED,
    Account,
    Command,
    Gateway,
    Mailbox,
    Membership,
    Pin,
    User,
    utcnow,
)
from portal.models.devices import PIN_COURIER, PIN_DURESS, PIN_HOUSEHOLD
from portal.services import activity, deliveries, pin_rules
from portal.services.deliveries import DeviceState, PinState
from portal.services.errors import Conflict, NotFound, ValidationFailed
from portal.services.reauth import require_recent_password
from portal.services.rows import BOX_ROW, read
from portal.services.scope import get_scoped, scoped
from portal.services.text import refuse_controls
from portal.services.visitors import Actor

LABEL_MAX = 60
MIN_DIGITS = 4
MAX_DIGITS = 8
# Delivery codes: for boxes a courier puts something in; digits the portal draws.
DELIVERY_KINDS = ("mailbox", "parcel_box")
DELIVERY_DIGITS = 6
DELIVERY_LIFETIME = timedelta(days=7)
DELIVERY_LABEL = "Delivery"
# PINs the schedule may still change (a PIN being removed is on its way out).
ON_DUTY = (PinState.ADDING, PinState.ACTIVE, PinState.PAUSING, PinState.PAUSED)
DURESS_DIGITS = "A duress PIN must differ from every other PIN of this box."


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


def add_pin(account_id, mailbox_ids, actor: Actor, *, label: str, digits: str, kind: str = "always",
            starts=None, ends=None, windows=None, uses=None, assigned_to_id=None, duress: bool = False) -> list[Pin]:
    """Save the PIN on each chosen box (one row a box, one group) and queue an AUTH each;
    the job sends it once the box is registered. `mailbox_ids`: ids of the household's
    boxes (one id is fine too). Rules as pin_rules.check_rules takes them, in the
    household's time zone, which the PIN keeps. A duress PIN belongs to a member (one per
    member and box) and differs from every other PIN of its boxes. On a seed gateway a PIN
    made outside its hours waits off the box until they start (the schedule sends it)."""
    boxes, zone = _boxes(account_id, mailbox_ids)
    label = check_label(label)
    digits = check_digits(digits)
    now = utcnow()
    rules = pin_rules.check_rules(kind=kind, starts=starts, ends=ends, windows=windows, uses=uses,
                                  time_zone=zone, now=now)
    owner = _member(account_id, assigned_to_id)
    if duress:
        _check_duress([m for m, _p in boxes], owner)
    purpose = PIN_DURESS if duress else PIN_HOUSEHOLD
    return _add(account_id, zone, boxes, actor, label=label, digits=digits, rules=rules, purpose=purpose,
                owner=owner, now=now)


def add_delivery_code(account_id, mailbox_id, actor: User, *, label: str | None = None,
                      expires=None) -> tuple[Pin, str]:
    """A courier's one-time code for a mailbox or parcel box: digits drawn by the portal
    (returned once, to show), one opening, until `expires` (datetime-local in the
    household's zone; a week by default). Label "Delivery" unless given (order, carrier)."""
    boxes, zone = _boxes(account_id, mailbox_id)
    mailbox = boxes[0][0]
    if mailbox.kind not in DELIVERY_KINDS:
        raise Conflict(f"Delivery codes are for mailboxes and parcel boxes; “{mailbox.name}” is a "
                       f"{mailbox.kind_label.lower()}.")
    label = check_label(label if label and label.strip() else DELIVERY_LABEL)
    now = utcnow()
    ends = expires if expires and not (isinstance(expires, str) and not expires.strip()) else now + DELIVERY_LIFETIME
    try:
        rules = pin_rules.check_rules(kind="once", ends=ends, time_zone=zone, now=now)
    except ValidationFailed as exc:
        raise ValidationFailed(exc.message, field="expires") from None
    digits = _drawn_digits(mailbox)
    [pin] = _add(account_id, zone, boxes, actor, label=label, digits=digits, rules=rules, purpose=PIN_COURIER,
                 owner=None, now=now)
    return pin, digits


def _drawn_digits(mailbox: Mailbox) -> str:
    """Random digits that pass check_digits and no PIN of the box has."""
    for _ in range(100):
        digits = str(secrets.randbelow(9 * 10 ** (DELIVERY_DIGITS - 1)) + 10 ** (DELIVERY_DIGITS - 1))
        try:
            check_digits(digits)
        except ValidationFailed:
            continue
        if db.session.scalar(sa.select(Pin.id).where(Pin.digits_digest == digest_of(mailbox.id, digits))) is None:
            return digits
    raise Conflict("This box has no free delivery code left; remove some of its PINs.")


# Statements of every add-PIN request, built once. The chosen boxes are read as plain rows
# (rows.Record): add-PIN reads their ids, names and states, and changes none of them.
_PROTOCOL_AT = len(BOX_ROW.columns)
_CHOSEN_BOXES = (
    sa.select(*BOX_ROW.columns, Gateway.protocol, Account.time_zone)
    .join(Gateway, Gateway.id == Mailbox.gateway_id).join(Account, Account.id == Mailbox.account_id)
    .where(Mailbox.account_id == sa.bindparam("account_id"), Mailbox.id.in_(sa.bindparam("box_ids", expanding=True)))
)
# A PIN of any household with one of these digests (each digest is keyed by its box's id).
_DIGITS_TAKEN = (
    sa.select(Mailbox.name).join(Pin, Pin.mailbox_id == Mailbox.id)
    .where(Pin.digits_digest.in_(sa.bindparam("digests", expanding=True))).limit(1)
)


def _boxes(account_id, mailbox_ids) -> tuple[list[tuple[Mailbox, str]], str]:
    """(box, its gateway's protocol) for each chosen box of the household, in the order
    given, and the household's time zone (read with them); NotFound when one is not the
    household's."""
    if mailbox_ids is None or isinstance(mailbox_ids, (str, uuid.UUID)):
        mailbox_ids = [mailbox_ids]
    chosen: dict[uuid.UUID, None] = {}
    for raw in mailbox_ids:
        if raw is None or not str(raw).strip():
            continue
        try:
            chosen[raw if isinstance(raw, uuid.UUID) else uuid.UUID(str(raw))] = None
        except ValueError:
            raise NotFound() from None
    if not chosen:
        raise ValidationFailed("Choose at least one box for this PIN.", field="boxes")
    rows = read(_CHOSEN_BOXES, {"account_id": account_id, "box_ids": list(chosen)}).all()
    found = {row.id: (BOX_ROW.make(row[:_PROTOCOL_AT]), row.protocol) for row in rows}
    if len(found) != len(chosen):
        raise NotFound()
    boxes = [found[mailbox_id] for mailbox_id in chosen]
    for mailbox, _protocol in boxes:
        which = f"“{mailbox.name}”" if len(boxes) > 1 else "This box"
        if mailbox.status == DeviceState.REMOVING:
            raise Conflict(f"{which} is being removed.")
        if mailbox.status == DeviceState.FAILED:
            raise Conflict(f"{which} is not set up yet: retry its set-up first.")
    return boxes, rows[0].time_zone


def _member(account_id, user_id) -> User | None:
    """The member a PIN is for (None: nobody in particular)."""
    if user_id is None or not str(user_id).strip():
        return None
    refused = ValidationFailed("Choose a member of this household.", field="assigned_to")
    try:
        user_id = user_id if isinstance(user_id, uuid.UUID) else uuid.UUID(str(user_id))
    except ValueError:
        raise refused from None
    user = db.session.scalars(
        sa.select(User).join(Membership, Membership.user_id == User.id)
        .where(Membership.account_id == account_id, User.id == user_id)
    ).first()
    if user is None:
        raise refused
    return user


def _check_duress(boxes: Iterable[Mailbox], owner: User | None, *, group_id=None) -> None:
    """A duress PIN belongs to a member, who has at most one on each box."""
    if owner is None:
        raise ValidationFailed("A duress PIN belongs to a member: choose whose it is.", field="assigned_to")
    stmt = (
        sa.select(Mailbox.name).join(Pin, Pin.mailbox_id == Mailbox.id)
        .where(Pin.mailbox_id.in_([m.id for m in boxes]), Pin.purpose == PIN_DURESS,
               Pin.assigned_to_id == owner.id, Pin.status != PinState.REMOVED)
    )
    if group_id is not None:
        stmt = stmt.where(Pin.group_id != group_id)
    taken = db.session.scalars(stmt).first()
    if taken is not None:
        raise ValidationFailed(f"{owner.email} already has a duress PIN on “{taken}”.", field="assigned_to")


def _add(account_id, zone: str, boxes: list[tuple[Mailbox, str]], actor: Actor, *, label: str, digits: str,
         rules: pin_rules.Rules, purpose: str, owner: User | None, now: datetime) -> list[Pin]:
    """One PIN row a box, sharing a group; an AUTH each unless it waits for its hours."""
    digests = {mailbox.id: digest_of(mailbox.id, digits) for mailbox, _protocol in boxes}
    clash = read(_DIGITS_TAKEN, {"digests": list(digests.values())}).scalar()
    if clash is not None:
        raise _taken(purpose, clash)
    # Not given at all when unset: a JSON column stores None as JSON null, not SQL NULL.
    rule_columns = {column: value for column, value in (
        ("starts_at", rules.starts_at), ("ends_at", rules.ends_at), ("windows", rules.windows),
        ("max_uses", rules.max_uses)) if value is not None}
    waits = not pin_rules.rules_allow(rules, zone, now)
    group_id = uuid.uuid4()
    words = "" if rules.always else f" ({_lower_first(pin_rules.describe_rules(rules, zone, now))})"
    pin_rows, commands, events = [], [], []
    for mailbox, protocol in boxes:
        pin_id = uuid.uuid4()
        paused = waits and protocol == PROTOCOL_SEED
        # Each PIN is made with the id of the change that carries it (pins.command_id has no
        # foreign key), so no UPDATE follows the inserts.
        command_id = None if paused else uuid.uuid4()
        pin_rows.append(deliveries.pin_row(
            id=pin_id,
            account_id=account_id,
            mailbox_id=mailbox.id,
            label=label,
            digits_digest=digests[mailbox.id],
            digits_enc=crypto.encrypt(digits, table="pins", column="digits_enc", row_id=pin_id),
            # How a sealed box names this PIN in its reports, instead of the digits.
            ref=deliveries.new_pin_ref(),
            created_by_id=actor.id,
            created_at=now,
            group_id=group_id,
            purpose=purpose,
            assigned_to_id=owner.id if owner is not None else None,
            time_zone=zone,
            paused=paused,
            command_id=command_id,
            **rule_columns,
        ))
        if command_id is not None:
            commands.append(deliveries.command_row(account_id, mailbox.gateway_id, "AUTH", mailbox_id=mailbox.id,
                                                   pin_id=pin_id, requested_by=actor, command_id=command_id))
        events.append(activity.event_row(
            account_id, kind="pin.added", summary=f"Added PIN “{label}” to “{mailbox.name}”{words}",
            actor_user=actor, gateway_id=mailbox.gateway_id, mailbox_id=mailbox.id,
            details={"pin_id": str(pin_id)}))
    try:
        made = deliveries.save_new_pins(pin_rows, commands)
    except IntegrityError:
        # Another member added the same digits a moment ago.
        db.session.rollback()
        raise _taken(purpose, None) from None
    activity.record_rows(events)
    db.session.commit()
    return made


def _taken(purpose: str, box_name: str | None) -> ValidationFailed:
    where = f"“{box_name}”" if box_name else "One of the boxes"
    if purpose == PIN_DURESS:
        return ValidationFailed(f"{DURESS_DIGITS} {where} has a PIN with these digits.", field="digits")
    return ValidationFailed(f"{where} already has a PIN with these digits. Choose others.", field="digits")


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


# --- who a PIN belongs to ------------------------------------------------------------------

def group_of(pin: Pin) -> list[Pin]:
    """The live PINs added together with this one (itself included), one a box."""
    if pin.group_id is None:
        return [pin]
    return list(db.session.scalars(
        scoped(Pin, pin.account_id).where(Pin.group_id == pin.group_id, Pin.status != PinState.REMOVED)
        .options(sa.orm.joinedload(Pin.mailbox)).order_by(Pin.created_at, Pin.id)
    ))


def reassign_pin(account_id, pin_id, actor: User, assigned_to_id) -> list[Pin]:
    """Give the PIN (on every box of its group) to another member, or to nobody (None);
    a duress PIN always belongs to someone, once per box."""
    pin = get_scoped(Pin, account_id, pin_id)
    if pin.status in (PinState.REMOVED, PinState.REMOVING):
        raise Conflict("This PIN is removed or being removed.")
    group = group_of(pin)
    owner = _member(account_id, assigned_to_id)
    if pin.purpose == PIN_DURESS:
        _check_duress([p.mailbox for p in group], owner, group_id=pin.group_id)
    for member_pin in group:
        member_pin.assigned_to_id = owner.id if owner is not None else None
    summary = (f"PIN “{pin.label}” now belongs to {owner.email}" if owner is not None
               else f"PIN “{pin.label}” no longer belongs to a member")
    activity.record(account_id, kind="pin.assigned", summary=summary, actor_user=actor,
                    details={"pin_id": str(pin.id), "assigned_to": owner.email if owner is not None else None})
    db.session.commit()
    return group


def assigned_to(account_id, user_id) -> list[Pin]:
    """The member's PINs that are on (or waiting for) a box, with their boxes: what goes
    when they leave or are removed."""
    return list(db.session.scalars(
        scoped(Pin, account_id)
        .where(Pin.assigned_to_id == user_id, Pin.status.in_(ON_DUTY))
        .options(sa.orm.joinedload(Pin.mailbox)).order_by(Pin.label, Pin.created_at, Pin.id)
    ))


def assigned_counts(account_id) -> dict:
    """user id -> how many PINs of theirs are on (or on their way to) a box: one query, for
    the members page ("removing them also removes their 2 PINs")."""
    return dict(db.session.execute(
        sa.select(Pin.assigned_to_id, sa.func.count())
        .where(Pin.account_id == account_id, Pin.assigned_to_id.is_not(None), Pin.status.in_(ON_DUTY))
        .group_by(Pin.assigned_to_id)
    ).all())


def remove_member_pins(account_id, member: User, actor: User, why: str) -> list[Pin]:
    """A member leaves or is removed: their PINs come off the boxes, each with a log line
    ("PIN “Bike” of bob@example.com removed: bob@example.com left the household"). The
    caller commits with the membership change."""
    removed = []
    for pin in assigned_to(account_id, member.id):
        mailbox = pin.mailbox
        if mailbox.status == DeviceState.REMOVING or _take_off(pin, mailbox, actor) is None:
            continue  # going with its box, or someone else's removal won
        _log(pin, mailbox, actor, "pin.removed", f"PIN “{pin.label}” of {member.email} removed: {why}",
             member=member.email)
        removed.append(pin)
    return removed


# --- removing ----------------------------------------------------------------------------------

def remove_pin(account_id, pin_id, actor: User) -> Pin:
    """Take a PIN off its box. A PIN whose add never left the portal is simply withdrawn,
    one waiting off the box outside its hours simply removed; otherwise UNAUTH is queued
    (the PIN works until the box confirms), behind its add if that is still on its way.
    Removing a PIN already being removed returns that removal."""
    pin = get_scoped(Pin, account_id, pin_id)
    if pin.status == PinState.REMOVED:
        raise Conflict("This PIN was already removed.")
    if pin.status == PinState.REMOVING:
        return pin
    mailbox = db.session.get(Mailbox, pin.mailbox_id)
    if mailbox is None or mailbox.status == DeviceState.REMOVING:
        raise Conflict("This box is being removed, with all its PINs.")
    how = _take_off(pin, mailbox, actor)
    if how is None:
        # Another member's removal won this instant: theirs is the one.
        db.session.rollback()
        return get_scoped(Pin, account_id, pin_id)
    if how == "withdrawn":
        _log(pin, mailbox, actor, "pin.removed", f"Withdrew PIN “{pin.label}” before it reached the box",
             withdrawn=True)
    else:
        _log(pin, mailbox, actor, "pin.removed", f"Removed PIN “{pin.label}” from “{mailbox.name}”")
    db.session.commit()
    return pin


def _take_off(pin: Pin, mailbox: Mailbox, actor: User | None) -> str | None:
    """Start taking a PIN off its box (the caller logs and commits): "withdrawn" (its add
    never left), "removed" (it was not on the box, or UNAUTH is on its way), None when
    another change of the PIN won."""
    if pin.status == PinState.PAUSED:
        return "removed" if deliveries.retire_paused_pin(pin.id) else None
    if pin.status == PinState.PAUSING:
        # The UNAUTH taking it off for its hours is on its way: it is the removal now.
        return "removed" if deliveries.take_over_pause(pin.id) else None
    current = db.session.get(Command, pin.command_id) if pin.command_id else None
    if pin.status == PinState.ADDING and current is not None and current.action == "AUTH" \
            and deliveries.withdraw(current):
        return "withdrawn" if deliveries.retire_pin(pin.id) else None
    command_id = uuid.uuid4()
    if not deliveries.start_pin_removal(pin.id, command_id):
        return None
    deliveries.queue_command(account_id=pin.account_id, gateway_id=mailbox.gateway_id, mailbox_id=mailbox.id,
                             pin_id=pin.id, action="UNAUTH", requested_by=actor, command_id=command_id)
    return "removed"


# --- the schedule ----------------------------------------------------------------------------

def keep_schedules(now: datetime | None = None) -> dict[str, int]:
    """One pass of the worker's PIN schedule, in one query and one commit:

    - every gateway: an active PIN past its end or its last use is taken off its box
      (belt and braces: a sealed box refuses it already), with the reason kept in
      `ended` and a log line; a paused one is simply removed;
    - seed gateways, which keep no rules: a PIN is taken off its box outside its hours
      (before its start, outside its windows) and put back when they begin.

    Every change is a compare-and-set, so passes running at once queue each command once."""
    now = now or utcnow()
    ended_or_used = sa.or_(Pin.ends_at <= now, Pin.uses >= Pin.max_uses)
    has_hours = sa.or_(Pin.starts_at.is_not(None), Pin.windows.is_not(None))
    rows = db.session.execute(
        sa.select(Pin, Mailbox.name, Mailbox.gateway_id, Gateway.protocol, Command.state)
        .join(Mailbox, Mailbox.id == Pin.mailbox_id)
        .join(Gateway, Gateway.id == Mailbox.gateway_id)
        .outerjoin(Command, Command.id == Pin.command_id)
        .where(
            Mailbox.status == DeviceState.ACTIVE,
            sa.or_(
                sa.and_(Pin.status.in_((PinState.ACTIVE, PinState.PAUSED)), ended_or_used),
                sa.and_(Gateway.protocol == PROTOCOL_SEED,
                        Pin.status.in_((PinState.ACTIVE, PinState.ADDING, PinState.PAUSED)), has_hours),
            ),
        )
        # One lock order for every pass: two passes at once wait for each other, never deadlock.
        .order_by(Pin.id)
    ).all()
    done = {"ended": 0, "paused": 0, "resumed": 0}
    for pin, box_name, gateway_id, protocol, command_state in rows:
        state = pin_rules.rule_state(pin, now)
        command_id = uuid.uuid4()
        if state in pin_rules.ENDED:
            if pin.status == PinState.ACTIVE and deliveries.end_pin(pin.id, command_id, state):
                _queue(pin, gateway_id, "UNAUTH", command_id)
                _ended(pin, box_name, gateway_id, state, f"taken off “{box_name}”")
                done["ended"] += 1
            elif pin.status == PinState.PAUSED and deliveries.retire_paused_pin(pin.id, ended=state):
                _ended(pin, box_name, gateway_id, state, f"removed from “{box_name}”")
                done["ended"] += 1
        elif protocol != PROTOCOL_SEED:
            continue
        elif state == pin_rules.ACTIVE:
            if pin.status == PinState.PAUSED and deliveries.resume_pin(pin.id, command_id):
                _queue(pin, gateway_id, "AUTH", command_id)
                done["resumed"] += 1
        elif (pin.status == PinState.ACTIVE or command_state in deliveries.PENDING) \
                and deliveries.pause_pin(pin.id, command_id):
            # An add that failed stays failed (the member retries it); one on its way is
            # followed by the UNAUTH, in order.
            _queue(pin, gateway_id, "UNAUTH", command_id)
            done["paused"] += 1
    db.session.commit()
    return done


def _queue(pin: Pin, gateway_id, action: str, command_id: uuid.UUID) -> None:
    deliveries.queue_command(account_id=pin.account_id, gateway_id=gateway_id, mailbox_id=pin.mailbox_id,
                             pin_id=pin.id, action=action, command_id=command_id)


def _ended(pin: Pin, box_name: str, gateway_id, why: str, what: str) -> None:
    activity.record(pin.account_id, kind="pin.ended", summary=f"PIN “{pin.label}” ended ({why}): {what}",
                    actor_kind="system", gateway_id=gateway_id, mailbox_id=pin.mailbox_id,
                    details={"pin_id": str(pin.id), "ended": why})


def _log(pin: Pin, mailbox: Mailbox, actor: Actor | None, kind: str, summary: str, **details) -> None:
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
