"""Which households an MQTT subscriber holds subscribed: what each shard subscribes to, and
`accounts.mqtt_until`, the one place that says a household is covered (the reader then reads
its boxes at IDLE_POLL_SECONDS_WITH_MQTT instead of IDLE_POLL_SECONDS). The only writer
of `mqtt_until`.

A subscriber vouches for the households whose connection is up and subscribed, for a short
while at a time; one that dies stops vouching, and its households fall back to the reader's
usual intervals when that while runs out.
"""
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from portal import crypto
from portal.extensions import db
from portal.models import LINK_CONNECTED, Account, Gateway, Mailbox, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HouseholdChannels:
    account_id: uuid.UUID
    thing_id: str  # the household's portal thing: connected to every channel below
    thing_key: str
    channel_ids: frozenset[str]


def shard_of(account_id: uuid.UUID, shards: int) -> int:
    """The subscriber shard of a household: its id modulo the number of shards (ids are
    random, so shards come out even; one household is always in one process, in order)."""
    return account_id.int % max(shards, 1)


def households_of_shard(shard: int, shards: int, keys: dict) -> list[HouseholdChannels]:
    """The linked households of this shard with their device channels. Column reads only;
    `keys` caches decrypted thing keys by (account, ciphertext) between calls, so a rescan
    every few seconds decrypts only what changed."""
    accounts = db.session.execute(
        sa.select(Account.id, Account.portal_thing_id, Account.portal_thing_key_enc)
        .where(Account.link_state == LINK_CONNECTED, Account.portal_thing_id.is_not(None),
               Account.portal_thing_key_enc.is_not(None))
    ).all()
    mine = {row.id: row for row in accounts if shard_of(row.id, shards) == shard}
    if not mine:
        return []
    channels: dict[uuid.UUID, set[str]] = {}
    gateway_channels = sa.select(Gateway.account_id, Gateway.channel_id).where(
        Gateway.channel_id.is_not(None), Gateway.thing_id.is_not(None))
    box_channels = (
        sa.select(Mailbox.account_id, Mailbox.channel_id)
        .join(Gateway, Gateway.id == Mailbox.gateway_id)
        .where(Mailbox.channel_id.is_not(None), Gateway.thing_id.is_not(None))
    )
    for statement in (gateway_channels, box_channels):
        for account_id, channel_id in db.session.execute(statement):
            if account_id in mine and channel_id:
                channels.setdefault(account_id, set()).add(channel_id)
    found = []
    for account_id, channel_ids in channels.items():
        row = mine[account_id]
        cache_key = (account_id, bytes(row.portal_thing_key_enc))
        if cache_key not in keys:
            try:
                keys[cache_key] = crypto.decrypt(row.portal_thing_key_enc, table="accounts",
                                                 column="portal_thing_key_enc", row_id=account_id)
            except crypto.DecryptionError:
                log.error("household %s: its portal thing key does not decrypt", account_id)
                keys[cache_key] = None
        if keys[cache_key]:
            found.append(HouseholdChannels(account_id, row.portal_thing_id, keys[cache_key],
                                           frozenset(channel_ids)))
    return found


def vouch(account_ids, seconds: float, now: datetime | None = None) -> None:
    """These households are subscribed now; count them covered for `seconds` (commits)."""
    ids = list(account_ids)
    if ids:
        until = (now or utcnow()) + timedelta(seconds=seconds)
        db.session.execute(sa.update(Account).where(Account.id.in_(ids)).values(mqtt_until=until)
                           .execution_options(synchronize_session=False))
    db.session.commit()


def withdraw(account_ids) -> None:
    """These households are no longer subscribed (a lost connection, a stopping subscriber):
    the reader's usual intervals apply again at once (commits)."""
    ids = list(account_ids)
    if ids:
        db.session.execute(sa.update(Account).where(Account.id.in_(ids)).values(mqtt_until=None)
                           .execution_options(synchronize_session=False))
    db.session.commit()
