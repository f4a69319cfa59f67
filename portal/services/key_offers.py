"""The private key IoTLock made for a device (a gateway's or a box's), offered to the member
who made it until they download it once or discard it.

Kept server-side, encrypted bound to the offer's row, its device and its member (moved to
another row, device or member it does not decrypt), so it survives logging out and in and
no other member sees it. The first download deletes the row with a conditional DELETE in
the download's own transaction: of two downloads racing, one gets the key. A new key pair
for a device replaces every offer of the older one; removing the device drops them.
"""
import uuid
from typing import cast

import sqlalchemy as sa

from portal import crypto
from portal.extensions import db
from portal.models import KeyOffer, User
from portal.models.base import new_id

GATEWAY = "gateway"
MAILBOX = "mailbox"


def _aad(offer_id, kind: str, device_id, user_id) -> dict:
    return {"table": "key_offers", "column": "private_key_enc", "row_id": f"{offer_id}:{kind}:{device_id}:{user_id}"}


def _of(user_id, kind: str, device_id) -> sa.ColumnElement[bool]:
    return sa.and_(KeyOffer.user_id == user_id, KeyOffer.device_kind == kind, KeyOffer.device_id == device_id)


def offer(member: User, kind: str, device_id: uuid.UUID, private_key: str) -> None:
    """Offer a new private key of the device to the member who made it. Not committed:
    part of the caller's transaction (the device's new public key with it)."""
    db.session.execute(sa.delete(KeyOffer).where(KeyOffer.device_kind == kind, KeyOffer.device_id == device_id))
    offer_id = new_id()
    db.session.add(KeyOffer(
        id=offer_id, user_id=member.id, device_kind=kind, device_id=device_id,
        private_key_enc=crypto.encrypt(private_key, **_aad(offer_id, kind, device_id, member.id)),
    ))


def is_offered(user_id, kind: str, device_id) -> bool:
    return db.session.scalar(sa.select(sa.func.count()).select_from(KeyOffer).where(_of(user_id, kind, device_id))) == 1


def take(user_id, kind: str, device_id, public_key: str) -> str | None:
    """The private key, for the one caller whose DELETE removed the offer (None for any
    other, or when the key is not of the device's current public key). Not committed: the
    caller's commit (with its activity record) makes it final, its rollback keeps the offer."""
    row = db.session.execute(
        sa.select(KeyOffer.id, KeyOffer.private_key_enc).where(_of(user_id, kind, device_id))
    ).first()
    if row is None:
        return None
    # An UPDATE's or DELETE's result is a CursorResult (it has rowcount).
    deleted = cast(sa.CursorResult, db.session.execute(sa.delete(KeyOffer).where(KeyOffer.id == row.id)))
    if deleted.rowcount != 1:
        return None
    try:
        private_key = crypto.decrypt(row.private_key_enc, **_aad(row.id, kind, device_id, user_id))
    except crypto.DecryptionError:
        return None
    return private_key if crypto.public_from_private(private_key) == public_key else None


def discard(user_id, kind: str, device_id) -> bool:
    """The member does not want it (committed): True if there was one."""
    deleted = cast(sa.CursorResult, db.session.execute(sa.delete(KeyOffer).where(_of(user_id, kind, device_id))))
    db.session.commit()
    return deleted.rowcount == 1


def forget_devices(kind: str, device_ids) -> None:
    """The devices are being removed: their keys are of no use any more. Not committed."""
    ids = list(device_ids)
    if ids:
        db.session.execute(sa.delete(KeyOffer).where(KeyOffer.device_kind == kind, KeyOffer.device_id.in_(ids)))
