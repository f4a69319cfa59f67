"""Users, households (Account in code), memberships, invites, login sessions and throttles."""
import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.models.base import Base, new_id, substring_index, utcnow

ROLE_OWNER = "owner"
ROLE_MEMBER = "member"

LINK_CONNECTING = "connecting"
LINK_CONNECTED = "connected"
LINK_PROBLEM = "problem"


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    password_hash: Mapped[str | None] = mapped_column(sa.String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    password_changed_at: Mapped[datetime | None]
    is_staff: Mapped[bool] = mapped_column(default=False)
    is_disabled: Mapped[bool] = mapped_column(default=False)
    display_name: Mapped[str | None] = mapped_column(sa.String(80))
    # Staff second factor: TOTP secret encrypted at rest (portal/crypto.py).
    totp_secret_enc: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    totp_enrolled_at: Mapped[datetime | None]
    totp_last_counter: Mapped[int | None] = mapped_column(sa.BigInteger)
    # Staff set their password through a one-time link from `flask staff create`; only the
    # SHA-256 of its token is kept, and it stops working at the expiry or once used.
    password_set_token_hash: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    password_set_expires_at: Mapped[datetime | None]

    memberships: Mapped[list["Membership"]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )

    # flask-login protocol; get_id() is the server-side session token, set by portal.auth.
    is_anonymous = False
    # Not a column: the token of the session this object was loaded for ("" until then).
    _session_token: str = ""

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return not self.is_disabled

    def get_id(self) -> str:
        return self._session_token

    def __repr__(self) -> str:
        return f"<User {self.email}>"


class Account(Base):
    """A household: the seed's "account", several users with equal control of devices."""

    __tablename__ = "accounts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(sa.String(80))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    # The household's link to StreamIoT (DEVICE_PROTOCOL.md, "What exists in StreamIoT").
    link_state: Mapped[str] = mapped_column(sa.String(16), default=LINK_CONNECTING)
    link_error: Mapped[str | None] = mapped_column(sa.Text)
    link_updated_at: Mapped[datetime | None]
    # When the link job tries again after a problem (None: not retrying).
    link_retry_at: Mapped[datetime | None]
    streamiot_email: Mapped[str | None] = mapped_column(sa.String(254))
    streamiot_user_id: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    streamiot_password_enc: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    streamiot_token_enc: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    portal_thing_id: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    portal_thing_key_enc: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    # The household's X25519 key pair for its sealed gateways: the public half goes into
    # their settings files; with it each gateway and the portal derive the keys that
    # authenticate their messages (portal/crypto.py link_key).
    link_public_key: Mapped[str | None] = mapped_column(sa.String(44))
    link_private_key_enc: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    # A member had a page of the household open until about then: its boxes are read at
    # the fast interval (portal/services/presence.py).
    watched_until: Mapped[datetime | None]
    # An MQTT subscriber holds the household's channels subscribed until about then: its
    # boxes are read at the slow IDLE_POLL_SECONDS_WITH_MQTT (portal/services/mqtt_coverage.py).
    mqtt_until: Mapped[datetime | None]
    # The IANA time zone every PIN rule is written and shown in (set at registration from
    # the browser, editable in the household's settings).
    time_zone: Mapped[str] = mapped_column(sa.String(64), default="UTC", server_default="UTC")

    memberships: Mapped[list["Membership"]] = relationship(
        back_populates="account", cascade="all, delete-orphan"
    )


# The support search finds households by a part of a member's email or of their name.
substring_index("ix_users_email_trgm", User.email)
substring_index("ix_accounts_name_trgm", Account.name)


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (sa.UniqueConstraint("account_id", "user_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(sa.String(16), default=ROLE_MEMBER)
    # Alerts: quiet hours in the household's zone ("22:00"-"07:00"), None when off. Every
    # alert but duress waits until they end.
    quiet_from: Mapped[str | None] = mapped_column(sa.String(5))
    quiet_until: Mapped[str | None] = mapped_column(sa.String(5))
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)

    account: Mapped[Account] = relationship(back_populates="memberships")
    user: Mapped[User] = relationship(back_populates="memberships")

    @property
    def is_owner(self) -> bool:
        return self.role == ROLE_OWNER


class Invite(Base):
    __tablename__ = "invites"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(sa.String(254))
    # SHA-256 of the 256-bit token; the token itself exists only in the link.
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    invited_by_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    accepted_at: Mapped[datetime | None]
    accepted_by_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    revoked_at: Mapped[datetime | None]

    account: Mapped[Account] = relationship()
    invited_by: Mapped[User | None] = relationship(foreign_keys=[invited_by_id])


class LoginSession(Base):
    """Server side of a login: the cookie carries only a random token whose hash is here,
    so logout, password change or removal from a household can refuse a replayed cookie."""

    __tablename__ = "login_sessions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    reauthenticated_at: Mapped[datetime | None]
    second_factor_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    current_account_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("accounts.id", ondelete="SET NULL")
    )
    user_agent: Mapped[str | None] = mapped_column(sa.String(255))
    remote_addr: Mapped[str | None] = mapped_column(sa.String(64))

    user: Mapped[User] = relationship()


class LoginThrottle(Base):
    """Attempt counters per account ("email:<addr>"), per client ("ip:<addr>"), per staff
    second factor and of sign-ups per client (portal/services/throttle.py)."""

    __tablename__ = "login_throttles"

    key: Mapped[str] = mapped_column(sa.String(300), primary_key=True)
    # Attempts of the window that count (failed logins, sign-ups made) plus those still being checked.
    failures: Mapped[int] = mapped_column(default=0)
    window_started_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None]


class RecoveryCode(Base):
    """A staff member's one-time recovery code, stored as a hash only."""

    __tablename__ = "recovery_codes"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(sa.String(64))
    used_at: Mapped[datetime | None]


class PasswordReset(Base):
    """A "forgot your password" link: only the SHA-256 of its 256-bit token is kept; it
    works once (used_at) and until expires_at (portal/services/password_reset.py). A request
    for an address without an account writes a row without a user, which no link matches:
    both answers do the same work."""

    __tablename__ = "password_resets"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
