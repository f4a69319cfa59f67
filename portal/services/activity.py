"""The household's activity log: record what happened, list it with filters, export it."""
import csv
import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy import orm

from portal.extensions import db
from portal.models import ActivityEvent, Mailbox, utcnow
from portal.services import alerts, versions
from portal.services.paging import clamp_page
from portal.services.rows import among, read_as
from portal.services.scope import scoped
from portal.services.visitors import Actor

ACTOR_KINDS = ("member", "box", "support", "system")
PER_PAGE = 50

# Filter choices on the activity page: a group matches every kind that starts with "<group>.".
KIND_GROUPS = {
    "member": "Members",
    "household": "Household",
    "gateway": "Gateways",
    "mailbox": "Mailboxes",
    "pin": "PINs",
    "unlock": "Remote unlocks",
    "box": "Box events",
    "delivery": "Delivery problems",
    "support": "Support",
}

# Kinds only owners see: a duress opening must not tell the member under duress (or
# anyone else of the household) that the alarm went off.
OWNERS_ONLY_KINDS = ("box.duress",)

_ACTOR_FALLBACK = {"member": "A member", "box": "A box", "support": "IoTLock support", "system": "IoTLock"}


def record(account_id: uuid.UUID, **fields: Any) -> ActivityEvent:
    """Add one event to the session (the caller commits it with the change it describes),
    with the alert it raises, if any (portal/services/alerts.py). `fields` as event_row
    takes them."""
    event = ActivityEvent(**event_row(account_id, **fields))
    db.session.add(event)
    alerts.on_activity(event)
    return event


def event_row(
    account_id: uuid.UUID,
    *,
    kind: str,
    summary: str,
    actor_kind: str = "member",
    actor_user: Actor | None = None,
    actor_label: str | None = None,
    gateway_id: uuid.UUID | None = None,
    mailbox_id: uuid.UUID | None = None,
    details: dict | None = None,
    occurred_at: datetime | None = None,
) -> dict:
    """An event's columns, as record saves them (record_rows takes a list of them).
    Summaries are plain words for the household: never PIN digits or secrets.
    `occurred_at`: when it happened, if not now (a box event read from the platform)."""
    if actor_kind not in ACTOR_KINDS:
        raise ValueError(f"unknown actor kind {actor_kind!r}")
    label = actor_label or (actor_user.email if actor_user is not None else None) or _ACTOR_FALLBACK[actor_kind]
    recorded_at = utcnow()
    return {
        "account_id": account_id,
        "kind": kind,
        "summary": summary,
        "actor_kind": actor_kind,
        "actor_user_id": actor_user.id if actor_user is not None else None,
        "actor_label": label[:254],
        "gateway_id": gateway_id,
        "mailbox_id": mailbox_id,
        "details": details or {},
        "recorded_at": recorded_at,
        "occurred_at": min(occurred_at, recorded_at) if occurred_at is not None else recorded_at,
    }


_INSERT_EVENTS = sa.insert(ActivityEvent)


def record_rows(rows: list[dict]) -> None:
    """Save these events (event_row's) now, in the caller's transaction, with the alerts
    they raise: record's, for a change that saves its own rows in one INSERT a table
    (deliveries.save_new_pins)."""
    db.session.connection().execute(_INSERT_EVENTS, rows)
    for row in rows:
        alerts.on_activity(ActivityEvent(**row))


@dataclass
class Page:
    events: list[ActivityEvent]
    page: int
    per_page: int
    has_next: bool

    @property
    def has_prev(self) -> bool:
        return self.page > 1


def visible_to(*, owner: bool) -> sa.ColumnElement[bool]:
    """The events a member sees: owners all of them, other members none of OWNERS_ONLY_KINDS
    (for every query that shows events, e.g. a box's latest event on the dashboard). A fixed
    list of kinds, so a statement built once is compiled once (rows.among)."""
    return sa.true() if owner else sa.not_(among(ActivityEvent.kind, OWNERS_ONLY_KINDS))


def _filtered(account_id: uuid.UUID | sa.BindParameter[uuid.UUID], mailbox_id=None, kind: str | None = None, *,
              owner: bool) -> sa.Select:
    stmt = scoped(ActivityEvent, account_id).where(visible_to(owner=owner))
    if mailbox_id:
        stmt = stmt.where(ActivityEvent.mailbox_id == _as_uuid(mailbox_id))
    if kind:
        if "." in kind:
            stmt = stmt.where(ActivityEvent.kind == kind)
        else:
            stmt = stmt.where(ActivityEvent.kind.startswith(kind + ".", autoescape=True))
    # Newest first; the id breaks ties between events of the same instant.
    return stmt.order_by(ActivityEvent.occurred_at.desc(), ActivityEvent.id.desc())


def _as_uuid(value) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        # An unknown mailbox simply has no events; never another household's.
        return uuid.UUID(int=0)


def list_events(
    account_id: uuid.UUID, *, mailbox_id=None, kind: str | None = None, page: int | None = 1, per_page: int = PER_PAGE,
    owner: bool = False,
) -> Page:
    """One page of the household's events, newest first, optionally for one mailbox or kind.
    `owner`: the reader is an owner, who also sees OWNERS_ONLY_KINDS."""
    page = clamp_page(page)
    rows = db.session.scalars(
        _filtered(account_id, mailbox_id, kind, owner=owner).offset((page - 1) * per_page).limit(per_page + 1)
    ).all()
    return Page(events=list(rows[:per_page]), page=page, per_page=per_page, has_next=len(rows) > per_page)


def feed_part(account_id: uuid.UUID, *, mailbox_id=None, kind: str | None = None, page: int = 1,
              owner: bool = False) -> versions.Part:
    """What the activity feed (activity/_feed.html) is versioned as (services/versions.py):
    the household's events as list_events reads them with these arguments."""
    return versions.Part(f"activity|{account_id}|{owner}|{mailbox_id or ''}|{kind or ''}|{page}")


def feed_version(part: versions.Part, mark: versions.Mark | None, page: Page) -> str | None:
    """The version of the feed `part` about to be drawn from `page`: it holds while the
    household's count is as it was and each event's time reads the same ("3 minutes ago").
    Taken before drawing, so the words are never older than it."""
    if mark is None:
        return None
    return versions.version(part, mark, versions.words_hold_until(utcnow(), [e.occurred_at for e in page.events]))


def list_events_after(
    account_id: uuid.UUID, *, mailbox_id=None, kind: str | None = None, since: datetime | None = None,
    until: datetime | None = None, after: tuple[datetime, int] | None = None, limit: int = PER_PAGE,
    owner: bool = False,
) -> tuple[list[ActivityEvent], bool]:
    """Events newest first, strictly after the (occurred_at, id) of the last one read
    (`after`, a keyset: pages stay right while new events arrive), between `since`
    (inclusive) and `until` (exclusive). Returns the events and whether more follow."""
    stmt = _filtered(account_id, mailbox_id, kind, owner=owner)
    if since is not None:
        stmt = stmt.where(ActivityEvent.occurred_at >= since)
    if until is not None:
        stmt = stmt.where(ActivityEvent.occurred_at < until)
    if after is not None:
        moment, event_id = after
        stmt = stmt.where(sa.or_(ActivityEvent.occurred_at < moment,
                                 sa.and_(ActivityEvent.occurred_at == moment, ActivityEvent.id < event_id)))
    rows = db.session.scalars(stmt.limit(limit + 1)).all()
    return list(rows[:limit]), len(rows) > limit


# A box's latest events, for an owner and for another member: _filtered's statement built
# once, not on each draw of a box's live part (building it was half of reading it).
# Rows, not objects (rows.read_as): the box page only shows them.
_RECENT_FOR_BOX = {
    owner: _filtered(sa.bindparam("account_id"), owner=owner).with_only_columns(*ActivityEvent.__table__.c)
    .where(ActivityEvent.mailbox_id == sa.bindparam("mailbox_id")).limit(sa.bindparam("limit"))
    for owner in (False, True)
}


class LatestEvent(NamedTuple):
    """A box's latest event as its live part shows it: its words and when it happened."""

    summary: str
    occurred_at: datetime


def latest_of_box(box_id: sa.ColumnElement | orm.QueryableAttribute, account_id: sa.BindParameter[uuid.UUID], *,
                  owner: bool) -> tuple[sa.ScalarSelect, sa.ScalarSelect]:
    """The summary and time of a box's latest event (`owner` as in list_events), as two
    columns of a statement that reads the box, `box_id` being its id there: a box's live part
    shows that one event, and reads it with its box rather than in a statement of its own
    (LatestEvent makes them one)."""
    latest = _filtered(account_id, owner=owner).where(ActivityEvent.mailbox_id == box_id).limit(1)
    return (latest.with_only_columns(ActivityEvent.summary).scalar_subquery(),
            latest.with_only_columns(ActivityEvent.occurred_at).scalar_subquery())


def recent_for_mailbox(account_id: uuid.UUID, mailbox_id, limit: int = 20, *, owner: bool = False
                       ) -> list[ActivityEvent]:
    """The latest events of one mailbox (for the mailbox page); `owner` as in list_events."""
    params = {"account_id": account_id, "mailbox_id": _as_uuid(mailbox_id), "limit": limit}
    return read_as(ActivityEvent, _RECENT_FOR_BOX[owner], params)


def mailbox_names(account_id: uuid.UUID) -> dict[uuid.UUID, str]:
    """Names of the household's mailboxes by id: filter choices and event labels in one query."""
    rows = db.session.execute(
        sa.select(Mailbox.id, Mailbox.name).where(Mailbox.account_id == account_id).order_by(Mailbox.name)
    ).all()
    return {row.id: row.name for row in rows}


# time_utc: when it happened; recorded_utc: when the portal wrote it down (a box event is
# read from the platform a moment after it happened).
CSV_COLUMNS = ["time_utc", "actor", "actor_kind", "kind", "mailbox", "summary", "recorded_utc"]
_CSV_TIME = "%Y-%m-%dT%H:%M:%SZ"


def export_csv(account_id: uuid.UUID, *, mailbox_id=None, kind: str | None = None, owner: bool = False
               ) -> Iterator[str]:
    """The household's events (filtered like the page) as CSV text, streamed in chunks."""
    names = mailbox_names(account_id)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    yield _drain(buffer)
    result = db.session.execute(
        _filtered(account_id, mailbox_id, kind, owner=owner).execution_options(yield_per=500)
    ).scalars()
    for event in result:
        writer.writerow(
            [
                event.occurred_at.strftime(_CSV_TIME),
                _cell(event.actor_label),
                event.actor_kind,
                event.kind,
                _cell(names.get(event.mailbox_id, "")),
                _cell(event.summary),
                event.recorded_at.strftime(_CSV_TIME),
            ]
        )
        if buffer.tell() > 16_384:
            yield _drain(buffer)
    yield _drain(buffer)


def _drain(buffer: io.StringIO) -> str:
    value = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return value


def _cell(value: str) -> str:
    """Keep text that a spreadsheet would run as a formula (names are chosen by members)."""
    if value and value[0] in "=+-@\t\r":
        return "'" + value
    return value
