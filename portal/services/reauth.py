"""A fresh password check in front of secrets (PIN digits, device settings, private keys).

The check lasts REAUTH_WINDOW; wrong guesses count towards the login throttle.
"""
from flask import current_app

from portal.extensions import db
from portal.models import LoginSession, User, utcnow
from portal.services import throttle
from portal.services.errors import ServiceError, ValidationFailed
from portal.services.visitors import SessionFacts


class PasswordRequired(ServiceError):
    """The member must type their password again before seeing a secret."""

    def __init__(self, message: str = "Enter your password to continue."):
        super().__init__(message, field="password")


def reauth_is_fresh(login_session: SessionFacts | None) -> bool:
    if login_session is None or login_session.reauthenticated_at is None:
        return False
    return utcnow() - login_session.reauthenticated_at <= current_app.config["REAUTH_WINDOW"]


def require_password_now(user: User, password: str | None, message: str = "Enter your password to continue.") -> None:
    """The password typed for THIS action: no earlier check counts (secrets that leave the
    portal, like a gateway's settings file). Wrong guesses count towards the login throttle.
    The re-authentication window is left as it was."""
    if not password:
        raise PasswordRequired(message)
    attempt = throttle.claim(throttle.keys_for(user.email, None))
    if not throttle.verify(attempt, user.password_hash, password):
        raise ValidationFailed("That is not your password. Try again.", field="password")


def require_recent_password(login_session: LoginSession | None, user: User, password: str | None) -> None:
    """Pass when the password was checked within REAUTH_WINDOW, or `password` is right now
    (which restarts the window). Wrong guesses count towards the login throttle."""
    if reauth_is_fresh(login_session):
        return
    if not password:
        raise PasswordRequired()
    attempt = throttle.claim(throttle.keys_for(user.email, None))
    if not throttle.verify(attempt, user.password_hash, password):
        raise ValidationFailed("That is not your password. Try again.", field="password")
    if login_session is None:
        raise PasswordRequired()
    login_session.reauthenticated_at = utcnow()
    db.session.commit()
