"""API tokens (issue 14): members make, list and revoke their personal access tokens; a
request's bearer secret is turned into the member it acts as; each token's requests are
counted for the rate limit; and the first answer to a POST sent with an Idempotency-Key is
kept for its retries. The one owner of api_tokens and api_idempotent_requests.

A token acts as its member, in its one household, within its scopes. It stops working when
it is revoked, when it expires, when the member leaves or is removed (members.py revokes it
in the same transaction), and for support staff there are none.
"""
import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from portal import crypto
from portal.extensions import db
from portal.models import SCOPES, Account, ApiToken, IdempotentRequest, Membership, User, utcnow
from portal.services import activity, gateways
from portal.services.errors import Conflict, NotFound, ServiceError, ValidationFailed
from portal.services.scope import scoped
from portal.services.visitors import MemberOf

# Secret scanners (GitHub's, gitleaks) find "iotl_" followed by 43 URL-safe characters.
SECRET_PREFIX = "iotl_"
SECRET_BYTES = 32  # 256 bits: a plain SHA-256 of it is as good as a slow hash
IDEMPOTENCY_TTL = timedelta(hours=24)
IDEMPOTENCY_KEY_MAX = 255
SCOPE_WORDS = {
    "read": "See everything of the household",
    "manage": "Change the household: members, gateways, boxes, webhooks",
    "pins": "Add and remove PINs and delivery codes",
    "unlock": "Open boxes",
}


class NotAuthenticated(ServiceError):
    """No usable token: missing, unknown, revoked, expired, or its member is gone."""


# --- tokens, as the settings page shows them ----------------------------------------------

def check_scopes(scopes) -> list[str]:
    chosen = [s for s in SCOPES if s in set(scopes or ())]
    unknown = sorted(set(scopes or ()) - set(SCOPES))
    if unknown:
        raise ValidationFailed(f"Unknown scope: {', '.join(unknown)}. Choose among {', '.join(SCOPES)}.",
                               field="scopes")
    if not chosen:
        raise ValidationFailed("Choose at least one thing this token may do.", field="scopes")
    return chosen


def create_token(membership: Membership, actor: User, *, name: str | None, scopes, expires_at: datetime | None = None,
                 now: datetime | None = None) -> tuple[ApiToken, str]:
    """A new token of `actor` for the household of `membership`; returns it with its
    secret, which is never stored and can't be shown again."""
    now = now or utcnow()
    name = gateways.clean_name(name, what="the token")
    chosen = check_scopes(scopes)
    if expires_at is not None:
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        if expires_at <= now:
            raise ValidationFailed("Choose an expiry date in the future, or none.", field="expires_at")
    secret = SECRET_PREFIX + crypto.new_token(SECRET_BYTES)
    token = ApiToken(account_id=membership.account_id, user_id=actor.id, name=name, scopes=chosen,
                     prefix=secret[:len(SECRET_PREFIX) + 4], secret_hash=crypto.sha256_hex(secret),
                     created_at=now, expires_at=expires_at)
    db.session.add(token)
    activity.record(membership.account_id, kind="api_token.created", actor_user=actor,
                    summary=f"{actor.email} made the API token “{name}” ({', '.join(chosen)}).",
                    details={"name": name, "scopes": chosen})
    db.session.commit()
    return token, secret


def list_tokens(membership: MemberOf) -> list[ApiToken]:
    """The member's own tokens of this household, newest first (revoked ones included)."""
    return list(db.session.scalars(
        scoped(ApiToken, membership.account_id).where(ApiToken.user_id == membership.user_id)
        .order_by(ApiToken.created_at.desc(), ApiToken.id)
    ))


def revoke_token(membership: Membership, actor: User, token_id) -> ApiToken:
    """Revoke one of the member's tokens (another member's behaves as unknown)."""
    try:
        token_uuid = uuid.UUID(str(token_id))
    except ValueError:
        raise NotFound() from None
    token = db.session.scalars(
        scoped(ApiToken, membership.account_id)
        .where(ApiToken.id == token_uuid, ApiToken.user_id == membership.user_id)
    ).first()
    if token is None:
        raise NotFound()
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        activity.record(membership.account_id, kind="api_token.revoked", actor_user=actor,
                        summary=f"{actor.email} revoked the API token “{token.name}”.", details={"name": token.name})
        db.session.commit()
    return token


def revoke_member_tokens(account_id: uuid.UUID, user_id: uuid.UUID) -> int:
    """A member leaves or is removed: their tokens of this household stop working. The
    caller commits with the membership change."""
    result = cast(sa.CursorResult, db.session.execute(
        sa.update(ApiToken)
        .where(ApiToken.account_id == account_id, ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    ))
    return result.rowcount


def status_of(token: ApiToken, now: datetime | None = None) -> str:
    """"active", "expired" or "revoked", for the settings page."""
    now = now or utcnow()
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= now:
        return "expired"
    return "active"


# --- a request's token ------------------------------------------------------------------

@dataclass(frozen=True)
class Caller:
    """Who an API request acts as: the token, its member and their membership."""

    token: ApiToken
    user: User
    membership: Membership
    account: Account

    def has(self, scope: str) -> bool:
        return scope in self.token.scopes


def authenticate(secret: str | None, now: datetime | None = None) -> Caller:
    """The caller behind a bearer secret, or NotAuthenticated saying why (revoked, expired:
    things the holder of the secret knows anyway)."""
    now = now or utcnow()
    if not secret or not secret.startswith(SECRET_PREFIX) or len(secret) > 128:
        raise NotAuthenticated("Send a valid API token: Authorization: Bearer iotl_...")
    row = db.session.execute(
        sa.select(ApiToken, User, Membership)
        .join(User, User.id == ApiToken.user_id)
        .join(Membership, sa.and_(Membership.user_id == ApiToken.user_id,
                                  Membership.account_id == ApiToken.account_id))
        .where(ApiToken.secret_hash == crypto.sha256_hex(secret))
    ).first()
    if row is None:
        raise NotAuthenticated("This API token is unknown, or its member left the household.")
    token, user, membership = row
    if token.revoked_at is not None:
        raise NotAuthenticated("This API token was revoked.")
    if token.expires_at is not None and token.expires_at <= now:
        raise NotAuthenticated("This API token has expired.")
    if user.is_staff or user.is_disabled:
        raise NotAuthenticated("This API token can't be used.")
    account = db.session.get(Account, token.account_id)
    if account is None:
        raise NotAuthenticated("This API token is unknown, or its member left the household.")
    return Caller(token=token, user=user, membership=membership, account=account)


def count_request(token_id: uuid.UUID, address: str | None, limit: int, window_seconds: int,
                  now: datetime | None = None) -> int | None:
    """Note the token's use (when, from where) and count the request in its fixed window, in
    one UPDATE: every process counts on the same row, and two requests at once never both
    take the last place. None while within `limit`, else the seconds until the window ends
    (for Retry-After)."""
    now = now or utcnow()
    epoch = int(now.timestamp())
    window = epoch - epoch % window_seconds
    count = db.session.execute(
        sa.update(ApiToken).where(ApiToken.id == token_id)
        .values(rate_count=sa.case((ApiToken.rate_window == window, ApiToken.rate_count + 1), else_=1),
                rate_window=window, last_used_at=now, last_used_ip=(address or "")[:64])
        .returning(ApiToken.rate_count)
    ).scalar_one()
    db.session.commit()
    if count <= limit:
        return None
    return max(1, window + window_seconds - epoch)


# --- Idempotency-Key ----------------------------------------------------------------------

@dataclass(frozen=True)
class FirstAnswer:
    status_code: int
    body: str
    headers: dict


def request_hash(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), b"\0", path.encode(), b"\0", body):
        digest.update(part)
    return digest.hexdigest()


def check_idempotency_key(key: str) -> str:
    if not key or len(key) > IDEMPOTENCY_KEY_MAX or not key.isascii() or not key.isprintable():
        raise ValidationFailed(f"An Idempotency-Key is 1 to {IDEMPOTENCY_KEY_MAX} printable ASCII characters.",
                               field="Idempotency-Key")
    return key


def begin_idempotent(caller: Caller, key: str, method: str, path: str, body_hash: str,
                     now: datetime | None = None) -> tuple[uuid.UUID | None, FirstAnswer | None]:
    """Claim `key` for this request, or find its first answer.

    Returns (row id, None) when the request is new: the row is flushed, not committed, so the
    service's commit writes it in the same transaction as the change (and a failed request
    leaves no trace). Returns (None, answer) for a retry of a request that was answered.
    Raises ValidationFailed (422) for the same key with another request, Conflict while the
    first request is still being answered."""
    now = now or utcnow()
    key = check_idempotency_key(key)
    db.session.execute(sa.delete(IdempotentRequest).where(
        IdempotentRequest.token_id == caller.token.id, IdempotentRequest.key == key,
        IdempotentRequest.created_at <= now - IDEMPOTENCY_TTL))
    found = db.session.scalars(sa.select(IdempotentRequest).where(
        IdempotentRequest.token_id == caller.token.id, IdempotentRequest.key == key)).first()
    if found is None:
        row = IdempotentRequest(account_id=caller.account.id, token_id=caller.token.id, key=key, method=method,
                                path=path[:512], request_hash=body_hash, created_at=now, response_headers={})
        db.session.add(row)
        try:
            with db.session.begin_nested():
                db.session.flush()
        except IntegrityError:
            # Another request with this key got there first (and committed since).
            db.session.rollback()
            return begin_idempotent(caller, key, method, path, body_hash, now)
        return row.id, None
    if found.request_hash != body_hash:
        raise ValidationFailed("This Idempotency-Key was used for another request; use a new key for a new "
                               "request.", field="Idempotency-Key")
    if found.status_code is None:
        raise Conflict("The first request with this Idempotency-Key is still being answered; try again.")
    return None, FirstAnswer(status_code=found.status_code, body=found.response_body or "",
                             headers=dict(found.response_headers or {}))


def finish_idempotent(row_id: uuid.UUID, answer: FirstAnswer) -> None:
    """Keep the first answer of a request that succeeded. Its row went in with the
    service's commit (or goes in now, when the service had nothing to change)."""
    db.session.commit()
    db.session.execute(sa.update(IdempotentRequest).where(IdempotentRequest.id == row_id)
                       .values(status_code=answer.status_code, response_body=answer.body,
                               response_headers=answer.headers))
    db.session.commit()


def abandon_idempotent(row_id: uuid.UUID) -> None:
    """A refused request changed nothing: its key is free again."""
    db.session.rollback()
    db.session.execute(sa.delete(IdempotentRequest).where(IdempotentRequest.id == row_id,
                                                          IdempotentRequest.status_code.is_(None)))
    db.session.commit()


def prune_idempotent(now: datetime | None = None) -> int:
    """Drop answers older than IDEMPOTENCY_TTL (housekeeping; the caller commits)."""
    now = now or utcnow()
    result = cast(sa.CursorResult, db.session.execute(
        sa.delete(IdempotentRequest).where(IdempotentRequest.created_at <= now - IDEMPOTENCY_TTL)))
    return result.rowcount
