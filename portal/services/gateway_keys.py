"""A gateway's keys: who downloaded them, and replacing them when someone who had them left.

The settings file holds the gateway's StreamIoT thing key; whoever downloads it is recorded
here as a key holder (first and last download). When a key holder leaves the household or
is removed from it, the owners are told, and "Replace keys" makes the gateway a new thing:

    new_thing -> connect -> [rekey_sent -> rekey_confirmed: sealed gateways only]
              -> switch -> old_deleted

run by the job portal/jobs/handlers/keys.py, each step recorded in `key_progress` and
committed as soon as it is done, so a retry resumes after it. StreamIoT 0.13.0 forgets a
key only when its thing is deleted (PATCH /things/{id}/key leaves the old key cached), so
the old thing is deleted last, once the gateway row points at the new one.

This module is the one writer of `Gateway.key_state` (KeyState), every write a
compare-and-set like portal/services/deliveries.py (tests/unit/test_state_owner.py checks).
"""
import enum
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import sqlalchemy as sa

from portal import crypto
from portal.extensions import db
from portal.models import PROTOCOL_SEALED, Gateway, GatewayKeyHolder, LoginSession, Membership, User, utcnow
from portal.services import activity, deliveries, device_link
from portal.services.deliveries import DeviceState
from portal.services.errors import Conflict, Forbidden
from portal.services.reauth import require_recent_password
from portal.services.rows import read
from portal.services.scope import get_scoped


class KeyState(enum.StrEnum):
    CURRENT = "current"  # nothing to do: the gateway's keys are the ones in its row
    REPLACING = "replacing"  # the job is running (or waiting to try again)
    FAILED = "failed"  # the job gave up; "Try again" resumes from the step it stopped at


K = KeyState
KEY_TRANSITIONS: dict[KeyState, frozenset[KeyState]] = {
    K.CURRENT: frozenset({K.REPLACING}),
    # replacing -> replacing: the switch to the new thing, a step inside the replacement
    K.REPLACING: frozenset({K.REPLACING, K.CURRENT, K.FAILED}),
    K.FAILED: frozenset({K.REPLACING}),
}

JOB_REPLACE_KEYS = "device.replace_gateway_keys"

# Protocol levels (the sealed level tells the gateway its new keys itself, step c).
SEED = "seed"
SEALED = "sealed"
SKIPPED = "skipped"  # a step value: not needed for this gateway

# The steps in order, with their words on the gateway page.
KEY_STEPS = [
    ("new_thing", "Make new device keys for the gateway"),
    ("connect", "Give the new keys access to the gateway’s boxes"),
    ("rekey_sent", "Send the new keys to the gateway, sealed"),
    ("rekey_confirmed", "Gateway answers with its new keys"),
    ("switch", "Switch IoTLock to the new keys"),
    ("old_deleted", "Cancel the old keys"),
]

# Steps only the sealed level has; a seed gateway's owner loads new settings instead.
SEALED_STEPS = ("rekey_sent", "rekey_confirmed")


class IllegalKeyTransition(RuntimeError):
    """A transition the table does not allow: a bug in the caller, never a race."""


def _key_cas(gateway_id, expected: Iterable[KeyState], new: KeyState, *conditions, **values) -> bool:
    expected = list(expected)
    for state in expected:
        if new not in KEY_TRANSITIONS[state]:
            raise IllegalKeyTransition(f"{state} -> {new} is not a transition")
    # An UPDATE's result is a CursorResult (it has rowcount); Session.execute is typed as returning a Result.
    result = cast(
        sa.CursorResult,
        db.session.execute(
            sa.update(Gateway)
            .where(Gateway.id == gateway_id, Gateway.key_state.in_(expected), *conditions)
            .values(key_state=new, **values)
            .execution_options(synchronize_session="fetch")
        ),
    )
    return result.rowcount == 1


def protocol_level(gateway: Gateway) -> str:
    """A sealed gateway is sent its new keys (steps rekey_sent and rekey_confirmed); a seed
    gateway's owner loads new settings by hand."""
    return SEALED if gateway.protocol == PROTOCOL_SEALED else SEED


def rekey_counter(gateway: Gateway) -> int:
    """The counter the REKEY command is authenticated with: taken once per replacement and
    kept in its progress, so a repeated publish is the same command to the gateway. Commits."""
    counter = (gateway.key_progress or {}).get("rekey_counter")
    if not isinstance(counter, int):
        counter = device_link.next_command_counter(Gateway, gateway.id)
        step_done(gateway, "rekey_counter", counter)
    return counter


def require_owner(membership: Membership | None, message: str) -> None:
    if membership is None or not membership.is_owner:
        raise Forbidden(message)


# --- key holders ------------------------------------------------------------------------

def record_download(gateway: Gateway, user: User, now: datetime | None = None) -> None:
    """`user` now holds the gateway's keys (the caller commits with the download's log entry)."""
    now = now or utcnow()
    holder = db.session.scalars(
        sa.select(GatewayKeyHolder).where(GatewayKeyHolder.gateway_id == gateway.id,
                                          GatewayKeyHolder.user_id == user.id)
    ).first()
    if holder is None:
        db.session.add(GatewayKeyHolder(account_id=gateway.account_id, gateway_id=gateway.id, user_id=user.id,
                                        email=user.email, first_downloaded_at=now, last_downloaded_at=now))
    else:
        holder.last_downloaded_at = now
        holder.email = user.email
        holder.departed_at = None  # back in the household and downloading again


def member_departed(account_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """The user left the household or was removed: the keys they downloaded are now held
    by someone outside it (the caller commits with the membership change)."""
    db.session.execute(
        sa.update(GatewayKeyHolder)
        .where(GatewayKeyHolder.account_id == account_id, GatewayKeyHolder.user_id == user_id,
               GatewayKeyHolder.departed_at.is_(None))
        .values(departed_at=utcnow())
        .execution_options(synchronize_session=False)
    )


_DEPARTED = (
    sa.select(GatewayKeyHolder.gateway_id, GatewayKeyHolder.email)
    .where(GatewayKeyHolder.account_id == sa.bindparam("account_id"), GatewayKeyHolder.departed_at.is_not(None))
    .order_by(GatewayKeyHolder.departed_at, GatewayKeyHolder.email)
)
# Built once, for the dashboard (every gateway) and a gateway page (one).
_DEPARTED_FROM = {False: _DEPARTED, True: _DEPARTED.where(GatewayKeyHolder.gateway_id == sa.bindparam("gateway_id"))}


def departed_holders(account_id: uuid.UUID, gateway_id: uuid.UUID | None = None) -> dict[uuid.UUID, list[str]]:
    """Emails of former members who had each gateway's keys, by gateway: one query."""
    found: dict[uuid.UUID, list[str]] = {}
    for gid, email in read(_DEPARTED_FROM[gateway_id is not None],
                                {"account_id": account_id, "gateway_id": gateway_id}).all():
        found.setdefault(gid, []).append(email)
    return found


# --- replacing the keys: the owner's side -----------------------------------------------------

def can_replace(gateway: Gateway) -> bool:
    """Set up in StreamIoT (there are keys to replace) and not being removed."""
    return bool(
        gateway.status != DeviceState.REMOVING
        and gateway.thing_id and gateway.thing_key_enc and gateway.channel_id
        and (gateway.progress or {}).get("connect")
    )


def start_replacement(membership: Membership | None, actor: User, login_session: LoginSession | None,
                      gateway_id, password: str | None) -> Gateway:
    """An owner replaces the gateway's keys (after a password check): queue the job. A
    replacement that failed goes again from the step it stopped at."""
    require_owner(membership, "Only owners can replace a gateway’s keys.")
    assert membership is not None
    gateway = get_scoped(Gateway, membership.account_id, gateway_id)
    require_recent_password(login_session, actor, password)
    if not can_replace(gateway):
        raise Conflict("The gateway’s keys can be replaced once it is set up, and not while it is being removed.")
    if gateway.key_state == KeyState.REPLACING:
        raise Conflict("The keys are being replaced already.")
    resuming = gateway.key_state == KeyState.FAILED
    values: dict = {"key_error": None}
    if not resuming:
        values["key_progress"] = {"attempt": uuid.uuid4().hex[:12]}
    if not _key_cas(gateway.id, [K.CURRENT, K.FAILED], K.REPLACING, **values):
        db.session.rollback()
        raise Conflict("The keys are being replaced already.")
    deliveries.enqueue_device_job(JOB_REPLACE_KEYS, {"gateway_id": str(gateway.id)},
                                  account_id=gateway.account_id, gateway_id=gateway.id)
    activity.record(
        gateway.account_id,
        kind="gateway.keys_replacing",
        summary=(f"Trying again to replace the keys of gateway “{gateway.name}”" if resuming
                 else f"Started replacing the keys of gateway “{gateway.name}”"),
        actor_user=actor,
        gateway_id=gateway.id,
    )
    db.session.commit()
    return gateway


# --- replacing the keys: the job's side (portal/jobs/handlers/keys.py) ------------------------

def step_done(gateway: Gateway, step: str, value: object = True) -> None:
    """Record one finished step and commit it, so a retry starts after it."""
    gateway.key_progress = {**(gateway.key_progress or {}), step: value}
    db.session.commit()


def new_thing_name(gateway: Gateway) -> str:
    """The replacement's StreamIoT name, unique per replacement, so a retry finds the thing
    an interrupted attempt created instead of making another."""
    attempt = (gateway.key_progress or {}).get("attempt") or "0"
    return f"{gateway.thing_name}-keys-{attempt}"


def keep_new_thing(gateway: Gateway, thing_id: str, key: str) -> None:
    """Store the new thing and its key (encrypted) before anything is connected to it."""
    gateway.new_thing_id = thing_id
    gateway.new_thing_key_enc = crypto.encrypt(key, table="gateways", column="new_thing_key_enc",
                                               row_id=gateway.id)
    step_done(gateway, "new_thing")


def new_thing_key(gateway: Gateway) -> str:
    assert gateway.new_thing_key_enc is not None, "keep_new_thing stored it"
    return crypto.decrypt(gateway.new_thing_key_enc, table="gateways", column="new_thing_key_enc",
                          row_id=gateway.id)


def switch_to_new_thing(gateway: Gateway) -> bool:
    """The gateway row now names the new thing and key; the old thing is kept in
    old_thing_id until it is deleted. False when another worker switched it already."""
    assert gateway.new_thing_id and gateway.thing_id, "the new thing was made and connected first"
    key = new_thing_key(gateway)
    won = _key_cas(
        gateway.id, [K.REPLACING], K.REPLACING, Gateway.new_thing_id == gateway.new_thing_id,
        Gateway.thing_id == gateway.thing_id,
        old_thing_id=gateway.thing_id,
        thing_id=gateway.new_thing_id,
        thing_key_enc=crypto.encrypt(key, table="gateways", column="thing_key_enc", row_id=gateway.id),
        new_thing_id=None,
        new_thing_key_enc=None,
        keys_replaced_at=utcnow(),
        key_progress={**(gateway.key_progress or {}), "switch": True},
    )
    db.session.commit()
    return won


def finish_replacement(gateway: Gateway) -> bool:
    """The old thing is deleted: its key is dead. Whoever downloaded it no longer holds the
    gateway's keys (downloads since the switch are of the new ones, and stay)."""
    won = _key_cas(gateway.id, [K.REPLACING], K.CURRENT, old_thing_id=None, key_error=None,
                   key_progress={**(gateway.key_progress or {}), "old_deleted": True})
    if won:
        db.session.execute(
            sa.delete(GatewayKeyHolder).where(
                GatewayKeyHolder.gateway_id == gateway.id,
                GatewayKeyHolder.last_downloaded_at <= (gateway.keys_replaced_at or utcnow()),
            )
        )
        activity.record(
            gateway.account_id,
            kind="gateway.keys_replaced",
            summary=f"Replaced the keys of gateway “{gateway.name}”; the old keys no longer work",
            actor_kind="system",
            actor_label="IoTLock",
            gateway_id=gateway.id,
        )
    db.session.commit()
    return won


def note_retry(gateway_id, reason: str) -> None:
    db.session.execute(
        sa.update(Gateway).where(Gateway.id == gateway_id, Gateway.key_state == K.REPLACING)
        .values(key_error=f"Trying again: {reason}").execution_options(synchronize_session="fetch")
    )


def replacement_failed(gateway_id, reason: str) -> bool:
    if not _key_cas(gateway_id, [K.REPLACING], K.FAILED, key_error=reason):
        return False
    gateway = db.session.get(Gateway, gateway_id)
    if gateway is not None:
        activity.record(
            gateway.account_id,
            kind="delivery.failed",
            summary=f"Replacing the keys of gateway “{gateway.name}” stopped: {reason}",
            actor_kind="system",
            actor_label="IoTLock",
            gateway_id=gateway.id,
        )
    return True


# --- what the gateway page shows ---------------------------------------------------------------

@dataclass
class KeyStep:
    label: str
    state: str  # done | current | todo | failed | skipped


def key_steps(gateway: Gateway) -> list[KeyStep]:
    done = gateway.key_progress or {}
    seed = protocol_level(gateway) == SEED
    steps, current_found = [], False
    for key, label in KEY_STEPS:
        value = SKIPPED if seed and key in SEALED_STEPS else done.get(key)
        if value == SKIPPED:
            steps.append(KeyStep(label, "skipped"))
        elif value:
            steps.append(KeyStep(label, "done"))
        elif not current_found and gateway.key_state != KeyState.CURRENT:
            current_found = True
            steps.append(KeyStep(label, "failed" if gateway.key_state == KeyState.FAILED else "current"))
        else:
            steps.append(KeyStep(label, "todo"))
    return steps


def needs_new_settings(gateway: Gateway) -> bool:
    """Keys replaced and the gateway not heard since: it must be loaded with new settings
    (a seed gateway cannot learn its new keys any other way)."""
    return bool(
        protocol_level(gateway) == SEED  # a sealed gateway was sent its new keys and answered
        and gateway.keys_replaced_at is not None
        and gateway.key_state != KeyState.REPLACING
        and (gateway.last_heartbeat_at is None or gateway.last_heartbeat_at < gateway.keys_replaced_at)
    )
