"""What the devices said: which channels to read, and applying each reader message once.

The worker reads the reader (portal/jobs/handlers/devices.py) and hands the messages
here. A message counts only when its publisher is the gateway's own thing (the reader
does not keep tenants apart); a cursor per channel (time + digests of the messages at
that time) makes every message apply exactly once, however reads overlap.
"""
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from portal import crypto
from portal.extensions import db
from portal.models import LINK_CONNECTED, Account, ChannelCursor, Command, Gateway, Mailbox, Pin, utcnow
from portal.models.devices import (
    ACTION_CHANNEL,
    CMD_EXPIRED,
    CMD_FAILED,
    CMD_QUEUED,
    CMD_SENT,
    DEVICE_REMOVING,
)
from portal.services import commands
from portal.streamiot import messages as m

log = logging.getLogger(__name__)

BATTERY_LOW = 20
# Commands an answer may settle: normally "sent"; "queued" or "failed" when the platform
# took a message whose 202 never reached us; "expired" when the answer to an unlock comes
# after the portal stopped waiting for it.
_ANSWERABLE = (CMD_SENT, CMD_QUEUED, CMD_FAILED, CMD_EXPIRED)
# An UNLOCK's Done stamped by the platform up to this long after the deadline it carries
# still counts as opened in time (the answer travels; the box checked its deadline).
UNLOCK_ANSWER_GRACE_SECONDS = 10.0


@dataclass(frozen=True)
class ChannelToRead:
    channel_id: str
    account_id: uuid.UUID
    gateway_id: uuid.UUID
    mailbox_id: uuid.UUID | None
    publisher: str  # the gateway's thing id: the only publisher trusted on this channel
    thing_key: str  # the household's portal thing key: reads as a thing of the channel
    since: float | None  # cursor time; the reader's `from`


# --- which channels -------------------------------------------------------------------

def expire_overdue_unlocks(now=None) -> int:
    """Unlocks past their time to live: expired, whether still queued or unanswered."""
    now = now or utcnow()
    overdue = db.session.scalars(
        sa.select(Command).where(
            Command.expires_at.is_not(None),
            Command.expires_at <= now,
            Command.state.in_((CMD_QUEUED, CMD_SENT)),
        )
    ).all()
    for command in overdue:
        commands.expire_if_due(command, now)
    if overdue:
        db.session.commit()
    return len(overdue)


def channels_waiting() -> list[ChannelToRead]:
    """Channels with a command sent and not answered yet (read every REPLY_POLL_SECONDS)."""
    ids = db.session.scalars(
        sa.select(Command.channel_id)
        .where(
            Command.state == CMD_SENT,
            Command.channel_id.is_not(None),
            # Their channels are deleted right after they go out: no answer can be read.
            Command.action.not_in(("DESTRUCT", "DELETE")),
        )
        .distinct()
    ).all()
    return _channels(channel_ids=set(ids)) if ids else []


def channels_of_linked_households() -> list[ChannelToRead]:
    """Every device channel of every linked household (read every IDLE_POLL_SECONDS)."""
    return _channels(channel_ids=None)


def _channels(channel_ids: set | None) -> list[ChannelToRead]:
    linked = sa.select(Account.id).where(Account.link_state == LINK_CONNECTED)
    gw_stmt = sa.select(Gateway).where(
        Gateway.channel_id.is_not(None), Gateway.thing_id.is_not(None), Gateway.account_id.in_(linked)
    )
    mb_stmt = (
        sa.select(Mailbox, Gateway)
        .join(Gateway, Gateway.id == Mailbox.gateway_id)
        .where(Mailbox.channel_id.is_not(None), Gateway.thing_id.is_not(None), Mailbox.account_id.in_(linked))
    )
    if channel_ids is not None:
        gw_stmt = gw_stmt.where(Gateway.channel_id.in_(channel_ids))
        mb_stmt = mb_stmt.where(Mailbox.channel_id.in_(channel_ids))
    gateways = db.session.scalars(gw_stmt).all()
    boxes = db.session.execute(mb_stmt).all()
    account_ids = {g.account_id for g in gateways} | {mb.account_id for mb, _g in boxes}
    if not account_ids:
        return []
    accounts = {a.id: a for a in db.session.scalars(sa.select(Account).where(Account.id.in_(account_ids)))}
    wanted = [g.channel_id for g in gateways] + [mb.channel_id for mb, _g in boxes]
    cursors = dict(
        db.session.execute(
            sa.select(ChannelCursor.channel_id, ChannelCursor.last_time).where(ChannelCursor.channel_id.in_(wanted))
        ).all()
    )
    keys: dict = {}

    def key_of(account_id):
        if account_id not in keys:
            account = accounts.get(account_id)
            blob = account.portal_thing_key_enc if account else None
            try:
                keys[account_id] = (
                    crypto.decrypt(blob, table="accounts", column="portal_thing_key_enc", row_id=account_id)
                    if blob
                    else None
                )
            except crypto.DecryptionError:
                log.error("household %s: its portal thing key does not decrypt", account_id)
                keys[account_id] = None
        return keys[account_id]

    found = []
    for g in gateways:
        if key_of(g.account_id):
            found.append(ChannelToRead(g.channel_id, g.account_id, g.id, None, g.thing_id, key_of(g.account_id),
                                       cursors.get(g.channel_id) or None))
    for mb, g in boxes:
        if key_of(mb.account_id):
            found.append(ChannelToRead(mb.channel_id, mb.account_id, g.id, mb.id, g.thing_id, key_of(mb.account_id),
                                       cursors.get(mb.channel_id) or None))
    return found


# --- applying messages ------------------------------------------------------------------

def apply_messages(target: ChannelToRead, reader_messages: list[dict]) -> int:
    """Apply the messages of one channel not applied before, oldest first; commit.
    Returns how many device messages were applied."""
    cursor = db.session.get(ChannelCursor, target.channel_id, with_for_update=True)
    if cursor is None:
        cursor = ChannelCursor(channel_id=target.channel_id, account_id=target.account_id, last_time=0.0,
                               seen_at_last_time={})
        db.session.add(cursor)
        try:
            db.session.flush()
        except IntegrityError:  # another worker created it this instant; it reads next time
            db.session.rollback()
            return 0
    gateway = db.session.get(Gateway, target.gateway_id)
    mailbox = db.session.get(Mailbox, target.mailbox_id) if target.mailbox_id else None
    if gateway is None or (target.mailbox_id and mailbox is None):
        db.session.rollback()
        return 0

    last_time = cursor.last_time or 0.0
    seen = set((cursor.seen_at_last_time or {}).get("digests", []))
    fresh, batch = [], set()
    # The reader answers newest first; ties keep the platform's order once reversed.
    for message in reversed(reader_messages):
        time = message.get("time")
        if isinstance(time, bool) or not isinstance(time, (int, float)):
            continue
        digest = m.message_digest(message)
        if digest in batch or time < last_time or (time == last_time and digest in seen):
            continue
        batch.add(digest)
        fresh.append((float(time), digest, message))
    fresh.sort(key=lambda item: item[0])

    reasons = {
        (msg.get("time"), msg.get("publisher")): msg.get("string_value")
        for _t, _d, msg in fresh
        if (m.split_name(msg.get("name")) or (None, None))[1] == m.REASON
    }
    applied = 0
    for time, digest, message in fresh:
        if time > last_time:
            last_time, seen = time, {digest}
        else:
            seen.add(digest)
        if message.get("publisher") != gateway.thing_id:
            continue  # anyone else's message (including the portal's own) is not the device's word
        if _apply_one(gateway, mailbox, target.channel_id, message, reasons):
            applied += 1
    cursor.last_time = last_time
    cursor.seen_at_last_time = {"digests": sorted(seen)}
    cursor.last_polled_at = utcnow()
    db.session.commit()
    return applied




def _when(message: dict) -> datetime:
    moment = datetime.fromtimestamp(float(message["time"]), timezone.utc)
    return min(moment, utcnow())


def _apply_one(gateway: Gateway, mailbox: Mailbox | None, channel_id: str, message: dict, reasons: dict) -> bool:
    # Record names never contain "_", so the last one splits base and name exactly.
    parts = m.split_name(message.get("name"))
    if parts is None:
        return False
    base, action = parts
    unit = message.get("unit")
    value = m.message_value(message)
    if unit in (m.DONE, m.FAILED):
        reason = reasons.get((message.get("time"), message.get("publisher")))
        return _apply_answer(gateway, mailbox, base, action, unit == m.DONE, value, reason, message.get("time"))
    if base != gateway.thing_id:
        return False  # every event names the gateway thing (DEVICE_PROTOCOL.md)
    if action == m.HEARTBEAT and mailbox is None:
        gateway.last_heartbeat_at = max(gateway.last_heartbeat_at or _when(message), _when(message))
        return True
    if mailbox is None or mailbox.status == DEVICE_REMOVING:
        return False
    handler = _EVENTS.get(action)
    if handler is None:
        return False
    handler(gateway, mailbox, message, unit, value)
    mailbox.last_event_at = _when(message)
    return True


def _apply_answer(gateway, mailbox, base: str, action: str, done: bool, value, reason: str | None,
                  time=None) -> bool:
    command = _match_command(gateway, mailbox, base, action, value)
    if command is None:
        return False
    if done:
        late = command.action == "UNLOCK" and _opened_late(command, time)
        commands.mark_confirmed(command)
        if late:
            command.reason = "The box opened late, after the request had expired."
    elif command.action == "UNLOCK" and reason == m.EXPIRED:
        commands.mark_expired_by_device(command)
    else:
        commands.mark_failed(command, reason or "The box refused it without saying why.", by_device=True)
    return True


def _opened_late(command: Command, time) -> bool:
    """A Done to an UNLOCK that the box sent after the deadline the command carried (a box
    that checks its deadline never does; if one does, the page says so)."""
    if isinstance(time, bool) or not isinstance(time, (int, float)):
        return command.state == CMD_EXPIRED
    return time > commands.unlock_deadline(command) + UNLOCK_ANSWER_GRACE_SECONDS


def _match_command(gateway: Gateway, mailbox: Mailbox | None, base: str, action: str, value) -> Command | None:
    """The command this answer is about: same gateway (and box), record name and value."""
    channel = ACTION_CHANNEL.get(action)
    if channel is None:
        return None
    # Each command is answered on the channel it travelled on, with the base it had.
    expected_base = {"DESTRUCT": gateway.channel_id, "Mailbox": None}.get(action, gateway.thing_id)
    if expected_base is not None and base != expected_base:
        return None
    stmt = sa.select(Command).where(
        Command.gateway_id == gateway.id, Command.action == action, Command.state.in_(_ANSWERABLE)
    )
    if channel == "mailbox":
        if mailbox is None:
            return None
        stmt = stmt.where(Command.mailbox_id == mailbox.id)
    elif mailbox is not None:
        return None
    if action != "UNLOCK":
        stmt = stmt.where(Command.state != CMD_EXPIRED)
    candidates = db.session.scalars(stmt.order_by(Command.created_at)).all()
    candidates = [c for c in candidates if _same_value(c, gateway, base, value)]
    # The one actually waiting for an answer first, then the others, oldest first.
    candidates.sort(key=lambda c: c.state != CMD_SENT)
    return candidates[0] if candidates else None


def _same_value(command: Command, gateway: Gateway, base: str, value) -> bool:
    if command.action in ("CONNECT", "REGISTER"):
        return value is True
    if command.action == "UNLOCK":
        # Each unlock carries its own deadline, and its answer echoes it.
        deadline = m.unlock_deadline(value)
        return deadline is not None and command.expires_at is not None and deadline == commands.unlock_deadline(command)
    if command.action == "DESTRUCT":
        return value == gateway.public_key
    if command.action in ("ADD", "Mailbox", "DELETE"):
        row = db.session.execute(
            sa.select(Mailbox.public_key, Mailbox.channel_id).where(Mailbox.id == command.mailbox_id)
        ).first()
        if row is None or value != row.public_key:
            return False
        return command.action != "Mailbox" or base == row.channel_id
    if command.action in ("AUTH", "UNAUTH"):
        pin = db.session.get(Pin, command.pin_id) if command.pin_id else None
        if pin is None or not pin.digits_enc or isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return commands.pin_digits(pin) == value
    return False


# --- events -----------------------------------------------------------------------------

def _record(gateway: Gateway, mailbox: Mailbox, kind: str, summary: str, details: dict | None = None) -> None:
    from portal.services import activity

    activity.record(
        mailbox.account_id,
        kind=kind,
        summary=summary,
        actor_kind="box",
        actor_label=mailbox.name,
        gateway_id=gateway.id,
        mailbox_id=mailbox.id,
        details=details,
    )


def _opened(gateway, mailbox, message, unit, value) -> None:
    mailbox.is_open = True
    if unit == "Remote":
        _record(gateway, mailbox, "box.opened_remote", "Opened remotely")
        # If the box's Done got lost, its OPENED says the same thing.
        waiting = db.session.scalars(
            sa.select(Command)
            .where(Command.mailbox_id == mailbox.id, Command.action == "UNLOCK", Command.state == CMD_SENT)
            .order_by(Command.created_at)
        ).first()
        if waiting is not None:
            commands.mark_confirmed(waiting)
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
        _record(gateway, mailbox, "box.opened_pin", "Opened with a PIN")
        return
    from portal.services.pins import digest_of

    pin = db.session.scalars(
        sa.select(Pin).where(Pin.mailbox_id == mailbox.id, Pin.digits_digest == digest_of(mailbox.id, str(int(value))))
    ).first()
    if pin is not None:
        _record(gateway, mailbox, "box.opened_pin", f"Opened with PIN “{pin.label}”", {"pin_id": str(pin.id)})
    else:
        _record(gateway, mailbox, "box.opened_pin", "Opened with a PIN that is not on the list any more")


def _closed(gateway, mailbox, message, unit, value) -> None:
    mailbox.is_open = False
    _record(gateway, mailbox, "box.closed", "Closed")


def _rejected(gateway, mailbox, message, unit, value) -> None:
    attempts = int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 1
    words = "1 wrong attempt" if attempts == 1 else f"{attempts} wrong attempts in a row"
    _record(gateway, mailbox, "box.rejected", f"Wrong PIN entered ({words})", {"attempts": attempts})


def _battery(gateway, mailbox, message, unit, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    percent = max(0, min(100, int(round(value))))
    before = mailbox.battery_percent
    mailbox.battery_percent = percent
    mailbox.battery_at = _when(message)
    # A line in the log when it matters: the first report, a drop into "low", a big change.
    if before is None or (percent < BATTERY_LOW <= before) or abs(percent - before) >= 10:
        low = percent < BATTERY_LOW
        summary = f"Battery low: {percent}%" if low else f"Battery at {percent}%"
        _record(gateway, mailbox, "box.battery", summary, {"percent": percent, "low": low})


_EVENTS = {m.OPENED: _opened, m.CLOSED: _closed, m.REJECTED: _rejected, m.BATTERY: _battery}


def forget_cursors(channel_ids) -> None:
    """Channels that no longer exist need no cursor (the caller commits)."""
    ids = [c for c in channel_ids if c]
    if ids:
        db.session.execute(sa.delete(ChannelCursor).where(ChannelCursor.channel_id.in_(ids)))
