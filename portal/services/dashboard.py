"""What the device pages show, each read in a fixed number of queries.

The household dashboard, a gateway page and a mailbox page cost the same however many
boxes and PINs there are; every state is put into words (portal.services.deliveries.Shown).
"""
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple, cast

import sqlalchemy as sa
from flask import current_app

from portal.extensions import db
from portal.models import (
    PLATFORM_DOWN,
    Account,
    ActivityEvent,
    Command,
    Gateway,
    Mailbox,
    Membership,
    Pin,
    User,
    utcnow,
)
from portal.models.devices import PROTOCOL_SEALED, MailboxNames
from portal.services import activity, gateway_keys, pin_rules, safe_mode, versions
from portal.services.deliveries import (
    LIVE_PIN_STATES,
    CommandState,
    DeviceState,
    PinState,
    Shown,
    can_withdraw,
    command_shown,
    gateway_shown,
    mailbox_shown,
    offline_from,
    pin_shown,
    platform_waiting,
    unlock_shown,
    waiting_words,
)
from portal.services.errors import NotFound
from portal.services.mailboxes import box_snapshot
from portal.services.rows import BOX_ROW, GATEWAY_ROW, among, every_column, json_rows, read, read_as, unindexed
from portal.services.scope import get_scoped, scoped
from portal.services.visitors import Household

RECENT_UNLOCKS = 3
# Kinds of box that take deliveries (a courier's one-time code).
DELIVERY_KINDS = ("mailbox", "parcel_box")
RECENT_EVENTS = 15
# PINs that ended or were removed, shown under the list with why (expired, used up, removed).
RECENT_ENDED = 5
# The page a new PIN lands on (the newest are last): `pins_page` for the last page.
LAST_PINS_PAGE = -1


@dataclass
class Step:
    label: str
    state: str  # done | current | todo | failed


def _steps(done: dict, plan: list[tuple[str, str]], *, failed: bool, live: bool) -> list[Step]:
    steps, current_found = [], False
    for key, label in plan:
        if done.get(key):
            steps.append(Step(label, "done"))
        elif not current_found:
            current_found = True
            steps.append(Step(label, "failed" if failed else ("current" if live else "todo")))
        else:
            steps.append(Step(label, "todo"))
    return steps


# Step labels in household words: the device service's own terms (its devices, channels and
# message names) are for the support console, never for a household page.
GATEWAY_SETUP_STEPS = [
    ("thing", "Sign the gateway up with the device service"),
    ("channel", "Open a private line to the gateway"),
    ("connect", "Let the gateway and IoTLock use that line"),
    ("key", "Keep the gateway's access key safe (encrypted)"),
    ("connect_sent", "Pair the gateway with IoTLock"),
    ("register_sent", "Introduce the gateway to your household"),
    ("heard", "Hear from the gateway for the first time"),
]
GATEWAY_REMOVAL_STEPS = [
    ("destruct_sent", "Tell the gateway to forget everything"),
    ("mailbox_channels_deleted", "Close the boxes' private lines"),
    ("channel_deleted", "Close the gateway's private line"),
    ("thing_deleted", "Sign the gateway off the device service"),
]
MAILBOX_SETUP_STEPS = [
    ("channel", "Open a private line to the box"),
    ("connect", "Let the gateway and IoTLock use that line"),
    ("add_sent", "Give the gateway the box's key"),
    ("mailbox_sent", "Tell the gateway how to reach the box"),
    ("mailbox_confirmed", "The gateway confirms the box"),
]

# What each message to a device does, in household words ("{box}", "{pin}" filled in).
COMMAND_WORDS = {
    "CONNECT": "Pair with IoTLock",
    "REGISTER": "Register the gateway",
    "REKEY": "Switch to new keys",
    "DESTRUCT": "Forget everything",
    "ADD": "Register the box",
    "Mailbox": "Tell the gateway how to reach the box",
    "AUTH": "Add PIN “{pin}”",
    "UNAUTH": "Remove PIN “{pin}”",
    "UNLOCK": "Open the box",
    "DELETE": "Forget the box",
}


def command_words(command: Command, pin_label: str | None = None) -> str:
    """One message to a device in household words, e.g. "Add PIN “Grandma”"."""
    words = COMMAND_WORDS.get(command.action, "Update the device")
    return words.format(pin=pin_label or "a PIN")


def gateway_steps(gateway: Gateway) -> list[Step]:
    shown = gateway_shown(gateway)
    if gateway.status == DeviceState.REMOVING:
        return _steps(gateway.progress or {}, GATEWAY_REMOVAL_STEPS, failed=bool(gateway.last_error), live=True)
    done = {**(gateway.progress or {}), "heard": gateway.last_heartbeat_at is not None}
    return _steps(done, GATEWAY_SETUP_STEPS, failed=gateway.status == DeviceState.FAILED, live=shown.live)


def mailbox_steps(mailbox: Mailbox) -> list[Step]:
    return _steps(mailbox.progress or {}, MAILBOX_SETUP_STEPS, failed=mailbox.status == DeviceState.FAILED,
                  live=mailbox.status != DeviceState.FAILED)


# --- the dashboard and the gateway page ---------------------------------------------------

@dataclass
class LastEvent:
    summary: str
    occurred_at: datetime


class _BoxColumns(NamedTuple):
    """BoxFacts' columns, in the order the dashboard's statement selects them."""

    id: uuid.UUID
    gateway_id: uuid.UUID
    name: str
    kind: str
    status: str
    last_error: str | None
    progress: dict | None
    is_open: bool | None
    parcel_since: datetime | None
    created_at: datetime
    battery_percent: int | None
    locked_until: datetime | None


class BoxFacts(MailboxNames, _BoxColumns):
    """What a box's row on the dashboard and a gateway page shows, read as columns (a whole
    Mailbox object per row, with its keys and settings, was most of loading the page)."""

    __slots__ = ()


@dataclass
class MailboxRow:
    mailbox: BoxFacts
    shown: Shown
    pins: int = 0
    pending: int = 0
    failed: int = 0
    last_event: LastEvent | None = None

    @property
    def can_open(self) -> bool:
        return self.mailbox.status in (DeviceState.ACTIVE, DeviceState.PROVISIONING)

    @property
    def live(self) -> bool:
        return self.shown.live or self.pending > 0


@dataclass
class GatewayCard:
    gateway: Gateway
    shown: Shown
    mailboxes: list[MailboxRow] = field(default_factory=list)
    pending: int = 0
    failed: int = 0
    # Former members who downloaded its settings (its keys still work): owners only.
    departed: list[str] = field(default_factory=list)
    # How many boxes the gateway has: more than `mailboxes` holds where the list is capped.
    box_total: int = 0

    @property
    def more_boxes(self) -> int:
        """Boxes not in the list (the dashboard shows each gateway's first few)."""
        return self.box_total - len(self.mailboxes)

    @property
    def replacing_keys(self) -> bool:
        return self.gateway.key_state != gateway_keys.KeyState.CURRENT

    @property
    def keys_stopped(self) -> bool:
        """The key replacement gave up; an owner can try again."""
        return self.gateway.key_state == gateway_keys.KeyState.FAILED

    @property
    def needs_new_settings(self) -> bool:
        return gateway_keys.needs_new_settings(self.gateway)

    @property
    def live(self) -> bool:
        return (self.shown.live or self.pending > 0 or self.gateway.key_state == gateway_keys.KeyState.REPLACING
                or any(row.live for row in self.mailboxes))


@dataclass
class Dashboard:
    account: Account | Household
    gateways: list[GatewayCard]
    # The moment its states and words were drawn for (a gateway online until then).
    now: datetime = field(default_factory=utcnow)

    @property
    def pending(self) -> int:
        return sum(card.pending for card in self.gateways)

    @property
    def failed(self) -> int:
        return sum(card.failed for card in self.gateways)

    @property
    def mailbox_count(self) -> int:
        return sum(card.box_total for card in self.gateways)

    @property
    def live(self) -> bool:
        return any(card.live for card in self.gateways)


# The dashboard's statements, built once (building and keying them per request was a fifth
# of the 10-box dashboard): the household and its gateways are parameters.
_ACCOUNT: sa.BindParameter[uuid.UUID] = sa.bindparam("account_id")
_GATEWAYS: sa.BindParameter[list] = sa.bindparam("gateway_ids", expanding=True)
_BOX: sa.BindParameter[uuid.UUID] = sa.bindparam("box_id")
_GATEWAYS_IN_ORDER = scoped(Gateway, _ACCOUNT).order_by(Gateway.created_at, Gateway.id)


def _ranked_boxes() -> sa.Subquery:
    """The gateways' boxes, each with its place on its gateway (in the order they were
    added) and its gateway's number of boxes."""
    return (
        sa.select(
            Mailbox.id,
            sa.func.row_number().over(partition_by=Mailbox.gateway_id,
                                      order_by=(Mailbox.created_at, Mailbox.id)).label("place"),
            sa.func.count().over(partition_by=Mailbox.gateway_id).label("total"),
        )
        .where(Mailbox.account_id == _ACCOUNT, Mailbox.gateway_id.in_(_GATEWAYS))
        .subquery()
    )


def _boxes_with_last_event(owner: bool, capped: bool) -> sa.Select:
    """The gateways' boxes as the columns a row shows, each with its newest event the member
    may see, as its page shows it (newest first, the id breaking ties): one index probe per
    box (ix_activity_mailbox_time), however long the household's history. Then the gateway's
    number of boxes, and the box's live PINs, changes on their way and failed changes
    (counted for the rows kept only, each by index). `capped`:
    only each gateway's first `per_gateway` boxes (the dashboard; the gateway's page lists
    them all)."""
    newest = (
        sa.select(ActivityEvent.id)
        .where(ActivityEvent.mailbox_id == Mailbox.id, activity.visible_to(owner=owner))
        .order_by(ActivityEvent.occurred_at.desc(), ActivityEvent.id.desc())
        .limit(1)
        .correlate(Mailbox)
        .scalar_subquery()
    )
    live_pins = (
        sa.select(sa.func.count())
        .where(Pin.mailbox_id == Mailbox.id, Pin.account_id == _ACCOUNT, among(Pin.status, LIVE_PIN_STATES))
        .correlate(Mailbox)
        .scalar_subquery()
    )
    ranked = _ranked_boxes()
    chosen = sa.select(*(getattr(Mailbox, name) for name in BoxFacts._fields),
                       ActivityEvent.summary, ActivityEvent.occurred_at, ranked.c.total, live_pins,
                       _box_changes(_ON_THEIR_WAY), _box_changes((CommandState.FAILED,)))
    chosen = chosen.join(ranked, ranked.c.id == Mailbox.id)
    if capped:
        # The newest-event probe runs for the rows kept only: the cap is applied first.
        chosen = chosen.where(ranked.c.place <= sa.bindparam("per_gateway"))
    return (
        chosen
        .outerjoin(ActivityEvent, ActivityEvent.id == newest)
        .order_by(Mailbox.created_at, Mailbox.id)
    )


_ON_THEIR_WAY = (CommandState.QUEUED, CommandState.SENDING, CommandState.SENT)


def _box_changes(states: tuple) -> sa.ScalarSelect:
    """How many of the box's changes are in these states (ix_commands_mailbox_state)."""
    return (
        sa.select(sa.func.count())
        .where(Command.mailbox_id == Mailbox.id, among(Command.state, states))
        .correlate(Mailbox)
        .scalar_subquery()
    )


_BOXES = {(owner, capped): _boxes_with_last_event(owner, capped) for owner in (False, True) for capped in (False, True)}
# Each gateway's changes on their way and failed, its boxes' included (the card's totals).
_GATEWAY_CHANGES = (
    sa.select(Command.gateway_id, Command.state, sa.func.count())
    .where(Command.account_id == _ACCOUNT, Command.gateway_id.in_(_GATEWAYS),
           among(Command.state, (*_ON_THEIR_WAY, CommandState.FAILED)))
    .group_by(Command.gateway_id, Command.state)
)


def _cards(account_id, gateways: Sequence[Gateway], waiting: str | None, *, owner: bool,
           per_gateway: int | None = None, now: datetime | None = None) -> list[GatewayCard]:
    """Cards for these gateways: 2 queries (boxes with each one's last event and counts, the
    gateways' change counts); `waiting` is deliveries.platform_waiting. `per_gateway`: a card holds
    the gateway's first boxes only (its totals still count them all)."""
    params = {"account_id": account_id, "gateway_ids": [g.id for g in gateways], "per_gateway": per_gateway}
    capped = per_gateway is not None
    boxes = read(_BOXES[(owner, capped)], params).all()
    counts: dict = {}
    for gateway_id, state, n in read(_GATEWAY_CHANGES, params).all():
        key = (gateway_id, "failed" if state == CommandState.FAILED else "pending")
        counts[key] = counts.get(key, 0) + n
    now = now or utcnow()
    cards = {
        g.id: GatewayCard(
            gateway=g,
            shown=gateway_shown(g, now, waiting),
            pending=counts.get((g.id, "pending"), 0),
            failed=counts.get((g.id, "failed"), 0),
        )
        for g in gateways
    }
    facts = len(BoxFacts._fields)
    for row in boxes:
        box, (summary, occurred_at, total, pins, pending, failed) = BoxFacts(*row[:facts]), row[facts:]
        card = cards[box.gateway_id]
        card.box_total = total
        card.mailboxes.append(
            MailboxRow(
                mailbox=box,
                # mailbox_shown reads the box's status, last error and progress: all here.
                shown=mailbox_shown(cast(Mailbox, box), waiting),
                pins=pins,
                pending=pending,
                failed=failed,
                last_event=LastEvent(summary, occurred_at) if summary is not None else None,
            )
        )
    return [cards[g.id] for g in gateways]


def _departed(cards: list[GatewayCard], account_id, gateway_id=None) -> None:
    """Owners see who left with a gateway's keys: 1 query."""
    departed = gateway_keys.departed_holders(account_id, gateway_id)
    for card in cards:
        card.departed = departed.get(card.gateway.id, [])


def _waiting(now: datetime, mark: versions.Mark | None) -> str | None:
    """platform_waiting's words for a part drawn at `mark`: from the StreamIoT state the
    mark holds (the state its version is made with, and no statement of its own), else read."""
    if mark is None:
        return platform_waiting(now)
    return waiting_words(mark.platform_state, mark.platform_next_try, now)


def dashboard(account: Account | Household, *, owner: bool = False, per_gateway: int | None = None,
              mark: versions.Mark | None = None) -> Dashboard:
    """The household's gateways with their boxes, every state at a glance: 4 queries (5
    for owners: former members who had a gateway's keys; one fewer with the `mark` the part
    is versioned at). `per_gateway`: list only each gateway's first boxes (the page: its
    cost stays flat however many boxes there are; the API lists them all)."""
    now = utcnow()
    gateways = db.session.scalars(_GATEWAYS_IN_ORDER, {"account_id": account.id}).all()
    cards = _cards(account.id, gateways, _waiting(now, mark), owner=owner, per_gateway=per_gateway, now=now)
    if owner:
        _departed(cards, account.id)
    return Dashboard(account=account, gateways=cards, now=now)


def dashboard_part(account_id, *, owner: bool, per_gateway: int | None) -> versions.Part:
    """What the dashboard's live part (gateways/_dashboard.html) is versioned as
    (services/versions.py): a household's dashboard as an owner (who also sees former
    members holding a gateway's keys) or a member sees it, `per_gateway` boxes a card. It
    says when each gateway was last heard, so it follows heartbeats too."""
    return versions.Part(f"dashboard|{account_id}|{owner}|{per_gateway}", shows_heartbeats=True)


def dashboard_version(part: versions.Part, mark: versions.Mark | None, board: Dashboard) -> str | None:
    """The version of the dashboard's live part drawn from `board` at `mark`: it holds while
    the household's count and StreamIoT's state are as they were and its words read the same.
    None: no version (no count to hold it to)."""
    if mark is None:
        return None
    return versions.version(part, mark, _cards_hold_until(board.gateways, board.now, mark))


def _cards_hold_until(cards: Sequence[GatewayCard], now: datetime, mark: versions.Mark, *,
                      shown: Sequence[datetime | None] = (), commands: Sequence[Command] = ()) -> int:
    """When cards drawn at `now` may first read differently with nothing stored having
    changed (_hold_until): their heartbeats' and boxes' last events' words ("3 minutes ago")
    turn, a gateway's last heartbeat grows stale (online -> offline); with what else the part
    shows in words (`shown`) and the changes whose next try it counts down (`commands`)."""
    heard = [card.gateway.last_heartbeat_at for card in cards]
    events = [row.last_event.occurred_at for card in cards for row in card.mailboxes if row.last_event is not None]
    return _hold_until(now, mark, shown=[*heard, *events, *shown],
                       moments=[offline_from(t) for t in heard if t is not None], commands=commands)


@dataclass
class GatewayPage:
    card: GatewayCard
    steps: list[Step]
    setup_commands: list
    owner: bool = False
    key_steps: list = field(default_factory=list)
    # The moment its states and words were drawn for.
    now: datetime = field(default_factory=utcnow)

    @property
    def gateway(self) -> Gateway:
        return self.card.gateway

    @property
    def live(self) -> bool:
        return self.card.live


def gateway_page(account_id, gateway_id, *, owner: bool = False, mark: versions.Mark | None = None) -> GatewayPage:
    """One gateway with its set-up steps and boxes: 5 queries (6 for owners: former members
    who had its keys; one fewer with the `mark` its live part is versioned at)."""
    gateway = get_scoped(Gateway, account_id, gateway_id)
    setup = db.session.scalars(  # the household's changes of no box, by index: not its boxes' history
        scoped(Command, account_id)
        .where(unindexed(Command.gateway_id) == gateway.id, Command.mailbox_id.is_(None))
        .order_by(Command.created_at)
    ).all()
    now = utcnow()
    waiting = _waiting(now, mark)
    card = _cards(account_id, [gateway], waiting, owner=owner, now=now)[0]
    if owner:
        _departed([card], account_id, gateway.id)
    return GatewayPage(
        now=now,
        card=card,
        steps=gateway_steps(gateway),
        setup_commands=[(c, command_shown(c, waiting), command_words(c)) for c in setup],
        owner=owner,
        key_steps=gateway_keys.key_steps(gateway),
    )


def gateway_live_part(account_id, gateway_id, *, owner: bool) -> versions.Part:
    """What a gateway page's live part (gateways/_gateway_live.html) is versioned as: a
    household's gateway as an owner (who also sees former members holding its keys) or a
    member sees it. It says when the gateway was last heard, so it follows heartbeats too."""
    return versions.Part(f"gateway|{account_id}|{_as_uuid(gateway_id)}|{owner}", shows_heartbeats=True)


def gateway_live_version(part: versions.Part, mark: versions.Mark | None, page: GatewayPage) -> str | None:
    """The version of a gateway page's live part drawn from `page` at `mark`, as the
    dashboard's: with the times of its set-up steps and of its keys' replacement in words,
    and the next tries of its set-up steps counted down."""
    if mark is None:
        return None
    commands = [command for command, _shown, _words in page.setup_commands]
    shown = [c.answered_at or c.sent_at or c.created_at for c in commands] + [page.gateway.keys_replaced_at]
    return versions.version(part, mark, _cards_hold_until([page.card], page.now, mark, shown=shown,
                                                          commands=commands))


# --- the mailbox page ---------------------------------------------------------------------

@dataclass
class PinRow:
    pin: Pin
    command: Command | None
    shown: Shown
    # Its rules in words ("Works Mon-Fri 08:00-18:00"), where it stands with them now
    # (pin_rules.rule_state), whose it is, and the other boxes of its group with their states.
    words: str = ""
    rule_state: str = "active"
    owner: str | None = None
    also: list[tuple[str, Shown]] = field(default_factory=list)

    @property
    def can_retry(self) -> bool:
        return self.command is not None and self.shown.key == "failed"

    @property
    def can_withdraw(self) -> bool:
        return can_withdraw(self.command)


@dataclass
class MailboxPage:
    mailbox: Mailbox
    gateway: Gateway
    gateway_shown: Shown
    shown: Shown
    steps: list[Step]
    pins: list[PinRow]
    unlocks: list
    events: list
    snapshot: dict | None = None
    # The latest PINs that left the box: [(pin, "expired" | "used up" | "removed")].
    ended: list[tuple[Pin, str]] = field(default_factory=list)
    # For the forms: the household's members [(user id, name)], its other boxes, its zone.
    members: list[tuple[uuid.UUID, str]] = field(default_factory=list)
    other_boxes: list[sa.Row[tuple[uuid.UUID, str]]] = field(default_factory=list)  # (id, name)
    zone_name: str = "UTC"
    # Safe mode: whether the box's gateway can keep it, and the change carrying the latest.
    safe_mode_possible: bool = False
    safe_shown: Shown | None = None
    # Which of the box's live PINs `pins` holds: page `pins_page` (from 1) of `pins_total`
    # in all, pins_per_page() a page (one page holding all of them when asked for none; no
    # PINs and a total of 0 for a slice of none, as the API reads a box).
    pins_total: int = 0
    pins_page: int = 1
    pins_per_page: int = 1
    # When it was read: the clock its words (and the live part's version) were drawn with.
    now: datetime = field(default_factory=utcnow)

    @property
    def pins_pages(self) -> int:
        return max(1, -(-self.pins_total // self.pins_per_page))

    @property
    def pins_first(self) -> int:
        """The position of the page's first PIN among all of them (from 1)."""
        return (self.pins_page - 1) * self.pins_per_page + 1

    @property
    def delivery_codes_offered(self) -> bool:
        return self.mailbox.kind in DELIVERY_KINDS and self.mailbox.status in (DeviceState.ACTIVE,
                                                                               DeviceState.PROVISIONING)

    @property
    def last_event(self):
        """The box's latest event (the events are newest first), or None."""
        return self.events[0] if self.events else None

    @property
    def can_open(self) -> bool:
        return self.mailbox.status in (DeviceState.ACTIVE, DeviceState.PROVISIONING)

    @property
    def live(self) -> bool:
        return (
            self.shown.live
            or any(row.shown.live for row in self.pins)
            or any(shown.live for _c, shown in self.unlocks)
            or bool(self.safe_shown and self.safe_shown.live)
        )


# The box page's statements, built once (the live part reads them every few seconds).
# The box, its gateway and the household's time zone (the forms' and the times' zone), as
# plain rows: the pages only show them.
_PAGE_BOX = (
    sa.select(*BOX_ROW.columns, *GATEWAY_ROW.columns, Account.time_zone)
    .join(Gateway, Gateway.id == Mailbox.gateway_id).join(Account, Account.id == Mailbox.account_id)
    .where(Mailbox.account_id == _ACCOUNT, Mailbox.id == _BOX)
)
_GATEWAY_AT = len(BOX_ROW.columns)
_ZONE_AT = _GATEWAY_AT + len(GATEWAY_ROW.columns)
# The box page's box row also carries the household's members, as one JSON list of
# (id, display name, email) (rows.json_rows): the PINs' owners and the "Belongs to" choices,
# without a statement of their own.
_MEMBERS_JSON = (
    sa.select(json_rows(User.id, User.display_name, User.email)).select_from(User)
    .join(Membership, Membership.user_id == User.id).where(Membership.account_id == _ACCOUNT)
    .scalar_subquery()
)
_PAGE_BOX_MEMBERS = _PAGE_BOX.add_columns(_MEMBERS_JSON)
# The live part shows the box's latest event only: it comes in the box's row too, as the
# owner or a member may see it.
_PAGE_BOX_LATEST = {owner: _PAGE_BOX_MEMBERS.add_columns(*activity.latest_of_box(Mailbox.id, _ACCOUNT, owner=owner))
                    for owner in (False, True)}
_PINS_LIMIT: sa.BindParameter[int] = sa.bindparam("pins_limit")
_PINS_OFFSET: sa.BindParameter[int] = sa.bindparam("pins_offset")
_NO_LIMIT = 2**31 - 1
_LIVE_HERE = sa.and_(Pin.mailbox_id == _BOX, among(Pin.status, LIVE_PIN_STATES))
# Whether a PIN was added to other boxes with it and is live on one of them. Every PIN
# has a group, most of them one box's alone: their twins are read only where there are.
_twin = sa.orm.aliased(Pin)
_TWINNED = (
    sa.select(_twin.id).where(_twin.group_id == Pin.group_id, _twin.mailbox_id != Pin.mailbox_id,
                              among(_twin.status, LIVE_PIN_STATES))
    .exists().label("twinned")
)
_ENDED_HERE = sa.and_(Pin.account_id == _ACCOUNT, Pin.mailbox_id == _BOX, Pin.status == PinState.REMOVED)
_ENDED_ORDER = (Pin.removed_at.desc(), Pin.id)
# The box's latest ended PINs (RECENT_ENDED of them), newest first.
_PAGE_ENDED = every_column(Pin).where(_ENDED_HERE).order_by(*_ENDED_ORDER).limit(RECENT_ENDED)
# A page of the box's live PINs and its latest ended ones, in one statement: each row is a
# PIN's columns, then whether it has twins, `part` (0: live, 1: ended), its place among its
# own, and (last) how many live PINs there are in all. Live ones come first, each part in its
# own order. The box page's PINs, changes and events are read as rows, not objects
# (rows.read_as): they are only shown.
_PAGE_PINS_AND_ENDED = sa.union_all(
    every_column(Pin).add_columns(
        _TWINNED, sa.literal(0).label("part"),
        sa.func.row_number().over(order_by=(Pin.created_at, Pin.id)).label("place"),
        sa.func.count().over().label("total"))
    .where(Pin.account_id == _ACCOUNT, _LIVE_HERE)
    .order_by(Pin.created_at, Pin.id).limit(_PINS_LIMIT).offset(_PINS_OFFSET).subquery().select(),
    every_column(Pin).add_columns(
        sa.false().label("twinned"), sa.literal(1).label("part"),
        sa.func.row_number().over(order_by=_ENDED_ORDER).label("place"), sa.literal(0).label("total"))
    .where(_ENDED_HERE).order_by(*_ENDED_ORDER).limit(RECENT_ENDED).subquery().select(),
).order_by(sa.literal_column("part"), sa.literal_column("place"))
_PINS_COUNT = sa.select(sa.func.count()).select_from(Pin).where(Pin.account_id == _ACCOUNT, _LIVE_HERE)


def pins_per_page() -> int:
    """A box page lists its live PINs BOX_PINS_PER_PAGE (25) at a time, oldest first: the
    part is drawn again every few seconds, and a box of 500 PINs took 125 ms of CPU to draw
    whole."""
    return max(1, int(current_app.config["BOX_PINS_PER_PAGE"]))


def _pins_slice(fetch, params: dict, offset: int, limit: int) -> tuple[list, int]:
    """(rows, total) of the box's live PINs from `offset` (from 0), at most `limit` of them.
    `fetch(values)` runs one of the paged statements, whose rows end with the total; it is
    counted apart only when the slice starts past the end. A limit of 0 reads none, and
    counts none either (the API reading a box)."""
    if limit <= 0:
        return [], 0
    rows = fetch({**params, "pins_limit": limit, "pins_offset": max(0, offset)})
    if rows:
        return rows, rows[0][-1]
    return [], read(_PINS_COUNT, params).scalar_one() if offset > 0 else 0


def _pins_page(fetch, params: dict, page: int | None) -> tuple[list, int, int]:
    """(rows, total, page) of the box's live PINs: page `page` (the last one when it is past
    the end, or LAST_PINS_PAGE), or every one for None. The box page and the API both read
    through here, so they agree on which PINs a page holds."""
    if page is None:
        rows, total = _pins_slice(fetch, params, 0, _NO_LIMIT)
        return rows, total, 1
    size = pins_per_page()
    if page == LAST_PINS_PAGE:
        page = -(-read(_PINS_COUNT, params).scalar_one() // size)
    page = max(1, page)
    rows, total = _pins_slice(fetch, params, (page - 1) * size, size)
    if rows or not total:
        return rows, total, page if rows else 1
    page = -(-total // size)
    rows, total = _pins_slice(fetch, params, (page - 1) * size, size)
    return rows, total, page


def pins_page_of(account_id, *, pin_id=None, command_id=None) -> int:
    """The page of its box's PINs where the box page lists a PIN (given, or the PIN a change
    is for): where it stands among the box's live PINs, oldest first, or stood, for one no
    longer live. 1 for a change of no PIN (an unlock, safe mode) and for what is not the
    household's."""
    which = Pin.id if pin_id is not None else Pin.command_id
    pin = read(_PIN_PLACE.where(which == _as_uuid(pin_id if pin_id is not None else command_id)),
               {"account_id": account_id}).first()
    if pin is None:
        return 1
    before = read(_PINS_BEFORE, {"account_id": account_id, "box_id": pin.mailbox_id, "created_at": pin.created_at,
                                 "pin_id": pin.id}).scalar_one()
    return before // pins_per_page() + 1


_PIN_PLACE = sa.select(Pin.mailbox_id, Pin.created_at, Pin.id).where(Pin.account_id == _ACCOUNT)
_PINS_BEFORE = (
    sa.select(sa.func.count()).select_from(Pin)
    .where(Pin.account_id == _ACCOUNT, _LIVE_HERE,
           sa.or_(Pin.created_at < sa.bindparam("created_at"),
                  sa.and_(Pin.created_at == sa.bindparam("created_at"), Pin.id < sa.bindparam("pin_id"))))
)
# Each PIN's current change, safe mode's, and the latest unlocks, in one query of two parts,
# each an index lookup (by id; ix_commands_account_box_action). As one filter (`id IN ...
# OR id IN (the latest unlocks)`), both databases read every change the box ever had; the
# first part is by id alone for SQLite too, which would take the box's index (rows.unindexed).
_PAGE_COMMANDS = sa.union(
    every_column(Command).where(unindexed(Command.account_id) == _ACCOUNT, unindexed(Command.mailbox_id) == _BOX,
                                Command.id.in_(sa.bindparam("command_ids", expanding=True))),
    every_column(Command).where(Command.account_id == _ACCOUNT, Command.mailbox_id == _BOX,
                                Command.action == "UNLOCK")
    .order_by(Command.created_at.desc()).limit(RECENT_UNLOCKS).subquery().select(),
)
# The household's boxes as (id, name) rows, columns rather than entities: a household of 50
# boxes made 50 Mailbox objects on every box page, for the add-PIN form's list of them.
_PAGE_OTHER_BOXES = (
    scoped(Mailbox, _ACCOUNT).with_only_columns(Mailbox.id, Mailbox.name)
    .where(Mailbox.status != DeviceState.REMOVING).order_by(Mailbox.name, Mailbox.id)
)


def _page_box(params: dict, statement: sa.Select = _PAGE_BOX) -> tuple[Mailbox, Gateway, str | None, tuple]:
    """(box, its gateway, the household's time zone, what else `statement` reads) of
    `params` (account_id, box_id): the box and gateway as plain rows (Record)."""
    row = read(statement, params).first()
    if row is None:
        raise NotFound()
    return (BOX_ROW.make(row[:_GATEWAY_AT]), GATEWAY_ROW.make(row[_GATEWAY_AT:_ZONE_AT]),
            row[_ZONE_AT], tuple(row[_ZONE_AT + 1:]))


def mailbox_page(account_id, mailbox_id, *, with_snapshot: bool = True, owner: bool = False,
                 pins_page: int | None = None, pins_slice: tuple[int, int] | None = None,
                 events: int = RECENT_EVENTS, other_boxes: bool = False,
                 mark: versions.Mark | None = None) -> MailboxPage:
    """One box: its PINs with their delivery states, recent unlocks and events: 4 queries
    (the box with its household's members; its page of live PINs with its latest ended ones;
    their changes; its events), 3 for its latest event only (it comes with the box), one more
    with `other_boxes` (2 more when some of its PINs are also live on other boxes, added to
    several at once). `pins_page` (from 1): that page of its live PINs (pins_per_page());
    `pins_slice`: (offset, limit) of them instead; neither: all of them. `events`: how many
    of its latest events to read (the live part shows the last one only, an
    activity.LatestEvent; the API none, and reads none). `other_boxes`: also read the
    household's other boxes, for the add-PIN form's list. `mark`: the one a polled part is
    versioned at, whose StreamIoT state the page shows."""
    params = {"account_id": account_id, "box_id": _as_uuid(mailbox_id)}
    latest_only = events == 1
    mailbox, gateway, zone, (member_rows, *latest) = _page_box(
        params, _PAGE_BOX_LATEST[owner] if latest_only else _PAGE_BOX_MEMBERS)
    ended_rows: list | None = None

    def fetch(values: dict) -> list:
        nonlocal ended_rows
        rows = list(read(_PAGE_PINS_AND_ENDED, values).all())
        live = next((at for at, row in enumerate(rows) if row.part), len(rows))
        ended_rows = rows[live:]
        return rows[:live]

    paged = pins_slice is None and pins_page is not None
    if pins_slice is not None:
        pin_rows, pins_total = _pins_slice(fetch, params, *pins_slice)
        shown_page = 1
    else:
        pin_rows, pins_total, shown_page = _pins_page(fetch, params, pins_page)
    pins = cast(list[Pin], pin_rows)  # each row: the PIN's columns, then twinned, part, place, total
    wanted = [p.command_id for p in pins if p.command_id is not None]
    if mailbox.safe_command_id is not None:
        wanted.append(mailbox.safe_command_id)
    found = read_as(Command, _PAGE_COMMANDS, {**params, "command_ids": wanted})
    by_id: dict[uuid.UUID | None, Command] = {c.id: c for c in found}
    unlocks = sorted((c for c in found if c.action == "UNLOCK"), key=lambda c: c.created_at, reverse=True)
    now = utcnow()
    waiting = _waiting(now, mark)
    members = _member_names(member_rows)
    boxes = read(_PAGE_OTHER_BOXES, params).all() if other_boxes else []
    siblings = _group_siblings(account_id, [row for row in pin_rows if row.twinned], waiting)
    owners = dict(members)
    safe_command = by_id.get(mailbox.safe_command_id) if mailbox.safe_command_id else None
    if latest_only:
        shown_events: list = [activity.LatestEvent(*latest)] if latest[0] is not None else []
    else:
        shown_events = activity.recent_for_mailbox(account_id, mailbox.id, limit=events, owner=owner) if events else []
    page = MailboxPage(
        mailbox=mailbox,
        gateway=gateway,
        gateway_shown=gateway_shown(gateway, now, waiting),
        shown=mailbox_shown(mailbox, waiting),
        steps=mailbox_steps(mailbox),
        pins=[
            PinRow(p, by_id.get(p.command_id), pin_shown(p, by_id.get(p.command_id), waiting),
                   words=pin_rules.describe(p, now), rule_state=pin_rules.rule_state(p, now),
                   owner=owners.get(p.assigned_to_id) if p.assigned_to_id else None,
                   also=[(name, shown) for mailbox_id, name, shown in siblings.get(p.group_id, [])
                         if mailbox_id != mailbox.id])
            for p in pins
        ],
        unlocks=[(c, unlock_shown(c, waiting)) for c in unlocks],
        events=shown_events,
        ended=[(p, pin_rules.rule_state(p, now))
               for p in (ended_rows if ended_rows is not None else read_as(Pin, _PAGE_ENDED, params))],
        members=members,
        other_boxes=[b for b in boxes if b.id != mailbox.id],
        zone_name=zone or "UTC",
        safe_mode_possible=gateway.protocol == PROTOCOL_SEALED,
        safe_shown=safe_mode.shown(mailbox, safe_command, waiting),
        pins_total=pins_total,
        pins_page=shown_page,
        now=now,
        # Unpaged (all of them, or the API's slice): one page, no links.
        pins_per_page=pins_per_page() if paged else max(1, pins_total),
    )
    if with_snapshot:
        page.snapshot = box_snapshot(gateway, mailbox)
    return page


# A queued change's next try this close is counted in seconds (deliveries.next_try_words),
# later in minutes.
_RETRY_SECONDS_SHOWN = 120


def live_part(account_id, mailbox_id, pins_page: int) -> versions.Part:
    """What the box's live part (mailboxes/_mailbox_live.html) is versioned as
    (services/versions.py): a household's box and page of its PINs. It shows its gateway
    online or offline, not when it was last heard: a heartbeat of a gateway already online
    does not draw it again (the moment the gateway would read offline ends its version)."""
    return versions.Part(f"box|{account_id}|{_as_uuid(mailbox_id)}|{pins_page}")


def live_version(part: versions.Part, mark: versions.Mark | None, page: MailboxPage) -> str | None:
    """The version of the live part `part` drawn from `page` at `mark`: it holds while the
    household's count and StreamIoT's state are as they were and the part's words read the
    same (_words_hold_until). None: no version (no count to hold it to)."""
    return versions.version(part, mark, _words_hold_until(page, mark)) if mark is not None else None


def box_report_part(account_id, mailbox_id, *, owner: bool) -> versions.Part:
    """What the box itself reports (mailboxes/_box.html: its events) is versioned as: a
    household's box, as an owner or a member reads its events."""
    return versions.Part(f"box-report|{account_id}|{_as_uuid(mailbox_id)}|{owner}")


@dataclass
class BoxReport:
    """What the box itself reports (mailboxes/_box.html): its latest events and, behind a
    virtual gateway, what the pretend box holds; `now`: when it was read."""
    mailbox: Mailbox
    events: list
    snapshot: dict | None
    now: datetime


def box_report(account_id, mailbox_id, *, owner: bool) -> BoxReport:
    """The box's report, polled every few seconds beside its live part: 2 queries (the box
    with its gateway, its latest events), where mailbox_page takes 4 or more."""
    mailbox, gateway, _zone, _ = _page_box({"account_id": account_id, "box_id": _as_uuid(mailbox_id)})
    return BoxReport(mailbox=mailbox, now=utcnow(), snapshot=box_snapshot(gateway, mailbox),
                     events=activity.recent_for_mailbox(account_id, mailbox.id, limit=RECENT_EVENTS, owner=owner))


def box_report_version(part: versions.Part, mark: versions.Mark | None, page: BoxReport) -> str | None:
    """The version of the box's report drawn from `page`: it holds while the household's
    count is as it was and each event's time reads the same. None with a virtual gateway
    (what the pretend box holds is read from the gateway itself, which no count follows)."""
    if mark is None or page.snapshot is not None:
        return None
    return versions.version(part, mark, versions.words_hold_until(page.now, [e.occurred_at for e in page.events]))


def _words_hold_until(page: MailboxPage, mark: versions.Mark) -> int:
    """When the box's live part drawn at page.now may first read differently with nothing
    stored having changed (_hold_until): a time it shows in words ("3 minutes ago") turns, a
    PIN of the page starts or ends, the box's lockout ends, its gateway's last heartbeat grows
    stale, or the next try of one of its changes is counted down."""
    shown = [command.created_at for command, _ in page.unlocks]
    shown.append(page.last_event.occurred_at if page.last_event is not None else None)
    heard = page.gateway.last_heartbeat_at
    moments = [offline_from(heard) if heard is not None else None, page.mailbox.locked_until]
    moments += [t for row in page.pins for t in (row.pin.starts_at, row.pin.ends_at)]
    commands = [command for command, _ in page.unlocks] + [row.command for row in page.pins if row.command]
    return _hold_until(page.now, mark, shown=shown, moments=moments, commands=commands)


def _hold_until(now: datetime, mark: versions.Mark, *, shown: Sequence[datetime | None] = (),
                moments: Sequence[datetime | None] = (), commands: Sequence[Command] = ()) -> int:
    """The second (Unix time) from which a part drawn at `now` may read differently with
    nothing stored having changed: the next second while it counts seconds (StreamIoT is away
    and its next try is counted down, or one of `commands` is queued with its next try under
    two minutes away), else the next minute (a PIN's weekly hours and the day of a time shown
    turn on the minute); sooner when a time `shown` in words turns, one of `moments` comes, or
    a later try's minutes ("trying again in 4 min") go down."""
    retries = [c.retry_at for c in commands if c.state == CommandState.QUEUED and c.retry_at is not None
               and c.retry_at > now]
    if mark.platform_state == PLATFORM_DOWN or any((t - now).total_seconds() <= _RETRY_SECONDS_SHOWN + 1
                                                   for t in retries):
        return math.floor(now.timestamp()) + 1
    # Further off, its minutes go down a minute before the try.
    later = [t - timedelta(seconds=60 * ((math.ceil((t - now).total_seconds()) - 1) // 60)) for t in retries]
    return versions.words_hold_until(now, shown, [*moments, *later])


def _member_names(rows: Sequence | None) -> list[tuple[uuid.UUID, str]]:
    """The household's members as (user id, the name they go by), by name, from their rows
    of (id, display name, email) as _MEMBERS_JSON reads them (ids as text)."""
    return sorted(((_as_uuid(user_id), name or email) for user_id, name, email in rows or ()),
                  key=lambda item: item[1].lower())


def _group_siblings(account_id, grouped: list[Pin], waiting: str | None) -> dict:
    """For PINs added to several boxes at once (`grouped`: those with twins live on other
    boxes): group id -> [(box id, box name, Shown)] of every live PIN of the group, with
    their current changes: two queries for all of them."""
    groups = {p.group_id for p in grouped}
    if not groups:
        return {}
    rows = db.session.execute(
        scoped(Pin, account_id).add_columns(Mailbox.name).join(Mailbox, Mailbox.id == Pin.mailbox_id)
        .where(Pin.group_id.in_(groups), Pin.status.in_(LIVE_PIN_STATES))
    ).all()
    wanted = [pin.command_id for pin, _ in rows if pin.command_id is not None]
    commands = {c.id: c for c in db.session.scalars(scoped(Command, account_id).where(Command.id.in_(wanted)))} \
        if wanted else {}
    found: dict = {}
    for pin, name in sorted(rows, key=lambda r: r[0].created_at):
        found.setdefault(pin.group_id, []).append(
            (pin.mailbox_id, name, pin_shown(pin, commands.get(pin.command_id), waiting)))
    return found


def _as_uuid(value):
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        return uuid.UUID(int=0)
