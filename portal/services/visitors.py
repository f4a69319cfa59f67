"""Who is asking: the login session, its user and the user's households, read once per
request as plain values in one statement (portal/auth.py calls it for every logged-in
request). Building ORM objects for these four rows was a third of a small page; pages read
them, and the few views that change a user, a membership or a login session load that
row as an ORM object when they need it (portal/auth.py: user_row, membership_row,
current_login_session).

The values are frozen: a view that changed its household or membership reads the row
again rather than trusting the snapshot taken when the request began.

A request that only reads and will ask for them (portal/auth.py: a page, or a poll with a
version) also gets, in the same statement, what a household's pages ask next: where each
household stands (its versions.Mark, for the parts that poll and the parts kept drawn) and
the member's unread alerts (the bell). So a kept dashboard, a poll answered 304 and the
bell's poll cost one statement, not two or three."""
import dataclasses
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa

from portal.extensions import db
from portal.models import Account, HouseholdChanges, LoginSession, Membership, Notification, PlatformHealth, User
from portal.models.accounts import ROLE_OWNER
from portal.services import versions
from portal.services.rows import read


class MemberOf(Protocol):
    """What read-only services need of a membership: an ORM Membership or a HouseholdMember."""

    @property
    def id(self) -> uuid.UUID: ...

    @property
    def account_id(self) -> uuid.UUID: ...

    @property
    def user_id(self) -> uuid.UUID: ...


class Actor(Protocol):
    """Who did something, as the activity log and a change's record need it: an ORM User or
    a Visitor."""

    @property
    def id(self) -> uuid.UUID: ...

    @property
    def email(self) -> str: ...


class SessionFacts(Protocol):
    """What the read-only checks need of a login session: an ORM LoginSession or a LoginFacts."""

    @property
    def reauthenticated_at(self) -> datetime | None: ...

    @property
    def second_factor_at(self) -> datetime | None: ...


@dataclass(frozen=True, slots=True)
class Visitor:
    """The logged-in user as flask-login's current_user: what pages show and check."""

    id: uuid.UUID
    email: str
    display_name: str | None
    is_staff: bool
    is_disabled: bool
    session_token: str

    is_anonymous = False
    is_authenticated = True

    @property
    def is_active(self) -> bool:
        return not self.is_disabled

    def get_id(self) -> str:
        return self.session_token


@dataclass(frozen=True, slots=True)
class Household:
    """A household as its pages show it (the Account row's shown columns)."""

    id: uuid.UUID
    name: str
    time_zone: str
    created_at: datetime
    link_state: str
    link_error: str | None
    link_retry_at: datetime | None
    watched_until: datetime | None


@dataclass(frozen=True, slots=True)
class AtStart:
    """Read with the login, as the request began: where the household stands (None: it has no
    count yet) and the member's unread alerts. Only a request that reads has them."""

    mark: versions.Mark | None
    unread: int


@dataclass(frozen=True, slots=True)
class HouseholdMember:
    """One of the user's memberships, with its household (and, on a request that only reads,
    what the request began with: `at_start`)."""

    id: uuid.UUID
    account_id: uuid.UUID
    user_id: uuid.UUID
    role: str
    quiet_from: str | None
    quiet_until: str | None
    joined_at: datetime
    account: Household
    at_start: AtStart | None = None

    @property
    def is_owner(self) -> bool:
        return self.role == ROLE_OWNER


@dataclass(frozen=True, slots=True)
class LoginFacts:
    """The login session's columns that decide whether it still holds."""

    id: uuid.UUID
    created_at: datetime
    last_seen_at: datetime
    revoked_at: datetime | None
    reauthenticated_at: datetime | None
    second_factor_at: datetime | None
    current_account_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class Asking:
    """One request's answer to "who is asking": None from `who_is_asking` for an unknown token."""

    login: LoginFacts
    user: Visitor
    memberships: list[HouseholdMember]


def _columns(cls, *but: str) -> tuple[str, ...]:
    """The columns a dataclass is made of, in its fields' order (rows are read by position)."""
    return tuple(f.name for f in dataclasses.fields(cls) if f.name not in but)


_LOGIN_COLUMNS = _columns(LoginFacts)
_USER_COLUMNS = _columns(Visitor, "session_token")
_MEMBER_COLUMNS = _columns(HouseholdMember, "account", "at_start")
_HOUSEHOLD_COLUMNS = _columns(Household)


def _labelled(table, prefix: str, names: tuple[str, ...]) -> list:
    return [table.c[name].label(f"{prefix}{name}") for name in names]


_ls, _u, _m, _a = (model.__table__ for model in (LoginSession, User, Membership, Account))
# The login session, its user, and the user's households (oldest membership first): one
# statement, built once.
_WHO = (
    sa.select(*_labelled(_ls, "ls_", _LOGIN_COLUMNS), *_labelled(_u, "u_", _USER_COLUMNS),
              *_labelled(_m, "m_", _MEMBER_COLUMNS), *_labelled(_a, "a_", _HOUSEHOLD_COLUMNS))
    .join(_u, _u.c.id == _ls.c.user_id)
    .outerjoin(_m, _m.c.user_id == _u.c.id)
    .outerjoin(_a, _a.c.id == _m.c.account_id)
    .where(_ls.c.token_hash == sa.bindparam("token_hash"))
    .order_by(_m.c.joined_at)
)
# The same, with what a reading request asks next of each household (AtStart): the columns
# of versions.mark (the count, the heartbeats, StreamIoT's state) and alerts.unread_count.
_UNREAD = (
    sa.select(sa.func.count()).select_from(Notification)
    .where(*Notification.unread_in_bell(_m.c.user_id, _m.c.account_id))
    .scalar_subquery()
)
_WHO_READING = (
    _WHO.add_columns(*versions.MARK_COLUMNS, _UNREAD)
    .outerjoin(HouseholdChanges, HouseholdChanges.account_id == _m.c.account_id)
    .outerjoin(PlatformHealth, versions.PLATFORM_ROW)
)
_MEMBERSHIPS = (
    sa.select(*_labelled(_m, "m_", _MEMBER_COLUMNS), *_labelled(_a, "a_", _HOUSEHOLD_COLUMNS))
    .join(_a, _a.c.id == _m.c.account_id)
    .where(_m.c.user_id == sa.bindparam("user_id"))
    .order_by(_m.c.joined_at)
)


# Where each part's columns sit in a row of _WHO (and, from _MEMBER on, of _MEMBERSHIPS).
_LOGIN = slice(0, len(_LOGIN_COLUMNS))
_USER = slice(_LOGIN.stop, _LOGIN.stop + len(_USER_COLUMNS))
_MEMBER_AT = _USER.stop
_HOUSEHOLD_AT = len(_MEMBER_COLUMNS)


def _member(row, at: int = 0) -> HouseholdMember:
    """The membership and household whose columns start at `at` in `row` (in column order:
    the dataclasses list their fields as the statements list the columns), with what the
    request began with when the row has those columns (_WHO_READING)."""
    household = at + _HOUSEHOLD_AT
    at_start = household + len(_HOUSEHOLD_COLUMNS)
    values: tuple[Any, ...] = (*row[at:household], Household(*row[household:at_start]))
    if len(row) == at_start:
        return HouseholdMember(*values)
    *mark, unread = row[at_start:]
    return HouseholdMember(*(*values, AtStart(versions.mark_of(mark), unread)))


def who_is_asking(token: str, token_hash: str, reading: bool = False) -> Asking | None:
    """The login session whose token hashes to `token_hash`, with its user and households;
    None when there is no such session (whether it still holds is the caller's check).
    `reading`: the request only reads, so each household also carries its AtStart."""
    rows = read(_WHO_READING if reading else _WHO, {"token_hash": token_hash}).all()
    if not rows:
        return None
    first = rows[0]
    return Asking(
        login=LoginFacts(*first[_LOGIN]),
        user=Visitor(*(*first[_USER], token)),
        memberships=[_member(row, _MEMBER_AT) for row in rows if row[_MEMBER_AT] is not None],
    )


def memberships_of(user_id: uuid.UUID) -> list[HouseholdMember]:
    """The user's households, oldest membership first (for a request that logged in)."""
    return [_member(row) for row in read(_MEMBERSHIPS, {"user_id": user_id}).all()]


def touch(login_id: uuid.UUID, now: datetime) -> None:
    """Note that the session was used (the caller commits)."""
    db.session.execute(sa.update(LoginSession).where(LoginSession.id == login_id).values(last_seen_at=now)
                       .execution_options(synchronize_session=False))


def set_current_household(login_id: uuid.UUID, account_id: uuid.UUID) -> None:
    """Make `account_id` the household the session looks at (the caller commits)."""
    db.session.execute(sa.update(LoginSession).where(LoginSession.id == login_id).values(current_account_id=account_id)
                       .execution_options(synchronize_session=False))
