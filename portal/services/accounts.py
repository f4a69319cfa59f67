"""Registration, authentication, a user's own settings, and the households they belong to."""
import contextlib
import functools
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import cast

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from sqlalchemy.exc import IntegrityError

from portal import crypto, timezones
from portal.extensions import db
from portal.jobs.outbox import enqueue_household_link
from portal.models import ROLE_OWNER, Account, LoginSession, Membership, PasswordReset, User, utcnow
from portal.services import activity, throttle
from portal.services.errors import Forbidden, NotFound, ValidationFailed
from portal.services.text import control_problem, refuse_controls

PASSWORD_MIN = 8
PASSWORD_MAX = 128
EMAIL_MAX = 254
HOUSEHOLD_NAME_MAX = 80
_COMMON_PASSWORDS = Path(__file__).resolve().parents[1] / "data" / "common-passwords.txt"


# --- rules shared by every form that takes these values ---------------------------------

def normalize_email(email: str) -> str:
    return (email or "").strip().lower()


def check_email(email: str, field: str = "email") -> str:
    """The normalized address, or ValidationFailed with a message for the field."""
    refuse_controls(email, field)
    email = normalize_email(email)
    if not email:
        raise ValidationFailed("Enter an email address.", field=field)
    if len(email) > EMAIL_MAX:
        raise ValidationFailed(f"An email address has at most {EMAIL_MAX} characters.", field=field)
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError:
        raise ValidationFailed("Enter a valid email address, like name@example.com.", field=field) from None
    return email


@functools.cache
def common_passwords() -> frozenset[str]:
    lines = _COMMON_PASSWORDS.read_text(encoding="utf-8").splitlines()
    return frozenset(line for line in lines if line and not line.startswith("#"))


def check_password(password: str, *, email: str | None = None, field: str = "password") -> None:
    """Length 8..128 and not a known common password; no composition rules (NIST 800-63B)."""
    password = password or ""
    refuse_controls(password, field, kind="password")
    if len(password) < PASSWORD_MIN:
        raise ValidationFailed(f"Use at least {PASSWORD_MIN} characters.", field=field)
    if len(password) > PASSWORD_MAX:
        raise ValidationFailed(f"Use at most {PASSWORD_MAX} characters.", field=field)
    folded = password.strip().lower()
    if folded in common_passwords():
        raise ValidationFailed(
            "This password is one of the most common ones and easy to guess. "
            "Try a few unrelated words instead.",
            field=field,
        )
    if email and folded in {normalize_email(email), normalize_email(email).split("@")[0]}:
        raise ValidationFailed("Don’t use your email address as your password.", field=field)


def check_household_name(name: str, field: str = "name") -> str:
    refuse_controls(name, field)
    name = " ".join((name or "").split())
    if not name:
        raise ValidationFailed("Give your household a name.", field=field)
    if len(name) > HOUSEHOLD_NAME_MAX:
        raise ValidationFailed(f"Keep it under {HOUSEHOLD_NAME_MAX} characters.", field=field)
    return name


# --- registration and login ------------------------------------------------------------

def find_user_by_email(email: str) -> User | None:
    return db.session.scalars(sa.select(User).where(User.email == normalize_email(email))).first()


def _new_user(email: str, password: str) -> User:
    email = check_email(email)
    check_password(password, email=email)
    if find_user_by_email(email) is not None:
        raise ValidationFailed("An account with this email already exists. Log in instead.", field="email")
    return User(email=email, password_hash=crypto.hash_password(password), password_changed_at=utcnow())


def _commit_new_user() -> None:
    try:
        db.session.commit()
    except IntegrityError:
        # Two sign-ups with one address at the same moment: the second one loses.
        db.session.rollback()
        raise ValidationFailed("An account with this email already exists. Log in instead.", field="email") from None


def register(email: str, password: str, household_name: str, *, client_address=None,
             time_zone: str | None = None) -> tuple[User, Account]:
    """Create the user, their household and the owner membership in one transaction.
    `time_zone`: the household's (IANA name, e.g. the browser's guess); UTC when it is
    not one. Raises throttle.Throttled, before any hashing, when the client address made
    too many."""
    with _signup_slot(client_address):
        household_name = check_household_name(household_name, field="household_name")
        user = _new_user(email, password)
        account = create_household(user, household_name)
        account.time_zone = time_zone if timezones.is_zone(time_zone) else timezones.DEFAULT_ZONE
        db.session.add(user)
        _commit_new_user()
    return user, account


def register_user(email: str, password: str, *, client_address=None) -> User:
    """Create a user without a household (someone signing up to accept an invite)."""
    with _signup_slot(client_address):
        user = _new_user(email, password)
        db.session.add(user)
        _commit_new_user()
    return user


@contextlib.contextmanager
def _signup_slot(client_address: str | None):
    """Claim a sign-up slot of the client address before any hashing, so parallel sign-ups
    cannot all pass the limit; one refused by validation gives its slot back, as only
    accounts actually created count."""
    attempt = throttle.claim_signup(client_address)
    try:
        yield
    except (ValidationFailed, crypto.HasherBusy):
        throttle.release(attempt)
        raise
    throttle.spend(attempt)


def create_household(owner: User, name: str) -> Account:
    """Add a household owned by `owner` to the session (the caller commits)."""
    account = Account(name=name.strip())
    db.session.add(account)
    db.session.add(Membership(account=account, user=owner, role=ROLE_OWNER))
    enqueue_household_link(account)  # linked to StreamIoT by the worker, never in the request
    return account


def add_household(user: User, name: str, login_session: LoginSession | None = None) -> Account:
    """A further household owned by `user`, made their current one."""
    if user.is_staff:
        raise Forbidden("Support staff cannot own households.")
    name = check_household_name(name)
    account = create_household(user, name)
    db.session.flush()
    if login_session is not None:
        login_session.current_account_id = account.id
    db.session.commit()
    return account


def authenticate(email: str, password: str, *, client_address: str | None = None) -> User | None:
    """The user for these credentials, or None (same answer for unknown email and wrong
    password). Raises throttle.Throttled, before any hashing, while the account or the
    client address has no attempt left in its window."""
    if control_problem(email):
        return None  # no account's address holds a control character (and PostgreSQL refuses a NUL)
    email = normalize_email(email)
    attempt = throttle.claim(throttle.keys_for(email, client_address))
    user = find_user_by_email(email)
    if user is None or user.is_disabled:
        throttle.verify(attempt, None, password)
        return None
    if not throttle.verify(attempt, user.password_hash, password):
        return None
    # The account's failures are forgiven; the client address's count keeps only failures.
    throttle.reset(throttle.account_key(email))
    # verify_password refuses a missing hash, so a user who got this far has one.
    assert user.password_hash is not None, "a verified password implies a stored hash"
    if crypto.password_needs_rehash(user.password_hash):
        # Made with other argon2 parameters: re-made now, or at a later login when every
        # hash slot is busy (the login itself has succeeded).
        with contextlib.suppress(crypto.HasherBusy):
            user.password_hash = crypto.hash_password(password)
            db.session.commit()
    return user


def verify_current_password(user: User, password: str, client_address: str | None, field: str) -> None:
    """Re-authentication for sensitive changes, throttled like a login."""
    try:
        attempt = throttle.claim(throttle.keys_for(user.email, client_address))
    except throttle.Throttled as exc:
        exc.field = field
        raise
    if not throttle.verify(attempt, user.password_hash, password or ""):
        raise ValidationFailed("That is not your current password.", field=field)


# --- a user's own settings -------------------------------------------------------------

def change_password(
    user: User, current_password: str, new_password: str, *, keep_session_id=None, client_address=None
) -> int:
    """Set a new password and log out every other session of the user; returns how many."""
    verify_current_password(user, current_password, client_address, "current_password")
    check_password(new_password, email=user.email, field="new_password")
    if crypto.verify_password(user.password_hash, new_password):
        raise ValidationFailed("The new password is the same as the current one.", field="new_password")
    user.password_hash = crypto.hash_password(new_password)
    user.password_changed_at = utcnow()
    revoked = revoke_sessions(user.id, keep_session_id=keep_session_id)
    forget_reset_links(user.id)
    db.session.commit()
    return revoked


def change_email(user: User, password: str, new_email: str, *, client_address=None) -> None:
    """Change the login email; needs the password."""
    new_email = check_email(new_email, field="email")
    verify_current_password(user, password, client_address, "password")
    if new_email == user.email:
        raise ValidationFailed("That is already your email address.", field="email")
    if find_user_by_email(new_email) is not None:
        raise ValidationFailed("Another account already uses this email address.", field="email")
    user.email = new_email
    forget_reset_links(user.id)  # a link mailed to the old address no longer works
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise ValidationFailed("Another account already uses this email address.", field="email") from None


def revoke_sessions(user_id: uuid.UUID, *, keep_session_id=None) -> int:
    """Mark the user's live login sessions revoked (the caller commits); a replayed cookie
    of any of them is refused from then on."""
    stmt = (
        sa.update(LoginSession)
        .where(LoginSession.user_id == user_id, LoginSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    if keep_session_id is not None:
        stmt = stmt.where(LoginSession.id != keep_session_id)
    # An UPDATE's result is a CursorResult (it has rowcount); Session.execute is typed as returning a Result.
    return cast(sa.CursorResult, db.session.execute(stmt)).rowcount


def forget_reset_links(user_id: uuid.UUID, now=None) -> None:
    """Every open "forgot your password" link of the user stops working (the caller
    commits): after a new password or a new email address."""
    db.session.execute(
        sa.update(PasswordReset)
        .where(PasswordReset.user_id == user_id, PasswordReset.used_at.is_(None))
        .values(used_at=now or utcnow())
    )


# --- households --------------------------------------------------------------------------

def memberships_of(user_id: uuid.UUID) -> list[Membership]:
    return list(
        db.session.scalars(
            sa.select(Membership)
            .where(Membership.user_id == user_id)
            .options(sa.orm.joinedload(Membership.account))
            .order_by(Membership.joined_at)
        ).all()
    )


def switch_household(user: User, login_session: LoginSession, account_id) -> Account:
    """Make one of the user's households the current one of this login session."""
    try:
        account_id = uuid.UUID(str(account_id))
    except ValueError:
        raise NotFound() from None
    membership = db.session.scalars(
        sa.select(Membership)
        .where(Membership.user_id == user.id, Membership.account_id == account_id)
        .options(sa.orm.joinedload(Membership.account))
    ).first()
    if membership is None:
        raise NotFound()
    login_session.current_account_id = account_id
    db.session.commit()
    return membership.account


def _owned_household(membership: Membership, refusal: str) -> Account:
    """The household of an owner's membership (Forbidden with `refusal` for a member)."""
    if not membership.is_owner:
        raise Forbidden(refusal)
    account = db.session.get(Account, membership.account_id)
    if account is None:
        raise NotFound()
    return account


def rename_household(membership: Membership, actor: User, name: str) -> Account:
    """Owners rename their household; recorded in the activity log."""
    account = _owned_household(membership, "Only owners can rename the household.")
    name = check_household_name(name)
    return _change_household(account, actor, "name", name, "household.renamed",
                             lambda old: f"Renamed the household from “{old}” to “{name}”.")


def set_time_zone(membership: Membership, actor: User, time_zone: str) -> Account:
    """Owners set the household's time zone (an IANA name). PINs made from then on keep
    their hours in it; PINs made before keep the zone they were made in."""
    account = _owned_household(membership, "Only owners can change the household’s time zone.")
    if not timezones.is_zone(time_zone):
        raise ValidationFailed("Choose a time zone from the list, like Europe/Berlin.", field="time_zone")
    return _change_household(
        account, actor, "time_zone", time_zone, "household.time_zone",
        lambda old: f"Set the household’s time zone to {time_zone} (was {old}); new PINs keep their hours in it.",
    )


def _change_household(account: Account, actor: User, column: str, value: str, kind: str,
                      summary: Callable[[str], str]) -> Account:
    """Set one setting of the household, logged with its old value; nothing when unchanged."""
    old = getattr(account, column)
    if old == value:
        return account
    setattr(account, column, value)
    activity.record(account.id, kind=kind, summary=summary(old), actor_user=actor, details={"from": old, "to": value})
    db.session.commit()
    return account
