"""The support console's reads and its one write: find a household, show what the portal
sent and what the boxes answered (never a PIN or a secret), and requeue a failed delivery.
Every visit and every requeue is written to the household's own activity log."""
import contextlib
import dataclasses
import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import joinedload

from portal import crypto
from portal.extensions import db
from portal.models import (
    Account,
    ActivityEvent,
    Command,
    Gateway,
    IgnoredDeviceMessage,
    Job,
    Mailbox,
    Membership,
    Pin,
    User,
    utcnow,
)
from portal.models.jobs import JOB_CANCELLED, JOB_FAILED, JOB_QUEUED, JOB_RUNNING
from portal.services import activity, deliveries
from portal.services.deliveries import CommandState, DeviceState, PinState, pin_shown
from portal.services.errors import Conflict, NotFound
from portal.services.paging import clamp_page
from portal.services.scope import get_scoped, scoped
from portal.services.text import without_controls

PAGE_SIZE = 20
TRACE_LENGTH = 15  # newest commands shown per mailbox (and per gateway channel)
JOB_LIST_LIMIT = 50
IGNORED_LIMIT = 20  # newest ignored device messages shown


@dataclass(frozen=True)
class IgnoredRow:
    message: IgnoredDeviceMessage
    where: str  # the box's or gateway's name
# One "viewed your household" entry per staff member per household in this window, so a
# refresh (or the page's live updates) does not flood the household's log.
VISIT_THROTTLE = timedelta(minutes=10)

_ACTION_WORDS = {
    "CONNECT": "Connect gateway",
    "REGISTER": "Register gateway",
    "DESTRUCT": "Remove gateway",
    "ADD": "Add mailbox to gateway",
    "Mailbox": "Tell gateway the mailbox channel",
    "DELETE": "Remove mailbox from gateway",
    "AUTH": "Add PIN",
    "UNAUTH": "Remove PIN",
    "UNLOCK": "Unlock now",
}
_ADDING_ACTIONS = {"CONNECT", "REGISTER", "ADD", "Mailbox"}
# Jobs that carry no single message (portal.services.commands, portal.jobs.outbox).
_JOB_WORDS = {
    "link_household": "Link the household to StreamIoT",
    "device.send_command": "Send a message",
    "device.provision_gateway": "Set up in StreamIoT: gateway",
    "device.provision_mailbox": "Set up in StreamIoT: mailbox",
    "device.remove_gateway": "Remove from StreamIoT: gateway",
    "device.remove_mailbox": "Remove from StreamIoT: mailbox",
}


def staff_label(staff: User) -> str:
    return f"Support ({staff.display_name or staff.email.split('@', 1)[0]})"


# --- search -----------------------------------------------------------------------------

@dataclass
class HouseholdHit:
    account: Account
    members: list = field(default_factory=list)  # Membership rows with .user loaded
    gateway_names: list = field(default_factory=list)
    mailbox_names: list = field(default_factory=list)
    failed_deliveries: int = 0


@dataclass
class SearchPage:
    query: str
    page: int
    pages: int
    total: int
    hits: list

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


def search_households(query: str, page: int | None = 1, per_page: int = PAGE_SIZE) -> SearchPage:
    """Households whose name, member email, gateway or mailbox name contains `query`, or
    whose StreamIoT thing, channel or user id (or household id) is exactly `query`."""
    query = without_controls(query).strip()[:200]
    page = clamp_page(page)
    if not query:
        return SearchPage(query="", page=1, pages=0, total=0, hits=[])
    like = "%" + re.sub(r"([\\%_])", r"\\\1", query.lower()) + "%"

    def contains(column):
        return sa.func.lower(column).like(like, escape="\\")

    # The households matched by each field, as one UNION of index lookups (trigram indexes
    # for the substrings on PostgreSQL): an OR of IN-subqueries scanned every account, user,
    # gateway and box: a search page took 60-100 ms at 10,000 households (docs/performance.md).
    matches = [
        sa.select(Account.id).where(sa.or_(contains(Account.name), Account.portal_thing_id == query,
                                           Account.streamiot_user_id == query)),
        sa.select(Membership.account_id).join(User, User.id == Membership.user_id).where(contains(User.email)),
        sa.select(Gateway.account_id).where(
            sa.or_(contains(Gateway.name), Gateway.thing_id == query, Gateway.channel_id == query)),
        sa.select(Mailbox.account_id).where(sa.or_(contains(Mailbox.name), Mailbox.channel_id == query)),
    ]
    with contextlib.suppress(ValueError):  # not a UUID: it can't be a household id
        matches.append(sa.select(Account.id).where(Account.id == uuid.UUID(query)))
    matched = sa.union(*matches)
    where = Account.id.in_(matched)
    total = db.session.execute(sa.select(sa.func.count()).select_from(matched.subquery())).scalar_one()
    pages = max(1, math.ceil(total / per_page))
    page = min(page, pages)
    accounts = db.session.scalars(
        sa.select(Account)
        .where(where)
        .order_by(sa.func.lower(Account.name), Account.id)
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    hits = {a.id: HouseholdHit(account=a) for a in accounts}
    if hits:
        ids = list(hits)
        for m in db.session.scalars(
            sa.select(Membership)
            .where(Membership.account_id.in_(ids))
            .options(joinedload(Membership.user))
            .order_by(Membership.joined_at)
        ):
            hits[m.account_id].members.append(m)
        for account_id, name in db.session.execute(
            sa.select(Gateway.account_id, Gateway.name)
            .where(Gateway.account_id.in_(ids))
            .order_by(Gateway.created_at)
        ):
            hits[account_id].gateway_names.append(name)
        for account_id, name in db.session.execute(
            sa.select(Mailbox.account_id, Mailbox.name)
            .where(Mailbox.account_id.in_(ids))
            .order_by(Mailbox.created_at)
        ):
            hits[account_id].mailbox_names.append(name)
        for account_id, count in db.session.execute(
            sa.select(Command.account_id, sa.func.count())
            .where(Command.account_id.in_(ids), Command.state == CommandState.FAILED)
            .group_by(Command.account_id)
        ):
            hits[account_id].failed_deliveries = count
    return SearchPage(query=query, page=page, pages=pages, total=total, hits=list(hits.values()))


# --- the household view -----------------------------------------------------------------

@dataclass
class TraceRow:
    """One message the portal sent, paired with what the box answered."""

    command: Command
    description: str
    job: Job | None
    reason: str | None
    job_error: str | None
    can_requeue: bool

    @property
    def round_trip(self) -> timedelta | None:
        c = self.command
        if c.sent_at and c.answered_at:
            return c.answered_at - c.sent_at
        return None

    @property
    def in_flight(self) -> bool:
        return self.command.state not in deliveries.FINAL


@dataclass
class PinRow:
    """A PIN as support sees it: its label and the delivery state its household sees
    (portal.services.commands.pin_shown), never its digits."""

    pin: Pin
    shown: object


@dataclass
class MailboxView:
    mailbox: Mailbox
    pins: list  # PinRow
    trace: list


@dataclass
class GatewayView:
    gateway: Gateway
    online: bool
    mailboxes: list
    trace: list  # commands on the gateway channel that concern no single mailbox


@dataclass
class JobRow:
    job: Job
    description: str
    error: str | None


@dataclass
class HouseholdView:
    account: Account
    link_error: str | None
    members: Sequence[Membership]
    gateways: list
    pending_jobs: list
    failed_jobs: list
    # Device messages that changed nothing (forged, late, unknown), newest first.
    ignored: list = field(default_factory=list)
    # Why queued changes wait, while StreamIoT can't be reached (deliveries.platform_waiting).
    platform_waiting: str | None = None

    @property
    def in_flight(self) -> bool:
        """Something may still change by itself: the page keeps itself up to date."""
        if self.pending_jobs or self.platform_waiting:
            return True
        return any(
            row.in_flight
            for gv in self.gateways
            for rows in [gv.trace, *[mv.trace for mv in gv.mailboxes]]
            for row in rows
        )


def household_view(staff: User, account_id) -> HouseholdView:
    """Everything support needs about one household, in a fixed number of queries; the
    visit is written to the household's activity log."""
    account = _get_account(account_id)
    members = db.session.scalars(
        sa.select(Membership)
        .where(Membership.account_id == account.id)
        .options(joinedload(Membership.user))
        .order_by(Membership.joined_at)
    ).all()
    gateways = db.session.scalars(scoped(Gateway, account.id).order_by(Gateway.created_at)).all()
    mailboxes = db.session.scalars(scoped(Mailbox, account.id).order_by(Mailbox.created_at)).all()
    pins = db.session.scalars(scoped(Pin, account.id).order_by(Pin.created_at)).all()
    commands = _recent_commands(account.id)
    open_jobs = db.session.scalars(
        scoped(Job, account.id)
        .where(Job.state.in_((JOB_QUEUED, JOB_RUNNING, JOB_FAILED)))
        .order_by(Job.id.desc())
        .limit(3 * JOB_LIST_LIMIT)
    ).all()
    jobs_by_id = {j.id: j for j in open_jobs}
    trace_job_ids = {c.job_id for c in commands if c.job_id is not None} - set(jobs_by_id)
    if trace_job_ids:
        traced = db.session.scalars(scoped(Job, account.id).where(Job.id.in_(trace_job_ids)))
        jobs_by_id.update((j.id, j) for j in traced)
    # The commands behind open jobs and behind each PIN's state, when older than the trace.
    commands_by_id = {c.id: c for c in commands}
    known_jobs = {c.job_id for c in commands}
    wanted_jobs = {j.id for j in open_jobs} - known_jobs
    wanted_commands = {p.command_id for p in pins if p.command_id} - set(commands_by_id)
    if wanted_jobs or wanted_commands:
        for c in db.session.scalars(
            scoped(Command, account.id).where(
                sa.or_(
                    Command.job_id.in_(wanted_jobs) if wanted_jobs else sa.false(),
                    Command.id.in_(wanted_commands) if wanted_commands else sa.false(),
                )
            )
        ):
            commands_by_id[c.id] = c
    redact = _Redactor.for_household(account, gateways, pins)
    now = utcnow()
    waiting = deliveries.platform_waiting(now, staff=True)

    pins_by_id = {p.id: p for p in pins}
    commands_by_job = {c.job_id: c for c in commands_by_id.values() if c.job_id is not None}
    newest = _newest_per_subject(commands)
    mailbox_names = {m.id: m.name for m in mailboxes}

    def describe(c: Command) -> str:
        words = _ACTION_WORDS.get(c.action, c.action)
        pin = pins_by_id.get(c.pin_id) if c.pin_id else None
        if pin is not None:
            return f"{words} “{pin.label}”"
        if c.mailbox_id and c.action in ("ADD", "Mailbox", "DELETE"):
            return f"{words} “{mailbox_names.get(c.mailbox_id, '?')}”"
        return words

    def row(c: Command) -> TraceRow:
        job = jobs_by_id.get(c.job_id) if c.job_id else None
        return TraceRow(
            command=c,
            description=describe(c),
            job=job,
            reason=waiting if waiting and c.state == CommandState.QUEUED else redact(c.reason),
            job_error=redact(job.last_error) if job else None,
            can_requeue=_requeue_refusal(c, job, newest, pins_by_id, gateways, mailboxes) is None,
        )

    trace_by_mailbox: dict = {}
    trace_by_gateway: dict = {}
    for c in commands:
        if c.mailbox_id is not None:
            trace_by_mailbox.setdefault(c.mailbox_id, []).append(row(c))
        else:
            trace_by_gateway.setdefault(c.gateway_id, []).append(row(c))

    window = timedelta(seconds=current_app.config["HEARTBEAT_WINDOW_SECONDS"])
    gateway_views = []
    for g in gateways:
        boxes = []
        for m in mailboxes:
            if m.gateway_id != g.id:
                continue
            boxes.append(
                MailboxView(
                    mailbox=m,
                    pins=[
                        PinRow(pin=p,
                               shown=_redacted_shown(pin_shown(p, commands_by_id.get(p.command_id), waiting), redact))
                        for p in pins
                        if p.mailbox_id == m.id and p.status != PinState.REMOVED
                    ],
                    trace=trace_by_mailbox.get(m.id, []),
                )
            )
        online = g.last_heartbeat_at is not None and now - g.last_heartbeat_at <= window
        gateway_views.append(
            GatewayView(gateway=g, online=online, mailboxes=boxes, trace=trace_by_gateway.get(g.id, []))
        )

    gateway_names = {g.id: g.name for g in gateways}

    def job_row(j: Job) -> JobRow:
        c = commands_by_job.get(j.id)
        if c is not None:
            return JobRow(job=j, description=describe(c), error=redact(j.last_error))
        words = _JOB_WORDS.get(j.kind, j.kind.replace("_", " "))
        payload = j.payload or {}
        name = mailbox_names.get(_uuid_or_none(payload.get("mailbox_id"))) or gateway_names.get(
            _uuid_or_none(payload.get("gateway_id"))
        )
        return JobRow(job=j, description=f"{words} “{name}”" if name else words, error=redact(j.last_error))

    pending = [job_row(j) for j in open_jobs if j.state in (JOB_QUEUED, JOB_RUNNING)][:JOB_LIST_LIMIT]
    failed = [job_row(j) for j in open_jobs if j.state == JOB_FAILED][:JOB_LIST_LIMIT]
    ignored = db.session.scalars(
        scoped(IgnoredDeviceMessage, account.id)
        .order_by(IgnoredDeviceMessage.received_at.desc(), IgnoredDeviceMessage.id)
        .limit(IGNORED_LIMIT)
    ).all()
    view = HouseholdView(
        account=account,
        link_error=redact(account.link_error),
        members=members,
        gateways=gateway_views,
        pending_jobs=pending,
        failed_jobs=failed,
        ignored=[IgnoredRow(message=i, where=mailbox_names.get(i.mailbox_id) or gateway_names.get(i.gateway_id) or "?")
                 for i in ignored],
        platform_waiting=waiting,
    )
    _record_visit(staff, account)
    return view


def _uuid_or_none(value) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


def _redacted_shown(shown, redact):
    return dataclasses.replace(shown, reason=redact(shown.reason)) if shown.reason else shown


def _get_account(account_id) -> Account:
    if not isinstance(account_id, uuid.UUID):
        try:
            account_id = uuid.UUID(str(account_id))
        except ValueError:
            raise NotFound("No such household.") from None
    account = db.session.get(Account, account_id)
    if account is None:
        raise NotFound("No such household.")
    return account


def _recent_commands(account_id) -> Sequence[Command]:
    """The newest TRACE_LENGTH commands of each mailbox and of each gateway channel."""
    ranked = (
        sa.select(
            Command.id,
            sa.func.row_number()
            .over(
                partition_by=(Command.gateway_id, Command.mailbox_id),
                order_by=(Command.created_at.desc(), Command.id.desc()),
            )
            .label("n"),
        )
        .where(Command.account_id == account_id)
        .subquery()
    )
    return db.session.scalars(
        scoped(Command, account_id)
        .join(ranked, ranked.c.id == Command.id)
        .where(ranked.c.n <= TRACE_LENGTH)
        .order_by(Command.created_at.desc(), Command.id.desc())
    ).all()


def _subject(c: Command) -> tuple:
    if c.pin_id is not None:
        return ("pin", c.pin_id)
    return ("device", c.gateway_id, c.mailbox_id, c.action)


def _newest_per_subject(commands: Sequence[Command]) -> dict:
    newest: dict = {}
    for c in commands:  # newest first
        newest.setdefault(_subject(c), c.id)
    return newest


def _requeue_refusal(c: Command, job, newest, pins_by_id, gateways, mailboxes) -> str | None:
    """Why this command cannot be requeued, or None. A requeue must never undo a later
    change: an old "add PIN" sent after the PIN was removed would let it open the box."""
    if c.state != CommandState.FAILED:
        return "Only a failed delivery can be requeued."
    if job is None:
        return "This delivery has no job to requeue."
    if c.action == "UNLOCK":
        return "An unlock is never resent: it would open the box long after it was asked for."
    if job.state not in (JOB_FAILED, JOB_CANCELLED):
        # StreamIoT took it and the box answered "Failed": sending the same message again
        # would meet the same refusal; the household changes the PIN or the box instead.
        return "The box itself refused this change; sending it again would not help."
    pin = pins_by_id.get(c.pin_id) if c.pin_id else None
    current = pin.command_id if pin is not None and pin.command_id else newest.get(_subject(c))
    if current != c.id:
        return "A newer change replaced this one."
    if c.pin_id is not None:
        if pin is None or pin.status == PinState.REMOVED:
            return "This PIN no longer exists."
        if c.action == "AUTH" and pin.status == PinState.REMOVING:
            return "This PIN is being removed."
    if c.action in _ADDING_ACTIONS or c.action == "AUTH":
        gateway = next((g for g in gateways if g.id == c.gateway_id), None)
        mailbox = next((m for m in mailboxes if m.id == c.mailbox_id), None) if c.mailbox_id else None
        if (
            gateway is None
            or gateway.status == DeviceState.REMOVING
            or (mailbox and mailbox.status == DeviceState.REMOVING)
        ):
            return "This device is being removed."
        if c.action == "AUTH" and (
            gateway.status == DeviceState.FAILED or (mailbox and mailbox.status == DeviceState.FAILED)
        ):
            return "The box's own set-up failed: the household retries that first."
    return None


def _record_visit(staff: User, account: Account) -> None:
    since = utcnow() - VISIT_THROTTLE
    recent = db.session.scalar(
        sa.select(ActivityEvent.id)
        .where(
            ActivityEvent.account_id == account.id,
            ActivityEvent.kind == "support.viewed",
            ActivityEvent.actor_user_id == staff.id,
            ActivityEvent.occurred_at >= since,
        )
        .limit(1)
    )
    if recent is not None:
        return
    label = staff_label(staff)
    activity.record(
        account.id,
        kind="support.viewed",
        summary="Viewed your household in the support console.",
        actor_kind="support",
        actor_user=staff,
        actor_label=label,
    )
    db.session.commit()


# --- the one action ---------------------------------------------------------------------

def requeue_delivery(staff: User, account_id, command_id) -> str:
    """Send a failed delivery again: its job goes back to the queue and the command to
    queued. Returns what was requeued, in the words the household's log uses."""
    account = _get_account(account_id)
    command = get_scoped(Command, account.id, command_id)
    job = None
    if command.job_id is not None:
        # Locked (PostgreSQL), so two staff requeueing at once cannot both win.
        job = db.session.scalars(scoped(Job, account.id).where(Job.id == command.job_id).with_for_update()).first()
        db.session.refresh(command)  # as it is now, after whoever held the lock committed
    # The refusal rules look at the same neighbours the page did when it offered the button.
    siblings = scoped(Command, account.id).where(Command.gateway_id == command.gateway_id)
    if command.pin_id is not None:
        siblings = siblings.where(Command.pin_id == command.pin_id)
    else:
        same_mailbox = (
            Command.mailbox_id.is_(None) if command.mailbox_id is None else Command.mailbox_id == command.mailbox_id
        )
        siblings = siblings.where(Command.pin_id.is_(None), Command.action == command.action, same_mailbox)
    commands = db.session.scalars(siblings.order_by(Command.created_at.desc(), Command.id.desc())).all()
    pins = db.session.scalars(scoped(Pin, account.id).where(Pin.id == command.pin_id)).all() if command.pin_id else []
    gateways = db.session.scalars(scoped(Gateway, account.id).where(Gateway.id == command.gateway_id)).all()
    mailboxes = (
        db.session.scalars(scoped(Mailbox, account.id).where(Mailbox.id == command.mailbox_id)).all()
        if command.mailbox_id
        else []
    )
    refusal = _requeue_refusal(
        command, job, _newest_per_subject(commands), {p.id: p for p in pins}, gateways, mailboxes
    )
    if refusal:
        raise Conflict(refusal)
    if job is None:  # _requeue_refusal has refused this already; this tells the type checker
        raise Conflict("This delivery has no job to requeue.")

    if job is None or not deliveries.requeue_with_its_job(command):
        db.session.rollback()
        raise Conflict("Someone else requeued it a moment ago.")

    what = _requeued_what(command, pins, mailboxes)
    label = staff_label(staff)
    activity.record(
        account.id,
        kind="support.requeued",
        summary=f"Requeued the {what}.",
        actor_kind="support",
        actor_user=staff,
        actor_label=label,
        gateway_id=command.gateway_id,
        mailbox_id=command.mailbox_id,
        details={"command_id": str(command.id), "action": command.action},
    )
    db.session.commit()
    return what


def _requeued_what(command: Command, pins: Sequence[Pin], mailboxes: Sequence[Mailbox]) -> str:
    if pins:
        noun = "removal" if command.action == "UNAUTH" else "delivery"
        return f"{noun} of PIN “{pins[0].label}”"
    words = _ACTION_WORDS.get(command.action, command.action).lower()
    if mailboxes:
        return f"“{words}” for “{mailboxes[0].name}”"
    return f"“{words}”"


# --- never show a secret ----------------------------------------------------------------

_JWT = re.compile(r"eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*")


class _Redactor:
    """Blanks the household's secrets out of free text (errors come from StreamIoT and the
    devices and could quote a request or a response). The page never shows a secret on
    purpose; this makes sure it cannot show one by accident either."""

    def __init__(self, secrets: set[str]):
        self.secrets = sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True)

    @classmethod
    def for_household(cls, account: Account, gateways, pins) -> "_Redactor":
        found = set()
        blobs = [
            (account.streamiot_password_enc, "accounts", "streamiot_password_enc", account.id),
            (account.streamiot_token_enc, "accounts", "streamiot_token_enc", account.id),
            (account.portal_thing_key_enc, "accounts", "portal_thing_key_enc", account.id),
        ]
        blobs += [(g.thing_key_enc, "gateways", "thing_key_enc", g.id) for g in gateways]
        blobs += [(p.digits_enc, "pins", "digits_enc", p.id) for p in pins]
        for blob, table, column, row_id in blobs:
            if not blob:
                continue
            try:
                found.add(crypto.decrypt(blob, table=table, column=column, row_id=row_id))
            except (crypto.DecryptionError, UnicodeDecodeError, ValueError):
                continue
        return cls(found)

    def __call__(self, text: str | None) -> str | None:
        if not text:
            return text
        for secret in self.secrets:
            text = text.replace(secret, "[hidden]")
        return _JWT.sub("[hidden]", text)
