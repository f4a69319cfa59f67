"""An alert's delivery to one member on one channel (Notification.state): the one module that
moves it. queued (or held by quiet hours) -> sent | failed | skipped; the bell's rows are born
sent. Each move is a compare-and-set on the states it may follow, so an alert is marked sent
once, whichever worker or retry gets there first."""
import uuid
from datetime import datetime
from enum import StrEnum
from typing import cast

import sqlalchemy as sa

from portal.extensions import db
from portal.models import Notification, utcnow


class NotificationState(StrEnum):
    QUEUED = "queued"
    HELD = "held"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"


WAITING = (NotificationState.QUEUED, NotificationState.HELD)


def new(alert_id: uuid.UUID, account_id: uuid.UUID, user_id: uuid.UUID, channel: str, *,
        hold_until: datetime | None = None, sent: bool = False) -> Notification:
    """A notification in the session (the caller commits it with its alert): sent at once
    (the bell), held until `hold_until` (quiet hours), or queued."""
    if sent:
        state, sent_at = NotificationState.SENT, utcnow()
    else:
        state, sent_at = (NotificationState.HELD if hold_until else NotificationState.QUEUED), None
    row = Notification(id=uuid.uuid4(), alert_id=alert_id, account_id=account_id, user_id=user_id,
                       channel=channel, state=state.value, attempts=0, hold_until=hold_until, sent_at=sent_at)
    db.session.add(row)
    return row


def waiting(notification: Notification) -> bool:
    """Whether the notification is still to be sent (not sent, failed or skipped yet)."""
    return notification.state in WAITING


def mark_sent(notification_id: uuid.UUID, attempts: int) -> bool:
    return _move(notification_id, NotificationState.SENT, attempts=attempts, sent_at=utcnow(), error=None)


def mark_failed(notification_id: uuid.UUID, reason: str, attempts: int | None = None) -> bool:
    values = {"attempts": attempts} if attempts is not None else {}
    return _move(notification_id, NotificationState.FAILED, error=reason[:500], **values)


def mark_skipped(notification_id: uuid.UUID, reason: str) -> bool:
    return _move(notification_id, NotificationState.SKIPPED, error=reason[:500])


def note_retry(notification_id: uuid.UUID, reason: str, attempts: int) -> None:
    """An attempt failed and another is planned: the notification stays waiting, saying why."""
    db.session.execute(
        sa.update(Notification)
        .where(Notification.id == notification_id, Notification.state.in_(WAITING))
        .values(error=reason[:500], attempts=attempts)
        .execution_options(synchronize_session="fetch")
    )


def _move(notification_id: uuid.UUID, to: NotificationState, **values) -> bool:
    """Compare-and-set from a waiting state; False when it was not waiting (any more). The
    caller commits."""
    result = cast(sa.CursorResult, db.session.execute(
        sa.update(Notification)
        .where(Notification.id == notification_id, Notification.state.in_(WAITING))
        .values(state=to.value, **values)
        .execution_options(synchronize_session="fetch")
    ))
    return result.rowcount == 1


# --- the hooks of the jobs that send them (portal/jobs/handlers/alerts.py, push.py) ---------

def job_notification_id(job) -> uuid.UUID:
    """The notification an "alert.email" or "alert.push" job sends."""
    return uuid.UUID(job.payload["notification_id"])


def job_retrying(job, reason: str, _retry_at) -> None:
    note_retry(job_notification_id(job), reason, job.attempts)


def job_gave_up(job, reason: str) -> None:
    mark_failed(job_notification_id(job), reason, job.attempts)
