"""The link between a household and its sealed gateways (docs/device-protocol.md, "The
sealed level"): the household's X25519 key pair, and the keys that authenticate what goes
each way.

The private half of the household key is stored encrypted like the other secrets; its
public half goes into the settings file of every sealed gateway. A gateway and the
portal each derive the same two HMAC keys from their own private key and the other's
public key (portal/crypto.py link_key): "command" for what the portal sends, "report" for
what the gateway sends. A gateway's thing key lets anyone read and publish on its
channels; without the gateway's private key nobody can forge what either end accepts.
"""
import uuid

import sqlalchemy as sa

from portal import crypto
from portal.extensions import db
from portal.models import PROTOCOL_SEALED, Account, Gateway, Mailbox

COMMAND = "command"
REPORT = "report"


def household_public_key(account_id: uuid.UUID) -> str:
    """The household's link public key, made on first use (once: a compare-and-set, so two
    gateways added at once share one pair). The caller commits."""
    current = db.session.scalar(sa.select(Account.link_public_key).where(Account.id == account_id))
    if current:
        return current
    public, private = crypto.generate_keypair()
    sealed_private = crypto.encrypt(private, table="accounts", column="link_private_key_enc", row_id=account_id)
    db.session.execute(
        sa.update(Account)
        .where(Account.id == account_id, Account.link_public_key.is_(None))
        .values(link_public_key=public, link_private_key_enc=sealed_private)
        .execution_options(synchronize_session="fetch")
    )
    made = db.session.scalar(sa.select(Account.link_public_key).where(Account.id == account_id))
    assert made, "the household row exists"
    return made


def link_key(account: Account, gateway: Gateway, direction: str) -> bytes | None:
    """The HMAC key of one direction of a sealed gateway's link; None for a seed gateway or
    while the household has no link key (then nothing of it is sealed yet)."""
    if gateway.protocol != PROTOCOL_SEALED or not account.link_private_key_enc:
        return None
    private = crypto.decrypt(account.link_private_key_enc, table="accounts", column="link_private_key_enc",
                             row_id=account.id)
    return crypto.link_key(private, gateway.public_key, direction)


def next_command_counter(model: type[Gateway] | type[Mailbox], device_id) -> int:
    """The next command counter of a channel: a gateway's own, or a box's (the caller
    commits it before the command that uses it goes out)."""
    return db.session.execute(
        sa.update(model).where(model.id == device_id)
        .values(command_counter=model.command_counter + 1).returning(model.command_counter)
    ).scalar_one()
