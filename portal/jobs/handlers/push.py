"""Alert jobs for Web Push: send one member's alert to their browsers ("alert.push",
payload {"notification_id"}), enqueued by the alerts fan-out (portal/services/alerts.py).

Never held by StreamIoT's health: push services are not StreamIoT. Safe to run again: a
notification already sent is not sent twice, and browsers reached by an earlier attempt are
kept in the job's payload ("delivered") so a retry only tries the others.
"""
from portal.extensions import db
from portal.jobs.errors import PermanentFailure, RetryLater
from portal.jobs.registry import handler
from portal.models import Notification
from portal.services import notifications, push
from portal.services.alerts import ALERT_PUSH


@handler(ALERT_PUSH, on_give_up=notifications.job_gave_up, on_retry=notifications.job_retrying, streamiot=False)
def send_alert_push(job, ctx) -> None:
    notification = db.session.get(Notification, notifications.job_notification_id(job))
    if notification is None or not notifications.waiting(notification):
        return  # the alert is gone, or an earlier run sent it (its answer lost)
    try:
        push.send(notification, skip=job.payload.get("delivered", ()))
    except push.NoDevice as exc:
        notifications.mark_skipped(notification.id, exc.reason)
        return
    except push.Undeliverable as exc:
        raise PermanentFailure(exc.reason) from None
    except push.TryLater as exc:
        # Kept whatever happens to this attempt: the runner rolls the handler's session back.
        job.payload = {**job.payload, "delivered": exc.delivered}
        db.session.commit()
        raise RetryLater(exc.reason, delay=exc.delay) from None
    notifications.mark_sent(notification.id, job.attempts)
