"""What the devices said, as plain domain values: which channels to read, and applying each
report once.

The worker reads the platform and turns every message into a `DeviceReport`
(portal/jobs/handlers/reports.py); this module never sees SenML. A cursor per channel
(the newest receive time read, and the digests of what was applied within a look-back
window before it) makes every report apply exactly once, however reads overlap.

Time: the reader dates a message by the moment the platform received it, unless the
device sent its own `t`, which the platform keeps as given. A time is believed only
between 2024 and a minute after the read; anything else (a relative `t`, a clock never
set, a clock ahead) is dated by the read instead, counted apart from the cursor, and
found again by a sweep below 2024 (docs/device-protocol.md, "Time").

A report counts only when its publisher is the gateway's own thing; an answer settles
only a command that was handed to StreamIoT before the answer arrived and is still
waiting for it. Anything else changes nothing and is kept
as an ignored device message for the support trace.
"""
import enum
import logging
import secrets
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from portal import crypto, timezones
from portal.extensions import db
from portal.models import (
    LINK_CONNECTED,
    PROTOCOL_SEALED,
    Account,
    ChannelCursor,
    Command,
    Gateway,
    IdleRead,
    IgnoredDeviceMessage,
    Mailbox,
    Pin,
    User,
    utcnow,
)
from portal.models.devices import ACTION_CHANNEL, PIN_COURIER, PIN_DURESS, PIN_HOUSEHOLD
from portal.services import activity, deliveries, device_link
from portal.services.deliveries import CommandState, DeviceState
from portal.services.pins import digest_of

log = logging.getLogger(__name__)

BATTERY_LOW = 20
REKEY = "REKEY"  # a sealed gateway's answer to its new keys (portal/jobs/handlers/keys.py)
# An UNLOCK's Done received up to this long after the deadline it carries still counts as
# opened in time (the answer travels; the box checked its deadline).
UNLOCK_ANSWER_GRACE_SECONDS = 10.0

# Platform times before this cannot be a receive time (IoTLock did not exist): a device
# clock. The sweep for such messages reads below it (`to`).
EARLIEST_REAL_TIME = 1_704_067_200.0  # 2024-01-01T00:00:00Z
# A device time this far ahead of the read is a clock running fast.
MAX_AHEAD_SECONDS = 60.0
# Reads start this long before the cursor: a message the platform stored a moment late
# (or dated by a device clock a little behind) is still read, and its digest dedupes it.
LOOKBACK_SECONDS = 30.0
# Households one claim of the idle sweep takes (about 5 channels each, a few seconds of
# reads): workers sweeping at once take batch after batch side by side.
IDLE_BATCH = 100
# How many device-dated messages a cursor remembers (a misbehaving device cannot grow it).
MAX_STRAYS = 1000
# The report key of a sealed gateway whose household key is missing: a secret of this
# process that nobody can have MAC'd with, so nothing it says is applied.
UNCHECKABLE = secrets.token_bytes(32)


class ReportKind(enum.StrEnum):
    ANSWER = "answer"  # Done / Failed to a command
    OPENED = "opened"
    CLOSED = "closed"
    REJECTED = "rejected"
    BATTERY = "battery"
    HEARTBEAT = "heartbeat"
    # A box that keeps rules (docs/device-protocol.md, "Rules the box enforces"):
    REFUSED = "refused"  # a PIN it holds, refused now: value names the PIN, reason says why
    LOCKOUT = "lockout"  # locked out after wrong PINs: value is until when (epoch seconds)
    FIRST = "first"  # dual control: a first PIN accepted, waiting for a second
    UNKNOWN = "unknown"  # a record the portal does not know


@dataclass(frozen=True)
class DeviceReport:
    """One message of a device channel, as the domain needs it."""

    kind: ReportKind
    at: float  # the platform's time for it (seconds since the epoch), as the reader gave it
    # When it was received: `at` when that is a receive time (or a believable device
    # time), else the moment the reader was asked. Orders the reports and dates events.
    received: float
    digest: str  # identifies the message among those received at the same time
    publisher: str | None
    subject: str  # the record's base name: the gateway thing, or the channel it names
    name: str  # the record name (AUTH, OPENED, ...)
    unit: str | None = None
    # ANSWER: the command's value as echoed; OPENED, REFUSED, FIRST: the PIN (digits, or a
    # sealed box's reference; None when opened remotely); REJECTED: wrong attempts in a
    # row; BATTERY: percent; LOCKOUT: until when.
    value: object = None
    done: bool | None = None  # ANSWER: Done (True) or Failed (False)
    reason: str | None = None  # ANSWER: the Failed reason; REFUSED, REJECTED: the REASON
    remote: bool = False  # OPENED: by a remote unlock
    # OPENED by a box that keeps rules: opens the PIN has left, a duress opening, and the
    # other PIN (digits or reference) of a dual-control opening.
    left: int | None = None
    duress: bool = False
    second: object = None
    # A sealed gateway's report: the counter of its pack when its MAC checked out, else None.
    counter: int | None = None

    @property
    def device_dated(self) -> bool:
        """The platform kept a device time no receive time can be: not cursor material."""
        return self.received != self.at


def received_time(platform_time: float, read_at: float) -> float:
    """The platform's time for a message when it can be when the message was received (or a
    device time close to it), else `read_at`: the reader was asked then, so it was received
    before and, read at the fast interval, only a second or two before."""
    if EARLIEST_REAL_TIME <= platform_time <= read_at + MAX_AHEAD_SECONDS:
        return platform_time
    return read_at


@dataclass(frozen=True)
class ChannelToRead:
    channel_id: str
    account_id: uuid.UUID
    gateway_id: uuid.UUID
    mailbox_id: uuid.UUID | None
    publisher: str  # the gateway's thing id: the only publisher trusted on this channel
    thing_key: str  # the household's portal thing key: reads as a thing of the channel
    since: float | None  # the reader's `from`: the cursor's time less the look-back
    undated_total: int = 0  # device-dated messages below 2024 the reader held at the last sweep
    # A sealed gateway's: the key its reports are authenticated with (None: seed, unchecked).
    report_key: bytes | None = None


# --- which channels -------------------------------------------------------------------

# A command handed to StreamIoT and not answered yet, on a channel an answer can come back on.
_WAITING = (
    Command.state.in_((CommandState.SENDING, CommandState.SENT)),
    Command.channel_id.is_not(None),
    # A removal's channels are deleted right after it goes out: no answer can be read (a
    # DELETE carrying an old key, for a box that got a new key pair, is answered).
    sa.or_(Command.action.not_in(("DESTRUCT", "DELETE")), Command.value.is_not(None)),
)

def channels_to_read_fast() -> list[ChannelToRead]:
    """Channels read every REPLY_POLL_SECONDS: every channel of a household a member is
    looking at (portal/services/presence.py) or with a command waiting for its answer.
    Idle households are left to the slow read, so the cost grows with active households."""
    watched = set(db.session.scalars(
        sa.select(Account.id).where(Account.watched_until > utcnow(), Account.link_state == LINK_CONNECTED,
                                    ~_mqtt_covered())
    ))
    active = watched | _accounts_waiting()
    return _channels(channel_ids=set(), account_ids=active) if active else []


def _mqtt_covered():
    """Households an MQTT subscriber holds subscribed (portal/services/mqtt_coverage.py):
    their messages wake a read as they arrive, so polling them is only the safety net.
    Commands waiting for an answer are still read at the fast interval."""
    return sa.and_(Account.mqtt_until.is_not(None), Account.mqtt_until > utcnow())


def _accounts_waiting() -> set[uuid.UUID]:
    """Households with a command handed to StreamIoT and not answered yet."""
    return set(db.session.scalars(
        sa.select(Command.account_id).where(*_WAITING).distinct()
    ))


def channels_of_linked_households(*, mqtt: bool = False, households: set[uuid.UUID] | None = None
                                  ) -> list[ChannelToRead]:
    """Every device channel of every linked household no MQTT subscriber holds (read every
    IDLE_POLL_SECONDS), or with `mqtt`, of those one holds (IDLE_POLL_SECONDS_WITH_MQTT);
    with `households`, of those households only (the idle sweep's claim)."""
    if households is not None:
        return _channels(channel_ids=set(), account_ids=households, mqtt=mqtt) if households else []
    return _channels(channel_ids=None, mqtt=mqtt)


# A household's first row is an insert that another worker may make at the same instant.
_INSERT: dict[str, Callable[[type[IdleRead]], postgresql.Insert | sqlite.Insert]] = {
    "postgresql": postgresql.insert,
    "sqlite": sqlite.insert,
}


def claim_idle_households(interval: float, *, mqtt: bool, swept_at: datetime) -> set[uuid.UUID]:
    """Take up to IDLE_BATCH linked households (of those an MQTT subscriber holds, or of the
    others, as `mqtt` says) that no idle sweep took within `interval` seconds before
    `swept_at`, note them taken now, and commit: the idle sweep of every worker process
    shares one `idle_reads` row per household, so each is read once per interval however
    many workers sweep. Empty: none is due.

    The interval is counted from the last take whatever the household was then, so one an
    MQTT subscriber stopped holding is due again IDLE_POLL_SECONDS after its last read, not
    IDLE_POLL_SECONDS_WITH_MQTT. A household never taken gets its row, due at once.

    One statement, UPDATE ... WHERE account_id IN (SELECT ... LIMIT n) RETURNING: PostgreSQL
    locks the pick with FOR UPDATE SKIP LOCKED, so workers claim side by side and never the
    same household; on SQLite the INSERT before it takes the single write lock first.
    """
    now = utcnow()
    due_by = swept_at - timedelta(seconds=interval)
    linked = sa.and_(Account.link_state == LINK_CONNECTED, _mqtt_covered() if mqtt else ~_mqtt_covered())
    dialect = db.session.get_bind().dialect.name
    never_taken = (
        sa.select(Account.id, sa.literal(due_by, type_=IdleRead.__table__.c.read_at.type))
        .where(linked, ~sa.exists().where(IdleRead.account_id == Account.id))
    )
    db.session.execute(
        _INSERT[dialect](IdleRead).from_select(["account_id", "read_at"], never_taken).on_conflict_do_nothing()
    )
    pick = (
        sa.select(IdleRead.account_id)
        .join(Account, Account.id == IdleRead.account_id)
        .where(IdleRead.read_at <= due_by, linked)
        .order_by(IdleRead.read_at)
        .limit(IDLE_BATCH)
    )
    if dialect != "sqlite":
        pick = pick.with_for_update(skip_locked=True, of=IdleRead)
    taken = set(db.session.scalars(
        sa.update(IdleRead).where(IdleRead.account_id.in_(pick)).values(read_at=now)
        .returning(IdleRead.account_id).execution_options(synchronize_session=False)
    ))
    db.session.commit()
    return taken


def channels_named(channel_ids) -> list[ChannelToRead]:
    """These channels, if they belong to a linked household (an MQTT wake-up names them)."""
    named = {c for c in channel_ids if c}
    return _channels(channel_ids=named) if named else []


def _channels(channel_ids: set | None, account_ids: set | None = None, *, mqtt: bool | None = None
              ) -> list[ChannelToRead]:
    """The channels to read, with what reading them needs. None for both: all of them (of
    households an MQTT subscriber holds or not, as `mqtt` says); else the channels named,
    and every channel of the households named."""
    linked = sa.select(Account.id).where(Account.link_state == LINK_CONNECTED)
    if mqtt is not None:
        linked = linked.where(_mqtt_covered() if mqtt else ~_mqtt_covered())
    gw_stmt = sa.select(Gateway).where(
        Gateway.channel_id.is_not(None), Gateway.thing_id.is_not(None), Gateway.account_id.in_(linked)
    )
    mb_stmt = (
        sa.select(Mailbox, Gateway)
        .join(Gateway, Gateway.id == Mailbox.gateway_id)
        .where(Mailbox.channel_id.is_not(None), Gateway.thing_id.is_not(None), Mailbox.account_id.in_(linked))
    )
    if channel_ids is not None or account_ids is not None:
        named, households = channel_ids or set(), account_ids or set()
        gw_stmt = gw_stmt.where(sa.or_(Gateway.channel_id.in_(named), Gateway.account_id.in_(households)))
        mb_stmt = mb_stmt.where(sa.or_(Mailbox.channel_id.in_(named), Mailbox.account_id.in_(households)))
    gateways = db.session.scalars(gw_stmt).all()
    boxes = db.session.execute(mb_stmt).all()
    account_ids = {g.account_id for g in gateways} | {mb.account_id for mb, _g in boxes}
    if not account_ids:
        return []
    accounts = {a.id: a for a in db.session.scalars(sa.select(Account).where(Account.id.in_(account_ids)))}
    wanted = [g.channel_id for g in gateways] + [mb.channel_id for mb, _g in boxes]
    cursors = {
        row.channel_id: row
        for row in db.session.execute(
            sa.select(ChannelCursor.channel_id, ChannelCursor.last_time, ChannelCursor.seen)
            .where(ChannelCursor.channel_id.in_(wanted))
        )
    }
    keys: dict = {}

    def key_of(account_id) -> str | None:
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

    report_keys: dict = {}

    def report_key_of(gateway: Gateway) -> bytes | None:
        if gateway.protocol != PROTOCOL_SEALED:
            return None
        if gateway.id not in report_keys:
            account = accounts.get(gateway.account_id)
            try:
                report_keys[gateway.id] = (
                    device_link.link_key(account, gateway, device_link.REPORT) if account else None
                )
            except crypto.DecryptionError:
                log.error("household %s: its link key does not decrypt", gateway.account_id)
                report_keys[gateway.id] = None
            if report_keys[gateway.id] is None:
                # Sealed, yet no key to check its reports with: nothing it says can be trusted.
                report_keys[gateway.id] = UNCHECKABLE
        return report_keys[gateway.id]

    def target(channel_id, gateway: Gateway, mailbox_id) -> ChannelToRead | None:
        key = key_of(gateway.account_id)
        if not key or not gateway.thing_id or not channel_id:
            return None
        cursor = cursors.get(channel_id)
        last_time = cursor.last_time if cursor is not None else 0.0
        return ChannelToRead(channel_id, gateway.account_id, gateway.id, mailbox_id, gateway.thing_id, key,
                             since=max(last_time - LOOKBACK_SECONDS, 1.0) if last_time else None,
                             undated_total=int((cursor.seen or {}).get("stray_total", 0)) if cursor else 0,
                             report_key=report_key_of(gateway))

    found = [target(g.channel_id, g, None) for g in gateways] + [target(mb.channel_id, g, mb.id) for mb, g in boxes]
    return [t for t in found if t is not None]


# --- applying reports -------------------------------------------------------------------

def apply_reports(target: ChannelToRead, reports: list[DeviceReport], *, undated_total: int | None = None) -> int:
    """Apply the reports of one channel not applied before, in the order they were
    received. Returns how many changed something.

    Each report is its own short transaction: the channel's cursor locked, the report
    checked against it, applied, the cursor moved past it, committed. So a read holding
    many reports never keeps SQLite's write lock (or the cursor's row lock) for more than
    one report, and pages and other workers go on between them; a report applied is never
    applied again, because its effect and the cursor commit together.

    `undated_total`: how many messages the sweep below 2024 found (None: no sweep). A read
    that found nothing need not come here: note_read notes many such reads at once.
    """
    # Device-dated twins are told apart by their place among the read's identical ones.
    held: Counter[str] = Counter()
    twins: list[int] = []
    for report in reports:
        held[report.digest] += 1
        twins.append(held[report.digest])
    # What the cursor already holds is skipped here; each report left is checked again
    # under the lock, as another worker may have applied it since.
    cursor = _locked_cursor(target)
    if cursor is None:
        return 0
    position = _position(cursor)
    fresh = [i for i in range(len(reports)) if _fresh(reports[i], twins[i], *position)]
    applied = 0
    for index in sorted(fresh, key=lambda i: (reports[i].received, reports[i].at)):
        outcome = _apply_in_turn(target, reports[index], twins[index])
        if outcome is None:
            return applied
        applied += outcome
    if fresh:
        cursor = _locked_cursor(target)
        if cursor is None:
            return applied
    if _device_of(target) is None:
        db.session.rollback()
        return applied
    if undated_total is not None:
        cursor.seen = {**(cursor.seen or {}), "stray_total": undated_total}
    cursor.last_polled_at = utcnow()
    db.session.commit()
    return applied


def note_read(channel_ids: list[str], *, chunk: int = 1000) -> None:
    """The reads of these channels found nothing: one UPDATE per `chunk` channels (never a
    lock and a write per channel, which at 10,000 households were most of a poll's work)."""
    if not channel_ids:
        return
    now = utcnow()
    for start in range(0, len(channel_ids), chunk):
        db.session.execute(
            sa.update(ChannelCursor).where(ChannelCursor.channel_id.in_(channel_ids[start:start + chunk]))
            .values(last_polled_at=now).execution_options(synchronize_session=False))
    db.session.commit()


def _locked_cursor(target: ChannelToRead) -> ChannelCursor | None:
    """The channel's cursor, locked for this transaction (made on first use; None when
    another worker made it this instant: it reads next time)."""
    cursor = db.session.get(ChannelCursor, target.channel_id, with_for_update=True, populate_existing=True)
    if cursor is not None:
        return cursor
    cursor = ChannelCursor(channel_id=target.channel_id, account_id=target.account_id, last_time=0.0, seen={})
    db.session.add(cursor)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        return None
    return cursor


def _position(cursor: ChannelCursor) -> tuple[float, dict[str, float], Counter[str]]:
    """How far the channel was applied: the newest receive time, the digests applied in the
    look-back window before it, and the counts of device-dated reports applied."""
    seen = cursor.seen or {}
    return cursor.last_time or 0.0, dict(seen.get("recent", {})), Counter(seen.get("strays", {}))


def _device_of(target: ChannelToRead) -> tuple[Gateway, Mailbox | None] | None:
    """The gateway and box (None: the gateway channel) the channel belongs to; None if gone."""
    gateway = db.session.get(Gateway, target.gateway_id)
    mailbox = db.session.get(Mailbox, target.mailbox_id) if target.mailbox_id else None
    if gateway is None or (target.mailbox_id and mailbox is None):
        return None
    return gateway, mailbox


def _apply_in_turn(target: ChannelToRead, report: DeviceReport, twin: int) -> int | None:
    """One report in its own transaction: 1 if it changed something, 0 if it was applied
    before or ignored, None if the channel's device or cursor is gone."""
    cursor = _locked_cursor(target)
    if cursor is None:
        return None
    device = _device_of(target)
    if device is None:
        db.session.rollback()
        return None
    gateway, mailbox = device
    seen = cursor.seen or {}
    last_time, recent, strays = _position(cursor)
    if not _fresh(report, twin, last_time, recent, strays):
        db.session.rollback()
        return 0
    if report.device_dated:
        strays[report.digest] += 1
    else:
        recent[report.digest] = report.at
        last_time = max(last_time, report.at)
    why = _unauthentic(target, cursor, report)
    if why is None:
        why = _apply_one(gateway, mailbox, report, target.channel_id)
    if why is not None:
        _ignore(gateway, mailbox, target.channel_id, report, why)
    cursor.last_time = last_time
    cursor.seen = {
        "recent": {d: t for d, t in recent.items() if t >= last_time - LOOKBACK_SECONDS},
        "strays": dict(strays.most_common(MAX_STRAYS)),
        "stray_total": seen.get("stray_total", 0),
    }
    db.session.commit()
    return 1 if why is None else 0


def _unauthentic(target: ChannelToRead, cursor: ChannelCursor, report: DeviceReport) -> str | None:
    """Why a sealed gateway's report cannot be believed (None: it can, and its counter is
    taken). A seed gateway's reports are not checked."""
    if target.report_key is None:
        return None
    if report.counter is None:
        return "not authenticated: its MAC is missing or wrong"
    if report.counter <= (cursor.report_counter or 0):
        return "a replay: its counter is not newer than the last report's"
    cursor.report_counter = report.counter
    return None


def _fresh(report: DeviceReport, twin: int, last_time: float, recent: dict, strays: Counter) -> bool:
    """Whether the report was not applied before. A receive-dated report is known by its
    digest within the look-back window; device-dated ones (identical twins possible: a
    relative `t` repeats) by how many of each were applied: the read's `twin`-th one is new
    when fewer than `twin` were."""
    if report.device_dated:
        return twin > strays[report.digest]
    if report.digest in recent or report.digest in strays:
        return False  # a repeat, or a clock-ahead message whose time has come
    return not (last_time and report.at < last_time - LOOKBACK_SECONDS)


def _ignore(gateway: Gateway, mailbox: Mailbox | None, channel_id: str, report: DeviceReport, why: str) -> None:
    db.session.add(IgnoredDeviceMessage(
        account_id=gateway.account_id,
        gateway_id=gateway.id,
        mailbox_id=mailbox.id if mailbox else None,
        channel_id=channel_id,
        publisher=(report.publisher or "")[:64] or None,
        name=report.name[:64],
        unit=(report.unit or "")[:32] or None,
        received_at=_moment(report.received),
        why=why[:200],
    ))


def _moment(at: float) -> datetime:
    try:
        return datetime.fromtimestamp(at, UTC)
    except (OverflowError, OSError, ValueError):
        return utcnow()


def _when(report: DeviceReport) -> datetime:
    return min(_moment(report.received), utcnow())


def _apply_one(gateway: Gateway, mailbox: Mailbox | None, report: DeviceReport, channel_id: str) -> str | None:
    """Apply one report; None when it changed something, else why it was ignored."""
    if report.publisher != gateway.thing_id:
        return "published by another thing than the gateway"
    if report.kind == ReportKind.ANSWER and report.name == REKEY:
        return None  # the key replacement job read it and switched the gateway over
    if report.kind == ReportKind.ANSWER:
        return _apply_answer(gateway, mailbox, report)
    if report.subject != gateway.thing_id:
        return "not about this gateway"  # every event names the gateway thing
    if report.kind == ReportKind.HEARTBEAT:
        if mailbox is not None:
            return "a heartbeat on a box channel"
        _heard(gateway, _when(report))
        return None
    if mailbox is None:
        return "a box event on the gateway channel"
    if mailbox.status == DeviceState.REMOVING:
        return "the box is being removed"
    handler = _EVENTS.get(report.kind)
    if handler is None:
        return "not a record the portal knows"
    handler(gateway, mailbox, report)
    mailbox.last_event_at = _when(report)
    return None


def _heard(gateway: Gateway, at: datetime) -> None:
    """A heartbeat sent at `at`. One that brings the gateway online as of now (it read waiting
    or offline; a late one read after a gap may not) also sets online_since, which moves the
    count that every polled part follows; one from a gateway already online moves only the
    household's heartbeats count, which the parts that show when it was last heard follow
    (models/changes.py)."""
    now = utcnow()
    before = gateway.last_heartbeat_at
    gateway.last_heartbeat_at = max(before or at, at)
    was_online = before is not None and now < deliveries.offline_from(before)
    if not was_online and now < deliveries.offline_from(gateway.last_heartbeat_at):
        gateway.online_since = gateway.last_heartbeat_at


def _apply_answer(gateway: Gateway, mailbox: Mailbox | None, report: DeviceReport) -> str | None:
    command = _match_command(gateway, mailbox, report)
    if command is None:
        return "an answer to no command waiting for one"
    if report.done:
        late = command.action == "UNLOCK" and _opened_late(command, report.received)
        settled = deliveries.confirm(command, late=late)
    elif command.action == "UNLOCK" and report.reason == "expired":
        settled = deliveries.expired_on_device(command)
    else:
        settled = deliveries.refuse(command, report.reason or "The box refused it without saying why.")
    return None if settled else "its command was settled by someone else first"


def _opened_late(command: Command, at: float) -> bool:
    """A Done to an UNLOCK received after the deadline the command carried (a box that
    checks its deadline never does; if one does, the page says so)."""
    return at > deliveries.unlock_deadline(command) + UNLOCK_ANSWER_GRACE_SECONDS


def _match_command(gateway: Gateway, mailbox: Mailbox | None, report: DeviceReport) -> Command | None:
    """The command this answer is about: same device and record name, handed to StreamIoT
    before the answer arrived, still waiting, and the same value."""
    channel = ACTION_CHANNEL.get(report.name)
    if channel is None or (channel == "mailbox") != (mailbox is not None):
        return None
    # Each command is answered on the channel it travelled on, with the base it had.
    expected_base = {"DESTRUCT": gateway.channel_id, "Mailbox": None}.get(report.name, gateway.thing_id)
    if expected_base is not None and report.subject != expected_base:
        return None
    echoing = _echoing(gateway, mailbox, report)
    if echoing is None:
        return None
    candidates = deliveries.answer_candidates(
        gateway_id=gateway.id, mailbox_id=mailbox.id if mailbox else None, action=report.name,
        received_at=_moment(report.received), echoing=echoing,
    )
    matching = [c for c in candidates if _same_value(c, gateway, mailbox, report)]
    # The one waiting for its answer first (an expired unlock only after those).
    matching.sort(key=lambda c: c.state == CommandState.EXPIRED)
    return matching[0] if matching else None


def _echoing(gateway: Gateway, mailbox: Mailbox | None, report: DeviceReport) -> sa.ColumnElement[bool] | None:
    """The commands whose value the answer echoes, as a condition the database answers from
    an index: a PIN by its reference (sealed) or its keyed digest (seed), an unlock by the
    deadline it carried, a safe-mode change by its version. So a reply costs one query
    however many commands a box has waiting, and no digits are decrypted. None: no command
    can carry this value. Other actions (a few per device) are checked by _same_value."""
    value, action = report.value, report.name
    if action in deliveries.PIN_ACTIONS and mailbox is not None:
        if gateway.protocol == PROTOCOL_SEALED:
            if not isinstance(value, str):
                return None
            pins = sa.select(Pin.id).where(Pin.mailbox_id == mailbox.id, Pin.ref == value)
        else:
            if isinstance(value, bool) or not isinstance(value, int):
                return None
            pins = sa.select(Pin.id).where(Pin.mailbox_id == mailbox.id,
                                           Pin.digits_digest == digest_of(mailbox.id, str(value)))
        return Command.pin_id.in_(pins.scalar_subquery())
    if action == "UNLOCK":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**40:
            return None
        # The deadline is expires_at in whole seconds (deliveries.unlock_deadline).
        deadline = datetime.fromtimestamp(value, UTC)
        return sa.and_(Command.expires_at >= deadline, Command.expires_at < deadline + timedelta(seconds=1))
    if action == deliveries.SAFE:
        if isinstance(value, bool) or not isinstance(value, int):
            return None
        return Command.value == str(value)
    return sa.true()


def _same_value(command: Command, gateway: Gateway, mailbox: Mailbox | None, report: DeviceReport) -> bool:
    value = report.value
    if command.action in ("CONNECT", "REGISTER"):
        return value is True
    if command.action == "UNLOCK":
        # Each unlock carries its own deadline, and its answer echoes it.
        return isinstance(value, int) and command.expires_at is not None \
            and value == deliveries.unlock_deadline(command)
    if command.action == "DESTRUCT":
        return value == gateway.public_key
    if command.action == deliveries.SAFE:
        # Each safe-mode change carries its own version, and its answer echoes it.
        return isinstance(value, int) and not isinstance(value, bool) and command.value == str(value)
    if command.action == "DELETE" and command.value:
        return value == command.value  # the old key of a box that got a new key pair
    if command.action in ("ADD", "Mailbox", "DELETE"):
        row = db.session.execute(
            sa.select(Mailbox.public_key, Mailbox.channel_id).where(Mailbox.id == command.mailbox_id)
        ).first()
        if row is None or value != row.public_key:
            return False
        return command.action != "Mailbox" or report.subject == row.channel_id
    # A PIN's answer (sealed: its reference; seed: its digits, by keyed digest) was matched
    # by _echoing in the query that found the candidates.
    return command.action in deliveries.PIN_ACTIONS and mailbox is not None


# --- events -----------------------------------------------------------------------------

def _record(gateway: Gateway, mailbox: Mailbox, report: DeviceReport, kind: str, summary: str,
            details: dict | None = None) -> None:
    activity.record(
        mailbox.account_id,
        kind=kind,
        summary=summary,
        actor_kind="box",
        actor_label=mailbox.name,
        gateway_id=gateway.id,
        mailbox_id=mailbox.id,
        details=details,
        occurred_at=_when(report),
    )


def _local(mailbox: Mailbox, moment: datetime, form: str = "%a %H:%M") -> str:
    """A time in words in the household's zone ("Sat 21:14")."""
    name = db.session.scalar(sa.select(Account.time_zone).where(Account.id == mailbox.account_id))
    return moment.astimezone(timezones.zone(name)).strftime(form)


def _pin_named(mailbox: Mailbox, value: object) -> Pin | None:
    """The box's PIN a report names: a sealed box by its reference, a seed box by its digits."""
    if isinstance(value, str):
        found = Pin.ref == value
    elif isinstance(value, int) and not isinstance(value, bool):
        found = Pin.digits_digest == digest_of(mailbox.id, str(value))
    else:
        return None
    return db.session.scalars(sa.select(Pin).where(Pin.mailbox_id == mailbox.id, found)).first()


def _opened(gateway: Gateway, mailbox: Mailbox, report: DeviceReport) -> None:
    mailbox.is_open = True
    if report.remote:
        _record(gateway, mailbox, report, "box.opened_remote", "Opened remotely")
        deliveries.confirm_waiting_unlock(mailbox.id)
        _parcel_collected(gateway, mailbox, report)
        return
    # An opening by PIN resets the box's count of wrong PINs: no lockout holds any more.
    mailbox.locked_until = None
    pin = _pin_named(mailbox, report.value)
    first = _pin_named(mailbox, report.second) if report.second is not None else None
    if pin is not None:
        _count_use(pin, report.left)
    if first is not None:
        _count_use(first, None)
    details = {"pin_id": str(pin.id)} if pin is not None else {}
    if report.duress or (pin is not None and pin.purpose == PIN_DURESS):
        _record(gateway, mailbox, report, "box.duress",
                f"Opened under duress with the duress PIN of {_whose(pin)}", {**details, "duress": True})
        return
    if pin is not None and pin.purpose == PIN_COURIER:
        _courier_opened(pin)
        _record(gateway, mailbox, report, "box.opened_pin", f"Courier “{pin.label}” opened the box",
                {**details, "courier": True})
        return
    if report.second is not None:
        names = " and ".join(f"“{p.label}”" if p is not None else "a PIN not on the list any more"
                             for p in (first, pin))
        _record(gateway, mailbox, report, "box.opened_pin", f"Opened with PINs {names}",
                {**details, "first_pin_id": str(first.id) if first is not None else None})
    elif pin is not None:
        _record(gateway, mailbox, report, "box.opened_pin", f"Opened with PIN “{pin.label}”", details)
    elif report.value is None:
        _record(gateway, mailbox, report, "box.opened_pin", "Opened with a PIN")
    else:
        _record(gateway, mailbox, report, "box.opened_pin", "Opened with a PIN that is not on the list any more")
    if pin is not None and pin.purpose == PIN_HOUSEHOLD:
        _parcel_collected(gateway, mailbox, report)


def _count_use(pin: Pin, left: int | None) -> None:
    """One more open of the PIN; a box that counts says how many it has left, which wins."""
    uses = Pin.uses + 1
    if left is not None and pin.max_uses is not None:
        uses = sa.literal(max(pin.max_uses - left, 0))
    db.session.execute(
        sa.update(Pin).where(Pin.id == pin.id).values(uses=uses).execution_options(synchronize_session="fetch")
    )


def _whose(pin: Pin | None) -> str:
    """Whose duress PIN it was: the member it belongs to, else its label."""
    if pin is None:
        return "a member"
    member = db.session.get(User, pin.assigned_to_id) if pin.assigned_to_id else None
    if member is not None:
        return member.display_name or member.email
    return f"“{pin.label}”"


class ParcelState(enum.StrEnum):
    """A courier's parcel, per box (Pin.delivery_state of a delivery code; None: waiting for
    the courier): the courier opens the box, the box closes on the parcel, someone of the
    household opens it. Each step is a compare-and-set on the step before, so a report read
    twice, or a forged one, cannot apply a step twice."""

    OPENED = "opened"
    DELIVERED = "delivered"
    COLLECTED = "collected"


def _parcel_step(where, expected: ParcelState | None, new: ParcelState, **values) -> list[Pin]:
    """Move the PINs `where` selects from `expected` to `new`; the PINs that moved."""
    state = Pin.delivery_state.is_(None) if expected is None else Pin.delivery_state == expected
    moved = db.session.scalars(
        sa.update(Pin).where(where, state).values(delivery_state=new, **values)
        .returning(Pin.id).execution_options(synchronize_session="fetch")
    ).all()
    if not moved:
        return []
    return list(db.session.scalars(sa.select(Pin).where(Pin.id.in_(moved)).order_by(Pin.created_at)))


def _courier_opened(pin: Pin) -> None:
    _parcel_step(Pin.id == pin.id, None, ParcelState.OPENED)


def _parcel_delivered(gateway: Gateway, mailbox: Mailbox, report: DeviceReport) -> None:
    at = _when(report)
    pins = _parcel_step(sa.and_(Pin.mailbox_id == mailbox.id, Pin.purpose == PIN_COURIER),
                        ParcelState.OPENED, ParcelState.DELIVERED, delivered_at=at)
    if not pins:
        return
    db.session.execute(
        sa.update(Mailbox).where(Mailbox.id == mailbox.id, Mailbox.parcel_since.is_(None)).values(parcel_since=at)
        .execution_options(synchronize_session="fetch")
    )
    labels = ", ".join(f"“{p.label}”" for p in pins)
    _record(gateway, mailbox, report, "box.parcel_delivered", f"Parcel delivered ({labels})",
            {"pin_ids": [str(p.id) for p in pins]})


def _parcel_collected(gateway: Gateway, mailbox: Mailbox, report: DeviceReport) -> None:
    pins = _parcel_step(Pin.mailbox_id == mailbox.id, ParcelState.DELIVERED, ParcelState.COLLECTED,
                        collected_at=_when(report))
    if not pins:
        return
    mailbox.parcel_since = None
    _record(gateway, mailbox, report, "box.parcel_collected", "Parcel collected",
            {"pin_ids": [str(p.id) for p in pins]})


def _closed(gateway: Gateway, mailbox: Mailbox, report: DeviceReport) -> None:
    mailbox.is_open = False
    _record(gateway, mailbox, report, "box.closed", "Closed")
    _parcel_delivered(gateway, mailbox, report)


# Why a box refused a PIN it holds (docs/device-protocol.md), in the household's words.
REFUSAL_WORDS = {
    "not yet": "not valid yet",
    "outside hours": "outside its hours",
    "expired": "expired",
    "used up": "used up",
    "locked out": "the keypad is locked out",
}
LOCKED_OUT = "locked out"


def _refusal_words(reason: str | None) -> str:
    return REFUSAL_WORDS.get(reason or "", "refused by the box")


def _refused(gateway: Gateway, mailbox: Mailbox, report: DeviceReport) -> None:
    pin = _pin_named(mailbox, report.value)
    who = f"“{pin.label}” PIN" if pin is not None else "A PIN not on the list any more"
    when = _local(mailbox, _when(report))
    _record(gateway, mailbox, report, "box.refused", f"{who} refused: {_refusal_words(report.reason)} ({when})",
            {"pin_id": str(pin.id) if pin is not None else None, "reason": (report.reason or "")[:200]})


def _rejected(gateway: Gateway, mailbox: Mailbox, report: DeviceReport) -> None:
    attempts = report.value if isinstance(report.value, int) and not isinstance(report.value, bool) else 1
    if report.reason == LOCKED_OUT:
        when = _local(mailbox, _when(report))
        _record(gateway, mailbox, report, "box.rejected",
                f"Entry refused: {_refusal_words(report.reason)} ({when})",
                {"attempts": attempts, "reason": LOCKED_OUT})
        return
    words = "1 wrong attempt" if attempts == 1 else f"{attempts} wrong attempts in a row"
    _record(gateway, mailbox, report, "box.rejected", f"Wrong PIN entered ({words})", {"attempts": attempts})


def _lockout(gateway: Gateway, mailbox: Mailbox, report: DeviceReport) -> None:
    until = report.value if isinstance(report.value, int) and not isinstance(report.value, bool) else None
    if until is None or until <= 0:
        _record(gateway, mailbox, report, "box.lockout", "Keypad locked out after wrong PINs")
        return
    mailbox.locked_until = _moment(until)
    _record(gateway, mailbox, report, "box.lockout",
            f"Keypad locked out until {_local(mailbox, mailbox.locked_until, '%H:%M')} after wrong PINs",
            {"until": until})


def _first(gateway: Gateway, mailbox: Mailbox, report: DeviceReport) -> None:
    pin = _pin_named(mailbox, report.value)
    which = f"First PIN “{pin.label}”" if pin is not None else "A first PIN"
    _record(gateway, mailbox, report, "box.first", f"{which} accepted: waiting for a second one",
            {"pin_id": str(pin.id)} if pin is not None else None)


def _battery(gateway: Gateway, mailbox: Mailbox, report: DeviceReport) -> None:
    if not isinstance(report.value, int) or isinstance(report.value, bool):
        return
    percent = max(0, min(100, report.value))
    before = mailbox.battery_percent
    mailbox.battery_percent = percent
    mailbox.battery_at = _when(report)
    # A line in the log when it matters: the first report, a drop into "low", a big change.
    if before is None or (percent < BATTERY_LOW <= before) or abs(percent - before) >= 10:
        low = percent < BATTERY_LOW
        summary = f"Battery low: {percent}%" if low else f"Battery at {percent}%"
        _record(gateway, mailbox, report, "box.battery", summary, {"percent": percent, "low": low})


_EVENTS = {
    ReportKind.OPENED: _opened,
    ReportKind.CLOSED: _closed,
    ReportKind.REJECTED: _rejected,
    ReportKind.BATTERY: _battery,
    ReportKind.REFUSED: _refused,
    ReportKind.LOCKOUT: _lockout,
    ReportKind.FIRST: _first,
}


def forget_cursors(channel_ids) -> None:
    """Channels that no longer exist need no cursor (the caller commits)."""
    ids = [c for c in channel_ids if c]
    if ids:
        db.session.execute(sa.delete(ChannelCursor).where(ChannelCursor.channel_id.in_(ids)))
