"""“Forgot your password?”: a single-use link by email, valid for PASSWORD_RESET_TTL.

Asking gives the same answer, after the same work, whether an account has the address or
not: the throttle slots are taken and spent, a reset row is written (without a user when
there is no account, so no link can ever match it), and a mail job is queued with the link
encrypted; only the job of a real account sends anything. Only the SHA-256 of a link's
256-bit token is kept; the link itself exists in the email and, encrypted, in the job until
the email is sent. Setting the new password uses the link up, ends every session of the
user and is recorded in the activity log of each of their households."""
import base64
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import cast

import sqlalchemy as sa
from flask import current_app

from portal import crypto
from portal.extensions import db
from portal.jobs.outbox import SEND_PASSWORD_RESET, enqueue
from portal.models import Membership, PasswordReset, User, new_id, utcnow
from portal.services import accounts, activity, throttle
from portal.services.errors import NotFound

TOKEN_BYTES = 32  # 256 bits
# The encrypted link in the job's payload is bound to this "column" and the reset's id.
_LINK_TABLE, _LINK_COLUMN = "jobs", "payload.link"


class LinkUnusable(NotFound):
    """Unknown, used or expired: the three look the same from outside."""

    def __init__(self):
        super().__init__("This link has expired or was already used. Ask for a new one below.")


def ttl() -> timedelta:
    return current_app.config["PASSWORD_RESET_TTL"]


def throttle_keys(email: str, client_address: str | None) -> list[tuple[str, int]]:
    cfg = current_app.config
    keys = [(f"reset:email:{email}"[:300], cfg["PASSWORD_RESETS_PER_ACCOUNT"])]
    if client_address:
        keys.append((f"reset:ip:{client_address}"[:300], cfg["PASSWORD_RESETS_PER_ADDRESS"]))
    return keys


def request_reset(email: str, *, client_address: str | None, link_for: Callable[[str], str]) -> None:
    """Queue a reset link for `email` if an account (not staff, not disabled) has it, and do
    the same work if none has. Raises ValidationFailed for a malformed address (which says
    nothing about accounts) and throttle.Throttled past the limits; otherwise returns
    nothing, so the caller cannot tell the cases apart either."""
    email = accounts.check_email(email)
    try:
        attempt = throttle.claim(throttle_keys(email, client_address))
    except throttle.Throttled as exc:
        raise throttle.Throttled(exc.retry_after, "Too many reset requests for this address or from your network.") \
            from None
    throttle.spend(attempt)  # every request counts, answered or not
    user = accounts.find_user_by_email(email)
    user_id = user.id if user is not None and not user.is_staff and not user.is_disabled else None
    now = utcnow()
    token = crypto.new_token(TOKEN_BYTES)
    reset_id = new_id()
    # Only the newest link of an account works (for no account this matches no row).
    db.session.execute(
        sa.update(PasswordReset)
        .where(PasswordReset.user_id == (user_id or new_id()), PasswordReset.used_at.is_(None))
        .values(used_at=now)
    )
    db.session.add(PasswordReset(
        id=reset_id, user_id=user_id, token_hash=crypto.sha256_hex(token), created_at=now, expires_at=now + ttl()
    ))
    sealed = crypto.encrypt(link_for(token), table=_LINK_TABLE, column=_LINK_COLUMN, row_id=reset_id)
    enqueue(
        SEND_PASSWORD_RESET,
        {"reset_id": str(reset_id), "link": base64.b64encode(sealed).decode()},
        account_id=None,
        target=f"password-reset:{reset_id}",
    )
    db.session.commit()


# --- the job's side ---------------------------------------------------------------------------

@dataclass
class ResetEmail:
    to: str
    subject: str
    body: str


def email_for(payload: dict) -> ResetEmail | None:
    """The email a queued reset job sends, or None when there is nothing to send (no
    account, a link already used, replaced or expired, or the link already sent)."""
    link_blob = payload.get("link")
    reset = db.session.get(PasswordReset, uuid.UUID(str(payload.get("reset_id"))))
    if not link_blob or reset is None or reset.user_id is None or reset.used_at is not None:
        return None
    if reset.expires_at <= utcnow():
        return None
    user = db.session.get(User, reset.user_id)
    if user is None or user.is_disabled:
        return None
    link = crypto.decrypt(base64.b64decode(link_blob), table=_LINK_TABLE, column=_LINK_COLUMN, row_id=reset.id)
    minutes = int(ttl().total_seconds() // 60)
    return ResetEmail(
        to=user.email,
        subject="Reset your IoTLock password",
        body=(
            "Hello,\n\nSomeone (we hope you) asked to reset the password of the IoTLock login "
            f"{user.email}.\n\nOpen this link to choose a new password. It works once, for {minutes} minutes "
            f"(until {reset.expires_at:%Y-%m-%d %H:%M} UTC):\n\n{link}\n\n"
            "Setting a new password logs you out everywhere. If you did not ask for this, ignore this "
            "email: your password stays as it is.\n"
        ),
    )


def without_link(payload: dict) -> dict:
    """The job's payload once the email is out (or never will be): the link is dropped."""
    return {"reset_id": payload.get("reset_id")}


# --- the link ---------------------------------------------------------------------------------

def _link(token: str) -> tuple[PasswordReset, User]:
    """The open reset behind a link and its user, or LinkUnusable."""
    # A well-formed token is 43 URL-safe characters; anything else cannot match a hash.
    if not token or len(token) > 64:
        raise LinkUnusable()
    reset = db.session.scalars(
        sa.select(PasswordReset).where(PasswordReset.token_hash == crypto.sha256_hex(token))
    ).first()
    if reset is None or reset.user_id is None or reset.used_at is not None or reset.expires_at <= utcnow():
        raise LinkUnusable()
    user = db.session.get(User, reset.user_id)
    if user is None or user.is_disabled or user.is_staff:
        raise LinkUnusable()
    return reset, user


def user_for_link(token: str) -> User:
    """The user a reset link belongs to, or LinkUnusable."""
    return _link(token)[1]


def reset_password(token: str, password: str) -> User:
    """Set the new password through the link (same rules as registration) and use the link
    up; every session of the user ends, every other open link of theirs too, and each of
    their households' activity log records it."""
    reset, user = _link(token)
    accounts.check_password(password, email=user.email, field="password")
    now = utcnow()
    # Guarded UPDATE: of two requests with one link, one wins.
    # An UPDATE's result is a CursorResult (it has rowcount); Session.execute is typed as returning a Result.
    claimed = cast(
        sa.CursorResult,
        db.session.execute(
            sa.update(PasswordReset)
            .where(PasswordReset.id == reset.id, PasswordReset.used_at.is_(None), PasswordReset.expires_at > now)
            .values(used_at=now)
        ),
    ).rowcount
    if claimed != 1:
        db.session.rollback()
        raise LinkUnusable()
    accounts.forget_reset_links(user.id, now)
    user.password_hash = crypto.hash_password(password)
    user.password_changed_at = now
    ended = accounts.revoke_sessions(user.id)
    account_ids = db.session.scalars(sa.select(Membership.account_id).where(Membership.user_id == user.id)).all()
    for account_id in account_ids:
        activity.record(
            account_id,
            kind="member.password_reset",
            summary=f"{user.email} set a new password with a reset link sent by email; "
            f"all of their sessions were logged out.",
            actor_user=user,
            details={"sessions_ended": ended},
        )
    db.session.commit()
    # Locked out by wrong guesses? The owner of the address proved themselves.
    throttle.reset(throttle.account_key(user.email))
    return user

