"""The one-time offer of a private key IoTLock generated (a gateway's or a box's).

The key is never stored: it stays in the member's session cookie, encrypted under the offer's
id. What is stored is that the offer is open, for that login session; the first download
deletes it (conditional DELETE, in the download's own transaction), so a replayed copy of
the cookie from before the download, or a second download racing the first, gets nothing.
"""
import uuid
from typing import cast

import sqlalchemy as sa

from portal.extensions import db
from portal.models import KeyOffer, LoginSession


def open_offer(login_session: LoginSession, kind: str, device_id) -> uuid.UUID:
    """A new open offer for this device in this login session (replacing an older one)."""
    db.session.execute(
        sa.delete(KeyOffer).where(
            KeyOffer.login_session_id == login_session.id,
            KeyOffer.device_kind == kind,
            KeyOffer.device_id == device_id,
        )
    )
    offer = KeyOffer(login_session_id=login_session.id, device_kind=kind, device_id=device_id)
    db.session.add(offer)
    db.session.commit()
    return offer.id


def is_open(login_session: LoginSession | None, offer_id: uuid.UUID | None) -> bool:
    if login_session is None or offer_id is None:
        return False
    return db.session.scalar(
        sa.select(sa.func.count()).select_from(KeyOffer).where(
            KeyOffer.id == offer_id, KeyOffer.login_session_id == login_session.id
        )
    ) == 1


def take(login_session: LoginSession | None, offer_id: uuid.UUID | None) -> bool:
    """Close the offer; True for the one caller that closed it. Not committed: the caller's
    commit (with its activity record) makes it final, its rollback leaves the offer open."""
    if login_session is None or offer_id is None:
        return False
    # An UPDATE's or DELETE's result is a CursorResult (it has rowcount).
    result = cast(
        sa.CursorResult,
        db.session.execute(
            sa.delete(KeyOffer).where(KeyOffer.id == offer_id, KeyOffer.login_session_id == login_session.id)
        ),
    )
    return result.rowcount == 1

