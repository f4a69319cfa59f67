"""Deleting one's own account: after the password and a typed confirmation, the user's
memberships go, households left without members are closed with their devices, the
activity log keeps "a former member" where it named them, and the user row goes (with its
login sessions, reset links and recovery codes, by the database's cascades).

Refused while the user is the only owner of a household that has other members: someone
must be able to invite and remove members afterwards.

A household whose only member deletes their account is closed: each gateway goes through
the same removal as the gateway page's "Remove" (DESTRUCT to the box, then its channels and
thing deleted in StreamIoT), open invites are revoked at once, and a close job (handlers/
accounts.py) waits for those removals, deletes the household's portal thing and then the
household itself. StreamIoT 0.13.0 cannot delete users, so the household's generated
StreamIoT user stays, owning nothing."""
from dataclasses import dataclass, field

import sqlalchemy as sa
from flask import current_app

from portal.extensions import db
from portal.jobs.outbox import CLOSE_HOUSEHOLD, enqueue
from portal.models import Account, ActivityEvent, Gateway, GatewayKeyHolder, Invite, Membership, User, utcnow
from portal.services import accounts, activity, gateway_keys, gateways, members, throttle
from portal.services.errors import Conflict, Forbidden, ValidationFailed

CONFIRM_WORD = "delete my account"
FORMER_MEMBER = "a former member"
# The close job waits for the gateways' removals, which take seconds (longer while StreamIoT
# is down, when the job is held without counting attempts): this many checks, 10 s apart.
CLOSE_CHECK_SECONDS = 10
CLOSE_MAX_ATTEMPTS = 360


@dataclass
class Deleted:
    email: str
    left: list[str] = field(default_factory=list)  # households that go on without them
    closed: list[str] = field(default_factory=list)  # households closed with their devices


LEAVE = "leave"  # the household goes on without them
CLOSE = "close"  # they are its only member: closed with its devices
BLOCKED = "blocked"  # its only owner while others are members


@dataclass
class HouseholdFate:
    name: str
    fate: str
    gateways: int = 0


def plan(user: User) -> list[HouseholdFate]:
    """What deleting the account would do to each of the user's households."""
    fates = []
    for membership in accounts.memberships_of(user.id):
        count = members.member_count(membership.account_id)
        if count == 1:
            gateway_count = db.session.scalar(
                sa.select(sa.func.count()).select_from(Gateway).where(Gateway.account_id == membership.account_id)
            ) or 0
            fates.append(HouseholdFate(membership.account.name, CLOSE, gateway_count))
        elif membership.is_owner and members.owner_count(membership.account_id) == 1:
            fates.append(HouseholdFate(membership.account.name, BLOCKED))
        else:
            fates.append(HouseholdFate(membership.account.name, LEAVE))
    return fates


def sole_owner_blocks(user: User) -> list[str]:
    """Names of the households where the user is the only owner and others are members."""
    return [fate.name for fate in plan(user) if fate.fate == BLOCKED]


def blocked_message(names: list[str]) -> str:
    quoted = ", ".join(f"“{name}”" for name in names)
    one = len(names) == 1
    return (
        f"You are the only owner of {quoted}, which {'has' if one else 'have'} other members. "
        f"On {'its' if one else 'each'} Members page, make another member an owner (or remove the other "
        "members), then delete your account."
    )


def delete_account(user: User, password: str, confirmation: str, *, client_address: str | None = None) -> Deleted:
    """Delete `user` (see the module's docstring). ValidationFailed on the field for a wrong
    confirmation or password, Conflict while they are a household's only owner with others."""
    if user.is_staff:
        raise Forbidden("Staff accounts are removed with `flask staff disable`.")
    if " ".join((confirmation or "").split()).lower() != CONFIRM_WORD:
        raise ValidationFailed(f"Type “{CONFIRM_WORD}” to confirm.", field="confirm")
    accounts.verify_current_password(user, password, client_address, "password")
    memberships = accounts.memberships_of(user.id)
    for membership in memberships:
        # Serialize with role changes and removals: nobody steps down or leaves meanwhile.
        db.session.execute(sa.select(Account.id).where(Account.id == membership.account_id).with_for_update())
    blocked = sole_owner_blocks(user)
    if blocked:
        db.session.rollback()
        raise Conflict(blocked_message(blocked))
    email = user.email
    outcome = Deleted(email=email)
    for membership in memberships:
        if members.member_count(membership.account_id) == 1:
            _close_household(membership)
            outcome.closed.append(membership.account.name)
        else:
            _leave(membership, user)
            outcome.left.append(membership.account.name)
    _anonymise(user)
    accounts.revoke_sessions(user.id)
    db.session.execute(sa.delete(User).where(User.id == user.id))
    db.session.commit()
    throttle.reset(throttle.account_key(email))
    return outcome


def _leave(membership: Membership, user: User) -> None:
    account_id = membership.account_id
    db.session.delete(membership)
    gateway_keys.member_departed(account_id, user.id)
    activity.record(
        account_id,
        kind="member.left",
        summary="A former member deleted their IoTLock account and so left the household.",
        actor_label=FORMER_MEMBER,
    )


def _close_household(membership: Membership) -> None:
    """The user is the household's only member: its devices are removed the usual way, its
    open invites revoked, and the close job deletes what is left once they are gone."""
    account_id = membership.account_id
    for gateway in db.session.scalars(sa.select(Gateway).where(Gateway.account_id == account_id)).all():
        gateways.start_removal(gateway, None)
    db.session.execute(
        sa.update(Invite)
        .where(Invite.account_id == account_id, Invite.accepted_at.is_(None), Invite.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    db.session.delete(membership)
    enqueue(
        CLOSE_HOUSEHOLD,
        {"account_id": str(account_id)},
        account_id=account_id,
        target=f"account:{account_id}",  # after the household's link job, if it is still running
        max_attempts=current_app.config.get("CLOSE_HOUSEHOLD_MAX_ATTEMPTS", CLOSE_MAX_ATTEMPTS),
    )


def _anonymise(user: User) -> None:
    """The activity log and the key holders keep "a former member" where they named the
    user: as the actor (label and user id), in the summaries and in the details."""
    email = user.email
    db.session.flush()
    rows = db.session.scalars(
        sa.select(ActivityEvent).where(
            sa.or_(
                ActivityEvent.actor_user_id == user.id,
                ActivityEvent.actor_label == email,
                ActivityEvent.summary.contains(email, autoescape=True),
            )
        )
    ).all()
    for row in rows:
        if row.actor_user_id == user.id or row.actor_label == email:
            row.actor_user_id = None
            row.actor_label = FORMER_MEMBER
        row.summary = _without(row.summary, email)
        if row.details and email in str(row.details):
            row.details = {key: _without(value, email) if isinstance(value, str) else value
                           for key, value in row.details.items()}
    db.session.execute(
        sa.update(GatewayKeyHolder).where(GatewayKeyHolder.user_id == user.id).values(email=FORMER_MEMBER)
    )


def _without(text: str, email: str) -> str:
    if email not in text:
        return text
    text = text.replace(email, FORMER_MEMBER)
    return text[:1].upper() + text[1:] if text.startswith(FORMER_MEMBER) else text

