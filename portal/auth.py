"""Login sessions kept server-side, the current household, and the view decorators that
require them. The signed cookie carries only a random token; its hash is in the database."""
import functools
from datetime import datetime

import sqlalchemy as sa
from flask import abort, current_app, flash, g, make_response, redirect, request, session, url_for
from flask_login import current_user, login_user, logout_user

from portal.crypto import new_token, sha256_hex
from portal.extensions import db, login_manager
from portal.models import Command, Gateway, LoginSession, Mailbox, Membership, Pin, User, utcnow

# Writing last_seen_at on every request would make every page a write; a minute is enough
# precision for an idle timeout counted in minutes.
_TOUCH_EVERY_SECONDS = 60
# Pages that refresh themselves (htmx polling) send this header; such requests are not the
# user doing something, so they must not keep an idle session alive forever.
POLL_HEADER = "X-IoTLock-Poll"
# URL parameters that name a household's device-side row. A link to one of another of the
# user's households (an emailed link, a second tab) switches to that household.
_DEVICE_ROWS = {
    "gateway_id": (Gateway.id, Gateway.account_id),
    "mailbox_id": (Mailbox.id, Mailbox.account_id),
    "pin_id": (Pin.id, Pin.account_id),
    "command_id": (Command.id, Command.account_id),
}


# The login session, its user, and the user's households (memberships with their household):
# one statement per request, built once.
_SESSION_USER_HOUSEHOLDS = (
    sa.select(LoginSession, User, Membership)
    .join(User, User.id == LoginSession.user_id)
    .outerjoin(Membership, Membership.user_id == User.id)
    .options(sa.orm.joinedload(Membership.account))
    .where(LoginSession.token_hash == sa.bindparam("token_hash"))
    .order_by(Membership.joined_at)
)


@login_manager.user_loader
def _load_user(token: str):
    if not token:
        return None
    rows = db.session.execute(_SESSION_USER_HOUSEHOLDS, {"token_hash": sha256_hex(token)}).all()
    if not rows:
        return None
    login_session, user = rows[0][0], rows[0][1]
    now = utcnow()
    if login_session.revoked_at is not None or user.is_disabled or _expired(login_session, user, now):
        return None
    polling = request.headers.get(POLL_HEADER) == "1"
    if not polling and (now - login_session.last_seen_at).total_seconds() > _TOUCH_EVERY_SECONDS:
        login_session.last_seen_at = now
        db.session.commit()  # expires the rows: current_membership() loads them again
    else:
        g.loaded_memberships = (user.id, [row[2] for row in rows if row[2] is not None])
    user._session_token = token
    g.login_session = login_session
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


def _expired(login_session: LoginSession, user: User, now: datetime) -> bool:
    cfg = current_app.config
    idle = cfg["STAFF_IDLE_TIMEOUT"] if user.is_staff else cfg["SESSION_IDLE_TIMEOUT"]
    return (
        now - login_session.last_seen_at > idle
        or now - login_session.created_at > cfg["SESSION_ABSOLUTE_TIMEOUT"]
    )


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
    g.login_session = login_session
    return login_session


def rotate_session(user: User) -> LoginSession:
    """Replace the current session with a fresh one (same household): after a password
    change the cookie this browser had before is refused like any other old cookie."""
    old = g.get("login_session")
    account_id = old.current_account_id if old is not None else None
    if old is not None:
        old.revoked_at = utcnow()
    return begin_session(user, account_id=account_id)


def end_session() -> None:
    login_session = g.get("login_session")
    if login_session is not None:
        login_session.revoked_at = utcnow()
        db.session.commit()
    logout_user()
    session.clear()


def current_login_session() -> LoginSession | None:
    return g.get("login_session")


def required_login_session() -> LoginSession:
    """The current login session, in a view that only a logged-in user reaches (every login
    has one); without one, the visitor is sent to log in like any anonymous visitor."""
    login_session = current_login_session()
    if login_session is None:
        abort(login_manager.unauthorized())
    return login_session


def current_membership() -> Membership | None:
    """The membership of the household the user is looking at (None if they have none)."""
    if "membership" in g:
        return g.membership
    membership = None
    if current_user.is_authenticated and not current_user.is_staff:
        login_session = current_login_session()
        wanted = login_session.current_account_id if login_session else None
        loaded_for, rows = g.pop("loaded_memberships", (None, None))  # loaded with the user (_load_user)
        if rows is None or loaded_for != current_user.id:
            rows = db.session.scalars(
                sa.select(Membership)
                .where(Membership.user_id == current_user.id)
                .options(sa.orm.joinedload(Membership.account))
                .order_by(Membership.joined_at)
            ).all()
        g.memberships = rows
        membership = next((m for m in rows if m.account_id == wanted), rows[0] if rows else None)
        if login_session is not None and membership is not None and wanted != membership.account_id:
            login_session.current_account_id = membership.account_id
            db.session.commit()
    g.membership = membership
    return membership


def all_memberships() -> list[Membership]:
    current_membership()
    return g.get("memberships", [])


def household_required(view):
    """Require a logged-in household user with a current household; sets g.account."""

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


def _follow_device_link(membership: Membership, view_args: dict) -> Membership:
    """On the URL of a gateway, box, PIN or change of another of the user's households,
    make that household the current one (saying so) and return its membership. One query,
    and only for users of several households; a row of a household the user is not in (or
    none) leaves everything as it is, so the view answers 404 as for an unknown id. A
    poll is not the user opening anything: it never switches (two tabs would fight)."""
    memberships = all_memberships()
    if len(memberships) < 2 or request.headers.get(POLL_HEADER) == "1":
        return membership
    name = next((n for n in _DEVICE_ROWS if view_args.get(n) is not None), None)
    if name is None:
        return membership
    row_id, row_account_id = _DEVICE_ROWS[name]
    owner_id = db.session.scalar(sa.select(row_account_id).where(row_id == view_args[name]))
    target = next((m for m in memberships if m.account_id == owner_id), None)
    if target is None or target.account_id == membership.account_id:
        return membership
    login_session = current_login_session()
    if login_session is not None:
        login_session.current_account_id = target.account_id
        db.session.commit()
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
