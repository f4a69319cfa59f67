"""The API (issue 14): members' personal access tokens, and the first answer to each
POST sent with an Idempotency-Key. portal/services/api_tokens.py owns both."""
import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from portal.models.base import Base, new_id, utcnow

SCOPES = ("read", "manage", "pins", "unlock")


class ApiToken(Base):
    """A member's token for one household: it acts as that member, within its scopes. Only
    the SHA-256 of its secret is kept (the secret has 256 random bits, so a plain hash is
    enough); `prefix` is the secret's first characters, to tell tokens apart."""

    __tablename__ = "api_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(80))
    scopes: Mapped[list] = mapped_column(sa.JSON, default=list)
    prefix: Mapped[str] = mapped_column(sa.String(16))
    secret_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    last_used_ip: Mapped[str | None] = mapped_column(sa.String(64))
    revoked_at: Mapped[datetime | None]
    # Rate limit: a fixed window (unix seconds of its start) and the requests counted in it,
    # kept on the row so every web process counts together.
    rate_window: Mapped[int | None] = mapped_column(sa.BigInteger)
    rate_count: Mapped[int] = mapped_column(default=0)


class IdempotentRequest(Base):
    """A POST sent with an Idempotency-Key by a token, and the answer it got. Written in
    the same transaction as the change (answer still empty), then the answer is kept, so a
    retry with the same key and body gets the first answer and changes nothing."""

    __tablename__ = "api_idempotent_requests"
    __table_args__ = (sa.UniqueConstraint("token_id", "key", name="uq_api_idempotent_requests_token_key"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    token_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("api_tokens.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(sa.String(255))
    method: Mapped[str] = mapped_column(sa.String(8))
    path: Mapped[str] = mapped_column(sa.String(512))
    request_hash: Mapped[str] = mapped_column(sa.String(64))
    status_code: Mapped[int | None]
    response_body: Mapped[str | None] = mapped_column(sa.Text)
    response_headers: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
