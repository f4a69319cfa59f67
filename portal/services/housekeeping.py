"""Deleting rows that no longer protect or show anything: stale login throttles, login
sessions long over, and API answers kept for Idempotency-Key retries past their day."""
from datetime import timedelta
from typing import cast

import sqlalchemy as sa
from flask import current_app

from portal.extensions import db
from portal.models import LoginSession, LoginThrottle, utcnow
from portal.services import api_tokens

# Ended sessions are kept a while so "logged out on N devices" and investigations can see them.
ENDED_SESSION_RETENTION = timedelta(days=30)


def prune(now=None) -> dict:
    """Delete stale throttle rows and sessions ended more than 30 days ago; return counts."""
    now = now or utcnow()
    cfg = current_app.config
    window = cfg["LOGIN_THROTTLE_WINDOW"]
    # A DELETE's result is a CursorResult (it has rowcount); Session.execute is typed as returning a Result.
    throttles = cast(
        sa.CursorResult,
        db.session.execute(
            sa.delete(LoginThrottle).where(
                LoginThrottle.window_started_at < now - window,
                sa.or_(LoginThrottle.locked_until.is_(None), LoginThrottle.locked_until < now),
            )
        ),
    ).rowcount
    cutoff = now - ENDED_SESSION_RETENTION
    sessions = cast(
        sa.CursorResult,
        db.session.execute(
            sa.delete(LoginSession).where(
                sa.or_(
                    LoginSession.revoked_at < cutoff,
                    LoginSession.last_seen_at < cutoff - cfg["SESSION_IDLE_TIMEOUT"],
                    LoginSession.created_at < cutoff - cfg["SESSION_ABSOLUTE_TIMEOUT"],
                )
            )
        ),
    ).rowcount
    idempotent = api_tokens.prune_idempotent(now)
    db.session.commit()
    return {"throttles": throttles, "sessions": sessions, "idempotent_answers": idempotent}
