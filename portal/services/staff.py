"""Support staff accounts: created from the command line, a password set through a one-time
link, and a TOTP second factor with one-time recovery codes."""
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import cast

import pyotp
import sqlalchemy as sa
from flask import current_app

from portal import crypto
from portal.extensions import db
from portal.models import LoginSession, RecoveryCode, User, utcnow
from portal.services import throttle
from portal.services.accounts import check_email, check_password, find_user_by_email, normalize_email
from portal.services.errors import Conflict, NotFound, ValidationFailed
from portal.services.text import refuse_controls
from portal.services.visitors import SessionFacts

PASSWORD_LINK_TTL = timedelta(hours=24)
RECOVERY_CODE_COUNT = 10
# 12 symbols from 31 unambiguous ones: about 59 bits, typed as xxxx-xxxx-xxxx.
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
_RECOVERY_LENGTH = 12
TOTP_ISSUER = "IoTLock Support"
# Wrong codes allowed per staff member before the second factor locks for the login
# throttle's window: six digits are guessable only with many tries.
MAX_CODE_FAILURES = 5


# --- accounts, from the command line ---------------------------------------------------

def create_staff(email: str, name: str | None = None) -> tuple[User, str]:
    """A new staff user without a password; returns it and the set-password token."""
    email = check_email(email)
    refuse_controls(name, "name")
    if find_user_by_email(email) is not None:
        raise Conflict(
            f"An account with {email} already exists. Staff accounts are separate from "
            "household accounts; use another address (or `staff reset` for existing staff)."
        )
    user = User(
        email=email,
        is_staff=True,
        display_name=(name or email.split("@", 1)[0]).strip()[:80],
    )
    db.session.add(user)
    token = _issue_password_link(user)
    db.session.commit()
    return user, token


def reset_staff(email: str) -> tuple[User, str]:
    """A fresh start for a staff member who lost their phone and recovery codes: enabled
    again, no password, no second factor, every session ended; returns a new link token."""
    user = _staff_by_email(email)
    user.password_hash = None
    user.is_disabled = False
    _forget_second_factor(user)
    _revoke_sessions(user)
    token = _issue_password_link(user)
    db.session.commit()
    return user, token


def disable_staff(email: str) -> User:
    """Disable a staff account and end every session it has, at once."""
    user = _staff_by_email(email)
    user.is_disabled = True
    user.password_set_token_hash = None
    user.password_set_expires_at = None
    _revoke_sessions(user)
    db.session.commit()
    return user


def _staff_by_email(email: str) -> User:
    user = find_user_by_email(email)
    if user is None or not user.is_staff:
        raise NotFound(f"No staff account with the email {normalize_email(email)}.")
    return user


def _issue_password_link(user: User) -> str:
    token = crypto.new_token(32)  # 256 bits; only its hash is stored
    user.password_set_token_hash = crypto.sha256_hex(token)
    user.password_set_expires_at = utcnow() + password_link_ttl()
    return token


def password_link_ttl() -> timedelta:
    return current_app.config.get("STAFF_PASSWORD_LINK_TTL", PASSWORD_LINK_TTL)


def _revoke_sessions(user: User) -> None:
    db.session.execute(
        sa.update(LoginSession)
        .where(LoginSession.user_id == user.id, LoginSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def _forget_second_factor(user: User) -> None:
    user.totp_secret_enc = None
    user.totp_enrolled_at = None
    user.totp_last_counter = None
    db.session.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user.id))


# --- the set-password link --------------------------------------------------------------

def user_for_password_link(token: str) -> User:
    """The staff user a set-password link belongs to, or NotFound when it is unknown,
    used or expired (the three look the same from outside)."""
    if not token or len(token) > 200:
        raise NotFound("This link is not valid.")
    user = db.session.scalars(
        sa.select(User).where(User.password_set_token_hash == crypto.sha256_hex(token))
    ).first()
    if (
        user is None
        or not user.is_staff
        or user.is_disabled
        or user.password_set_expires_at is None
        or user.password_set_expires_at < utcnow()
    ):
        raise NotFound("This link is not valid.")
    return user


def set_password_from_link(token: str, password: str) -> User:
    user = user_for_password_link(token)
    check_password(password, email=user.email, field="password")
    user.password_hash = crypto.hash_password(password)
    user.password_changed_at = utcnow()
    user.password_set_token_hash = None
    user.password_set_expires_at = None
    _revoke_sessions(user)
    db.session.commit()
    return user


# --- second factor ----------------------------------------------------------------------

@dataclass
class Enrolment:
    secret: str
    uri: str


def needs_enrolment(user: User) -> bool:
    return user.totp_enrolled_at is None


def second_factor_done(login_session: SessionFacts | None) -> bool:
    return login_session is not None and login_session.second_factor_at is not None


def begin_enrolment(user: User) -> Enrolment:
    """The secret to scan. It stays the same until enrolment is confirmed, so reloading the
    page does not invalidate what the authenticator app already scanned."""
    if not needs_enrolment(user):
        raise Conflict("Your authenticator app is already set up.")
    if user.totp_secret_enc is None:
        secret = pyotp.random_base32(32)  # 160 bits, as RFC 4226 recommends
        user.totp_secret_enc = _encrypt_secret(user, secret)
        db.session.commit()
    else:
        secret = _decrypt_secret(user)
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=TOTP_ISSUER)
    return Enrolment(secret=secret, uri=uri)


def confirm_enrolment(user: User, login_session: LoginSession, code: str) -> list[str]:
    """Check the first code from the app; on success the session counts as verified and
    the user gets their recovery codes (returned once, stored hashed)."""
    if not needs_enrolment(user) or user.totp_secret_enc is None:
        raise Conflict("Your authenticator app is already set up.")
    attempt = _claim_code_attempt(user)
    if not _accept_totp(user, _normalize(code)):
        throttle.spend(attempt)
        raise ValidationFailed(
            "That code does not match. Check the app shows “IoTLock Support” and type the "
            "current 6 digits.",
            field="code",
        )
    now = utcnow()
    user.totp_enrolled_at = now
    login_session.second_factor_at = now
    codes = _new_recovery_codes(user)
    _clear_failures(user)
    db.session.commit()
    return codes


def verify(user: User, login_session: LoginSession, code: str) -> str:
    """Accept a current TOTP code or an unused recovery code; returns "totp" or "recovery"."""
    if needs_enrolment(user):
        raise Conflict("Set up your authenticator app first.")
    attempt = _claim_code_attempt(user)
    normalized = _normalize(code)
    if len(normalized) == 6 and normalized.isdigit():
        used = "totp" if _accept_totp(user, normalized) else None
    else:
        used = "recovery" if _use_recovery_code(user, normalized) else None
    if used is None:
        throttle.spend(attempt)
        raise ValidationFailed(
            "That code is not valid. Type the 6 digits your app shows now, or one of your "
            "unused recovery codes.",
            field="code",
        )
    login_session.second_factor_at = utcnow()
    _clear_failures(user)
    db.session.commit()
    return used


def recovery_codes_left(user: User) -> int:
    return db.session.execute(
        sa.select(sa.func.count())
        .select_from(RecoveryCode)
        .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
    ).scalar_one()


def _normalize(code: str) -> str:
    return "".join(ch for ch in (code or "").lower() if ch.isalnum())[:40]


def _encrypt_secret(user: User, secret: str) -> bytes:
    if user.id is None:
        db.session.flush()
    return crypto.encrypt(secret, table="users", column="totp_secret_enc", row_id=user.id)


def _decrypt_secret(user: User) -> str:
    # Callers check first: begin_enrolment and confirm_enrolment test the secret, verify
    # requires enrolment, and the secret is only ever cleared together with the enrolment.
    assert user.totp_secret_enc is not None, "only called for a user with a TOTP secret"
    return crypto.decrypt(user.totp_secret_enc, table="users", column="totp_secret_enc", row_id=user.id)


def _accept_totp(user: User, code: str) -> bool:
    """A code of the current 30-second step or one step either side, and never a step
    that was already used (a code seen over a shoulder cannot be replayed)."""
    if len(code) != 6 or not code.isdigit():
        return False
    totp = pyotp.TOTP(_decrypt_secret(user))
    now_counter = totp.timecode(utcnow())
    last = user.totp_last_counter if user.totp_last_counter is not None else -1
    for counter in (now_counter - 1, now_counter, now_counter + 1):
        if counter <= last:
            continue
        if hmac.compare_digest(totp.generate_otp(counter), code):
            # Conditional UPDATE: of two requests racing with the same code, one wins.
            # An UPDATE's result is a CursorResult (it has rowcount); Session.execute is typed as returning a Result.
            spent = cast(
                sa.CursorResult,
                db.session.execute(
                    sa.update(User)
                    .where(
                        User.id == user.id,
                        sa.or_(User.totp_last_counter.is_(None), User.totp_last_counter < counter),
                    )
                    .values(totp_last_counter=counter)
                ),
            )
            return spent.rowcount == 1
    return False


def _new_recovery_codes(user: User) -> list[str]:
    db.session.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_LENGTH))
        db.session.add(RecoveryCode(user_id=user.id, code_hash=_recovery_digest(raw)))
        codes.append(f"{raw[0:4]}-{raw[4:8]}-{raw[8:12]}")
    return codes


def _recovery_digest(normalized: str) -> str:
    return crypto.keyed_digest("staff-recovery-code", normalized)


def _use_recovery_code(user: User, normalized: str) -> bool:
    if len(normalized) != _RECOVERY_LENGTH:
        return False
    # The UPDATE ... WHERE used_at IS NULL makes a code single-use even under two
    # simultaneous requests.
    # An UPDATE's result is a CursorResult (it has rowcount); Session.execute is typed as returning a Result.
    result = cast(
        sa.CursorResult,
        db.session.execute(
            sa.update(RecoveryCode)
            .where(
                RecoveryCode.user_id == user.id,
                RecoveryCode.code_hash == _recovery_digest(normalized),
                RecoveryCode.used_at.is_(None),
            )
            .values(used_at=utcnow())
        ),
    )
    return result.rowcount == 1


def _throttle_keys(user: User) -> list[tuple[str, int]]:
    return [(f"second-factor:{user.id}", MAX_CODE_FAILURES)]


def _claim_code_attempt(user: User) -> throttle.Claim:
    """One of the MAX_CODE_FAILURES slots, taken before the code is checked so parallel
    guesses cannot all pass a lock that is not yet recorded (commits)."""
    return throttle.claim(_throttle_keys(user))


def _clear_failures(user: User) -> None:
    throttle.reset(_throttle_keys(user)[0][0])
