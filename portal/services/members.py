"""Members of a household: invites (create, email, revoke, accept), roles, removal, leaving."""
import base64
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from portal import crypto
from portal.extensions import db
from portal.jobs import outbox
from portal.models import ROLE_MEMBER, ROLE_OWNER, Account, Invite, LoginSession, Membership, User, utcnow
from portal.services import accounts, activity, api_tokens, gateway_keys, mail, pins
from portal.services.errors import Conflict, Forbidden, NotFound, ValidationFailed
from portal.services.scope import get_scoped, scoped

INVITE_TOKEN_BYTES = 32  # 256 bits; only its SHA-256 is stored
# The invite email's job (portal/jobs/handlers/alerts.py): the link travels encrypted in it.
SEND_INVITE = "mail.invite"
INVITE_QUEUED = "queued"

# Why a link no longer works, in the words the invitee sees.
INVITE_UNKNOWN = "unknown"
INVITE_EXPIRED = "expired"
INVITE_USED = "used"
INVITE_REVOKED = "revoked"


class InviteUnusable(NotFound):
    """The invite link cannot be used; `reason` is one of the INVITE_* values."""

    def __init__(self, reason: str):
        super().__init__("This invite link can’t be used.")
        self.reason = reason


# --- reading -------------------------------------------------------------------------------

def list_members(account_id: uuid.UUID) -> list[Membership]:
    """Owners first, then by the time they joined."""
    return list(
        db.session.scalars(
            scoped(Membership, account_id)
            .options(sa.orm.joinedload(Membership.user))
            .order_by(sa.case((Membership.role == ROLE_OWNER, 0), else_=1), Membership.joined_at)
        ).all()
    )


def list_open_invites(account_id: uuid.UUID) -> list[Invite]:
    """Invites neither accepted nor revoked (expired ones included, so owners can clear them)."""
    return list(
        db.session.scalars(
            scoped(Invite, account_id)
            .where(Invite.accepted_at.is_(None), Invite.revoked_at.is_(None))
            .options(sa.orm.joinedload(Invite.invited_by))
            .order_by(Invite.created_at.desc())
        ).all()
    )


def owner_count(account_id: uuid.UUID) -> int:
    return db.session.execute(
        sa.select(sa.func.count()).select_from(Membership).where(
            Membership.account_id == account_id, Membership.role == ROLE_OWNER
        )
    ).scalar_one()


# --- invites -----------------------------------------------------------------------------

@dataclass
class NewInvite:
    invite: Invite
    link: str
    delivery: str  # INVITE_QUEUED (an email is on its way) or mail.LOGGED (no mail server)

    @property
    def emailing(self) -> bool:
        return self.delivery == INVITE_QUEUED


def invite(membership: Membership, actor: User, email: str, link_for: Callable[[str], str]) -> NewInvite:
    """An owner invites `email`: a one-time link (256-bit token, only its hash stored) that
    expires after INVITE_TTL. An older open invite for the same address is replaced, since
    its link can never be shown again. `link_for(token)` builds the absolute link."""
    _require_owner(membership, "Only owners can invite members.")
    account_id = membership.account_id
    email = accounts.check_email(email)
    already = db.session.scalar(
        sa.select(Membership.id)
        .join(User, User.id == Membership.user_id)
        .where(Membership.account_id == account_id, User.email == email)
    )
    if already is not None:
        raise ValidationFailed("This person is already a member of the household.", field="email")
    now = utcnow()
    db.session.execute(
        sa.update(Invite)
        .where(
            Invite.account_id == account_id,
            Invite.email == email,
            Invite.accepted_at.is_(None),
            Invite.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    token = crypto.new_token(INVITE_TOKEN_BYTES)
    row = Invite(
        account_id=account_id,
        email=email,
        token_hash=crypto.sha256_hex(token),
        invited_by_id=actor.id,
        created_at=now,
        expires_at=now + current_app.config["INVITE_TTL"],
    )
    db.session.add(row)
    activity.record(
        account_id,
        kind="member.invited",
        summary=f"Invited {email} to join the household.",
        actor_user=actor,
        details={"email": email},
    )
    link = link_for(token)
    if row.id is None:
        row.id = uuid.uuid4()  # assigned at flush otherwise; the job names it now
    sealed = crypto.encrypt(link, table="jobs", column="payload.link", row_id=row.id)
    outbox.enqueue(SEND_INVITE, {"invite_id": str(row.id), "inviter": actor.email,
                                 "link": base64.b64encode(sealed).decode()},
                   account_id=account_id, target=f"invite:{row.id}")
    db.session.commit()
    delivery = INVITE_QUEUED if current_app.config.get("MAIL_SERVER") else mail.LOGGED
    return NewInvite(invite=row, link=link, delivery=delivery)


def send_invite_email(payload: dict) -> str:
    """The invite email of a "mail.invite" job: mail.SENT, LOGGED or FAILED; nothing (SENT)
    once the invite was accepted, revoked or has expired."""
    invite_id = uuid.UUID(payload["invite_id"])
    row = db.session.get(Invite, invite_id)
    if row is None or row.accepted_at or row.revoked_at or row.expires_at <= utcnow():
        return mail.SENT
    link = crypto.decrypt(base64.b64decode(payload["link"]), table="jobs", column="payload.link", row_id=invite_id)
    household = db.session.scalar(sa.select(Account.name).where(Account.id == row.account_id)) or "your household"
    return mail.send(
        row.email,
        f"{payload['inviter']} invited you to the household “{household}” on IoTLock",
        _invite_email(payload["inviter"], household, link, row.expires_at),
    )


def _invite_email(inviter: str, household: str, link: str, expires_at: datetime) -> str:
    return (
        f"Hello,\n\n{inviter} invited you to join the household “{household}” on IoTLock, "
        "where its members manage the keypad locks of their mailboxes and boxes.\n\n"
        f"Open this link to join (it works once, until {expires_at:%Y-%m-%d %H:%M} UTC):\n\n"
        f"{link}\n\n"
        "If you did not expect this, you can ignore this email.\n"
    )


def revoke_invite(membership: Membership, actor: User, invite_id) -> str:
    """Revoke an open invite; returns the address it was for."""
    _require_owner(membership, "Only owners can revoke invites.")
    row = get_scoped(Invite, membership.account_id, invite_id)
    if row.accepted_at is not None:
        raise Conflict("This invite was already accepted; remove the member instead.")
    email = row.email
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        db.session.commit()
    return email


@dataclass
class InviteView:
    """What the invitee sees before joining."""

    invite: Invite
    household: str
    inviter: str
    expires_at: datetime
    email: str


def describe_invite(token: str) -> InviteView:
    """The invite behind a link, or InviteUnusable saying why it cannot be used."""
    row = _invite_by_token(token)
    _check_usable(row)
    return InviteView(
        invite=row,
        household=row.account.name,
        inviter=row.invited_by.email if row.invited_by else "A member",
        expires_at=row.expires_at,
        email=row.email,
    )


def _invite_by_token(token: str) -> Invite:
    # A well-formed token is 43 URL-safe characters; anything else cannot match a hash.
    if not token or len(token) > 64:
        raise InviteUnusable(INVITE_UNKNOWN)
    row = db.session.scalars(
        sa.select(Invite)
        .where(Invite.token_hash == crypto.sha256_hex(token))
        .options(sa.orm.joinedload(Invite.account), sa.orm.joinedload(Invite.invited_by))
    ).first()
    if row is None:
        raise InviteUnusable(INVITE_UNKNOWN)
    return row


def _check_usable(row: Invite) -> None:
    if row.revoked_at is not None:
        raise InviteUnusable(INVITE_REVOKED)
    if row.accepted_at is not None:
        raise InviteUnusable(INVITE_USED)
    if row.expires_at <= utcnow():
        raise InviteUnusable(INVITE_EXPIRED)


def is_member(user_id: uuid.UUID, account_id: uuid.UUID) -> bool:
    return (
        db.session.scalar(
            sa.select(Membership.id).where(Membership.user_id == user_id, Membership.account_id == account_id)
        )
        is not None
    )


def accept_invite(token: str, user: User, login_session: LoginSession | None = None) -> Account:
    """Join the household of the invite as a member; the link is used up. The household
    becomes the current one of `login_session`."""
    if user.is_staff:
        raise Forbidden("Support staff accounts can’t join households.")
    row = _invite_by_token(token)
    _check_usable(row)
    account_id = row.account_id
    if is_member(user.id, account_id):
        raise Conflict(f"You are already a member of “{row.account.name}”.")
    now = utcnow()
    # Claim the invite with a guarded UPDATE, so two people opening one link cannot both join.
    # An UPDATE's result is a CursorResult (it has rowcount); Session.execute is typed as returning a Result.
    claimed = cast(
        sa.CursorResult,
        db.session.execute(
            sa.update(Invite)
            .where(
                Invite.id == row.id,
                Invite.accepted_at.is_(None),
                Invite.revoked_at.is_(None),
                Invite.expires_at > now,
            )
            .values(accepted_at=now, accepted_by_id=user.id)
        ),
    ).rowcount
    if claimed != 1:
        db.session.rollback()
        raise InviteUnusable(INVITE_USED)
    db.session.add(Membership(account_id=account_id, user_id=user.id, role=ROLE_MEMBER, joined_at=now))
    activity.record(
        account_id,
        kind="member.joined",
        summary=f"{user.email} joined the household.",
        actor_user=user,
        details={"invited_by": row.invited_by.email if row.invited_by else None},
    )
    if login_session is not None:
        login_session.current_account_id = account_id
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict(f"You are already a member of “{row.account.name}”.") from None
    return row.account


# --- roles, removal, leaving -------------------------------------------------------------

def _require_owner(membership: Membership, message: str) -> None:
    if not membership.is_owner:
        raise Forbidden(message)


def _lock_household(account_id: uuid.UUID) -> None:
    """Serialize role changes of one household (PostgreSQL row lock; SQLite locks the
    database on write anyway), so two owners stepping down at once cannot leave none."""
    db.session.execute(sa.select(Account.id).where(Account.id == account_id).with_for_update())


def _target(account_id: uuid.UUID, membership_id) -> Membership:
    return get_scoped(Membership, account_id, membership_id, sa.orm.joinedload(Membership.user))


def make_owner(membership: Membership, actor: User, membership_id) -> str:
    """Give another member the owner role; returns their email."""
    _require_owner(membership, "Only owners can make someone an owner.")
    _lock_household(membership.account_id)
    target = _target(membership.account_id, membership_id)
    email = target.user.email
    if target.is_owner:
        return email
    target.role = ROLE_OWNER
    activity.record(
        membership.account_id,
        kind="member.role_changed",
        summary=f"Made {target.user.email} an owner.",
        actor_user=actor,
        details={"member": email, "role": ROLE_OWNER},
    )
    db.session.commit()
    return email


def step_down(membership: Membership, actor: User) -> None:
    """An owner becomes a plain member, unless they are the last owner."""
    if not membership.is_owner:
        raise Conflict("You are not an owner of this household.")
    _lock_household(membership.account_id)
    if owner_count(membership.account_id) <= 1:
        raise Conflict(
            "You are the only owner. Make another member an owner first, "
            "so someone can still invite and remove members."
        )
    membership.role = ROLE_MEMBER
    activity.record(
        membership.account_id,
        kind="member.role_changed",
        summary=f"{actor.email} stepped down as owner.",
        actor_user=actor,
        details={"member": actor.email, "role": ROLE_MEMBER},
    )
    db.session.commit()


def remove_member(membership: Membership, actor: User, membership_id) -> str:
    """An owner removes another member; the removed user's login sessions end at once and
    their PINs come off the boxes (pins.assigned_to lists them beforehand). Returns the
    removed member's email."""
    _require_owner(membership, "Only owners can remove members.")
    _lock_household(membership.account_id)
    target = _target(membership.account_id, membership_id)
    if target.id == membership.id:
        raise Conflict("To leave the household yourself, use “Leave household”.")
    email = target.user.email
    removed_user_id = target.user_id
    # Their PINs come off the boxes (re-assign one first to keep it).
    pins.remove_member_pins(membership.account_id, target.user, actor, f"{email} was removed from the household")
    db.session.delete(target)
    accounts.revoke_sessions(removed_user_id)
    api_tokens.revoke_member_tokens(membership.account_id, removed_user_id)
    # Gateway settings they downloaded hold keys that still work: the owners are told.
    gateway_keys.member_departed(membership.account_id, removed_user_id)
    activity.record(
        membership.account_id,
        kind="member.removed",
        summary=f"Removed {email} from the household.",
        actor_user=actor,
        details={"member": email},
    )
    db.session.commit()
    return email


def leave(membership: Membership, actor: User) -> None:
    """Anyone leaves, except the last owner; their PINs come off the boxes."""
    _lock_household(membership.account_id)
    if membership.is_owner and owner_count(membership.account_id) <= 1:
        raise Conflict(
            "You are the only owner, so you can’t leave yet. Make another member an owner first."
        )
    account_id = membership.account_id
    # Their PINs come off the boxes (re-assign one first to keep it).
    pins.remove_member_pins(account_id, actor, actor, f"{actor.email} left the household")
    db.session.delete(membership)
    api_tokens.revoke_member_tokens(account_id, membership.user_id)
    gateway_keys.member_departed(account_id, membership.user_id)
    activity.record(
        account_id,
        kind="member.left",
        summary=f"{actor.email} left the household.",
        actor_user=actor,
    )
    db.session.commit()


def member_count(account_id: uuid.UUID) -> int:
    return db.session.execute(
        sa.select(sa.func.count()).select_from(Membership).where(Membership.account_id == account_id)
    ).scalar_one()
