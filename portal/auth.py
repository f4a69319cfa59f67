"""Login sessions kept server-side, the current household, and the view decorators that
require them. The signed cookie carries only a random token; its hash is in the database."""
import dataclasses
import functools
from datetime import datetime

import sqlalchemy as sa
from flask import abort, current_app, flash, g, make_response, redirect, request, session, url_for
from flask_login import current_user, login_user, logout_user

from portal.crypto import new_token, sha256_hex
from portal.extensions import db, login_manager
from portal.htmx import asked_version, is_htmx
from portal.models import Command, Gateway, LoginSession, Mailbox, Membership, Pin, User, utcnow
from portal.services import visitors
from portal.services.visitors import HouseholdMember, LoginFacts, Visitor

# Writing last_seen_at on every request would make every page a write; a minute is enough
# precision for an idle timeout counted in minutes.
_TOUCH_EVERY_SECONDS = 60
# Pages that refresh themselves (htmx polling) send this header; such requests are not the
# user doing something, so they must not keep an idle session alive forever. Only a GET is a
# poll: htmx merges every ancestor's hx-headers into a request, so a button inside a polled
# part (Open on the dashboard, Withdraw on a box page) sends the header too. (No polled part
# holds an hx-get link; one would be taken for a poll.)
POLL_HEADER = "X-IoTLock-Poll"


def is_poll() -> bool:
    return request.method == "GET" and request.headers.get(POLL_HEADER) == "1"


# URL parameters that name a household's device-side row. A link to one of another of the
# user's households (an emailed link, a second tab) switches to that household.
_DEVICE_ROWS = {
    "gateway_id": (Gateway.id, Gateway.account_id),
    "mailbox_id": (Mailbox.id, Mailbox.account_id),
    "pin_id": (Pin.id, Pin.account_id),
    "command_id": (Command.id, Command.account_id),
}


def _asks_at_start() -> bool:
    """Whether the request will ask what visitors.AtStart holds: a GET or HEAD of a page (its
    bell, and a kept part's mark) or a poll that asks with a version (its mark, or the bell's
    count). An htmx part asked without a version (a link's state, a search's results) shows
    neither, and a request that changes something reads them after its change."""
    if request.method not in ("GET", "HEAD"):
        return False
    return not is_htmx() or bool(asked_version())


@login_manager.user_loader
def _load_user(token: str):
    """The request's Visitor (flask-login's current_user), with its login session's facts
    and households in g: one statement of plain values (portal/services/visitors.py), with
    each household's AtStart when the request will ask for it (_asks_at_start)."""
    if not token:
        return None
    asking = visitors.who_is_asking(token, sha256_hex(token), reading=_asks_at_start())
    if asking is None:
        return None
    login, user = asking.login, asking.user
    now = utcnow()
    if login.revoked_at is not None or user.is_disabled or _expired(login, user, now):
        return None
    polling = is_poll()
    if not polling and (now - login.last_seen_at).total_seconds() > _TOUCH_EVERY_SECONDS:
        visitors.touch(login.id, now)
        db.session.commit()
    g.login_facts = login
    g.loaded_memberships = (user.id, asking.memberships)
    return user


@login_manager.unauthorized_handler
def _unauthorized():
    """Send the visitor to the login page, coming back here afterwards (GET only). htmx
    requests get a 401 with HX-Redirect, so a poll after the session ended reloads the whole
    page instead of swapping a login form into a table."""
    target = request.full_path.rstrip("?") if request.method == "GET" else None
    login_url = url_for("account.login", next=target)
    if request.headers.get("HX-Request") == "true":
        response = make_response("", 401)
        response.headers["HX-Redirect"] = login_url
        return response
    flash(login_manager.login_message, login_manager.login_message_category)
    return redirect(login_url)


def _expired(login: LoginFacts, user: Visitor, now: datetime) -> bool:
    cfg = current_app.config
    idle = cfg["STAFF_IDLE_TIMEOUT"] if user.is_staff else cfg["SESSION_IDLE_TIMEOUT"]
    return now - login.last_seen_at > idle or now - login.created_at > cfg["SESSION_ABSOLUTE_TIMEOUT"]


def _facts(login_session: LoginSession) -> LoginFacts:
    return LoginFacts(id=login_session.id, created_at=login_session.created_at,
                      last_seen_at=login_session.last_seen_at, revoked_at=login_session.revoked_at,
                      reauthenticated_at=login_session.reauthenticated_at,
                      second_factor_at=login_session.second_factor_at,
                      current_account_id=login_session.current_account_id)


def begin_session(user: User, *, account_id=None) -> LoginSession:
    """Log `user` in with a fresh server-side session; the old cookie content is dropped."""
    session.clear()
    token = new_token()
    now = utcnow()
    login_session = LoginSession(
        user_id=user.id,
        token_hash=sha256_hex(token),
        created_at=now,
        last_seen_at=now,
        reauthenticated_at=now,
        current_account_id=account_id,
        user_agent=(request.user_agent.string or "")[:255],
        remote_addr=(request.remote_addr or "")[:64],
    )
    db.session.add(login_session)
    db.session.commit()
    user._session_token = token
    login_user(user)
    session.permanent = True
    for name in ("membership", "memberships", "membership_row", "loaded_memberships"):
        g.pop(name, None)
    g.login_session = login_session
    g.login_facts = _facts(login_session)
    return login_session


def rotate_session(user: User) -> LoginSession:
    """Replace the current session with a fresh one (same household): after a password
    change the cookie this browser had before is refused like any other old cookie."""
    old = current_login_session()
    account_id = old.current_account_id if old is not None else None
    if old is not None:
        old.revoked_at = utcnow()
    return begin_session(user, account_id=account_id)


def end_session() -> None:
    login_session = current_login_session()
    if login_session is not None:
        login_session.revoked_at = utcnow()
        db.session.commit()
    logout_user()
    session.clear()


def login_facts() -> LoginFacts | LoginSession | None:
    """The current login session's facts (plain values read with the login, no query), or
    its ORM row once this request loaded it to change it (so a check after the change sees it)."""
    return g.get("login_session") or g.get("login_facts")


def current_login_session() -> LoginSession | None:
    """The current login session as an ORM row, for a view that changes it (read on first use)."""
    if "login_session" not in g:
        facts = g.get("login_facts")
        g.login_session = db.session.get(LoginSession, facts.id) if facts is not None else None
    return g.login_session


def required_login_session() -> LoginSession:
    """The current login session, in a view that only a logged-in user reaches (every login
    has one); without one, the visitor is sent to log in like any anonymous visitor."""
    login_session = current_login_session()
    if login_session is None:
        abort(login_manager.unauthorized())
    return login_session


def actor() -> Visitor | User:
    """Who is acting, for the services that record only their id and email (visitors.Actor):
    the Visitor itself, no query."""
    if not current_user.is_authenticated:
        abort(login_manager.unauthorized())
    return current_user._get_current_object()  # type: ignore[attr-defined]


def user_row() -> User:
    """The logged-in user as an ORM row, for the services that act as or change them (read
    on first use; current_user itself is a Visitor of plain values)."""
    if not current_user.is_authenticated:
        abort(login_manager.unauthorized())
    visitor = current_user._get_current_object()  # type: ignore[attr-defined]
    if isinstance(visitor, User):
        return visitor  # this request logged in: the row itself
    row = g.get("user_row")
    if row is None:
        row = db.session.get(User, visitor.id)
        if row is None:
            abort(login_manager.unauthorized())
        row._session_token = visitor.session_token
        g.user_row = row
    return row


def _set_current_household(account_id) -> None:
    login_session = g.get("login_session")
    if login_session is not None:
        login_session.current_account_id = account_id
    else:
        facts = g.get("login_facts")
        if facts is None:
            return
        visitors.set_current_household(facts.id, account_id)
        g.login_facts = dataclasses.replace(facts, current_account_id=account_id)
    db.session.commit()


def current_membership() -> HouseholdMember | None:
    """The membership of the household the user is looking at (None if they have none), as
    plain values read with the login (membership_row() for the ORM row)."""
    if "membership" in g:
        return g.membership
    membership = None
    if current_user.is_authenticated and not current_user.is_staff:
        facts = login_facts()
        wanted = facts.current_account_id if facts else None
        loaded_for, rows = g.pop("loaded_memberships", (None, None))  # read with the user (_load_user)
        if rows is None or loaded_for != current_user.id:
            rows = visitors.memberships_of(current_user.id)
        g.memberships = rows
        membership = next((m for m in rows if m.account_id == wanted), rows[0] if rows else None)
        if membership is not None and wanted != membership.account_id:
            _set_current_household(membership.account_id)
    g.membership = membership
    return membership


def all_memberships() -> list[HouseholdMember]:
    current_membership()
    return g.get("memberships", [])


def membership_row() -> Membership:
    """The current membership as an ORM row with its household, for the services that take
    or change one (read on first use, then the same object for the rest of the request)."""
    row = g.get("membership_row")
    if row is None:
        membership = current_membership()
        if membership is None:
            abort(403)
        row = db.session.scalars(
            sa.select(Membership).options(sa.orm.joinedload(Membership.account)).where(Membership.id == membership.id)
        ).one_or_none()
        if row is None:
            abort(403)  # removed from the household while this request ran
        g.membership_row = row
    return row


def household_required(view):
    """Require a logged-in household user with a current household; sets g.membership and
    g.account (plain values: visitors.HouseholdMember and its Household)."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        if current_user.is_staff:
            abort(403)
        membership = current_membership()
        if membership is None:
            return redirect(url_for("account.no_household"))
        membership = _follow_device_link(membership, kwargs)
        g.account = membership.account
        return view(*args, **kwargs)

    return wrapper


def _follow_device_link(membership: HouseholdMember, view_args: dict) -> HouseholdMember:
    """On the URL of a gateway, box, PIN or change of another of the user's households,
    make that household the current one (saying so) and return its membership. One query,
    and only for users of several households; a row of a household the user is not in (or
    none) leaves everything as it is, so the view answers 404 as for an unknown id. A
    poll is not the user opening anything: it never switches (two tabs would fight)."""
    memberships = all_memberships()
    if len(memberships) < 2 or is_poll():
        return membership
    name = next((n for n in _DEVICE_ROWS if view_args.get(n) is not None), None)
    if name is None:
        return membership
    row_id, row_account_id = _DEVICE_ROWS[name]
    owner_id = db.session.scalar(sa.select(row_account_id).where(row_id == view_args[name]))
    target = next((m for m in memberships if m.account_id == owner_id), None)
    if target is None or target.account_id == membership.account_id:
        return membership
    _set_current_household(target.account_id)
    g.membership = target
    flash(f"Switched to household “{target.account.name}”.", "info")
    return target


def owner_required(view):
    """Like household_required, and the user must own the current household."""

    @functools.wraps(view)
    @household_required
    def wrapper(*args, **kwargs):
        if not g.membership.is_owner:
            abort(403)
        return view(*args, **kwargs)

    return wrapper
