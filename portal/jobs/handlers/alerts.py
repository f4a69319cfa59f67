"""Alert emails ("alert.email", payload {"notification_id"}), enqueued by the alerts fan-out
(portal/services/alerts.py), and the invite email ("mail.invite"), which leaves the web
request: a slow or failing mail server never slows a page and never loses a message.

Never held by StreamIoT's health: mail servers are not StreamIoT. Safe to run again: a
notification already sent is not sent twice, and its Message-ID stays the same.
"""

from flask import current_app

from portal.extensions import db
from portal.jobs.errors import RetryLater
from portal.jobs.registry import handler, periodic
from portal.models import Notification
from portal.services import alert_detection, alerts, mail, members, notifications


def _later(job, reason: str) -> RetryLater:
    """Mail servers recover in minutes, not seconds: MAIL_RETRY_SECONDS, doubling per
    attempt up to an hour (a 30 s outage costs one retry, never a lost email)."""
    base = float(current_app.config["MAIL_RETRY_SECONDS"])
    return RetryLater(reason, delay=min(3600.0, base * 2 ** max(job.attempts - 1, 0)))


@handler(alerts.ALERT_EMAIL, on_give_up=notifications.job_gave_up, on_retry=notifications.job_retrying, streamiot=False)
def send_alert_email(job, ctx) -> None:
    notification = db.session.get(Notification, notifications.job_notification_id(job))
    if notification is None or not notifications.waiting(notification):
        return  # gone, or an earlier run sent it (its answer lost)
    try:
        _alert, email = alerts.email_for(notification)
    except alerts.Skip as exc:
        notifications.mark_skipped(notification.id, exc.reason)
        return
    result = mail.send(email.to, email.subject, email.text, html=email.html, headers=email.headers,
                       message_id=email.message_id)
    if result == mail.FAILED:
        raise _later(job, "The mail server did not take the email")
    if result == mail.LOGGED:
        notifications.mark_skipped(notification.id, "Email is not set up on this portal: written to the log")
        return
    notifications.mark_sent(notification.id, job.attempts)


@handler(members.SEND_INVITE, streamiot=False)
def send_invite_email(job, ctx) -> None:
    if members.send_invite_email(job.payload) == mail.FAILED:
        raise _later(job, "The mail server did not take the invite email")


@periodic("ALERT_SCAN_SECONDS")
def look_for_alerts(app, now=None) -> alert_detection.Found:
    """Boxes left open, gateways offline or back, PINs about to expire."""
    return alert_detection.scan(now)
