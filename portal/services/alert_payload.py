"""What an alert says to the outside, the same on every channel (issue 13's contract: push,
webhooks, email and the API carry these fields): never PIN digits or keys."""
from datetime import UTC, datetime

from flask import current_app, has_request_context, url_for

from portal.extensions import db
from portal.models import Account, Alert, Mailbox
from portal.urls import public_link, serving_base_url


def link(endpoint: str, **values) -> str:
    """An absolute link to a portal page, from a request or from the worker (which has none:
    it builds on PUBLIC_URL, or where the portal listens)."""
    if has_request_context():
        return public_link(endpoint, **values)
    with current_app.test_request_context(base_url=serving_base_url()):
        return url_for(endpoint, **values, _external=True)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def payload(alert: Alert) -> dict:
    """The alert's fields: what happened, in which household and box, when, and a link to
    the page that shows it."""
    account = db.session.get(Account, alert.account_id)
    mailbox = db.session.get(Mailbox, alert.mailbox_id) if alert.mailbox_id else None
    url = link("mailboxes.show", mailbox_id=mailbox.id) if mailbox else link("alerts.index")
    return {
        "id": str(alert.id),
        "kind": alert.kind,
        "summary": alert.summary,
        "household": account.name if account else None,
        "box": mailbox.name if mailbox else None,
        "occurred_at": iso(alert.occurred_at),
        "url": url,
    }
