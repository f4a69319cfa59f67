"""Which households someone is looking at: their boxes are read at the fast interval.

A household page (and every live refresh of one) keeps `Account.watched_until` about
WATCH_SECONDS ahead. The worker reads every channel of a watched household each
REPLY_POLL_SECONDS (portal/services/device_reports.py, channels_to_read_fast), so a key
press shows on an open page within seconds, while households nobody looks at cost one
read every IDLE_POLL_SECONDS.
"""
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import NO_VALUE

from portal.extensions import db
from portal.models import Account, utcnow
from portal.services.visitors import Household


def keep_watched(account: Account | Household) -> None:
    """Note that a member is looking at this household. Written at most about twice per
    WATCH_SECONDS (the household's watched_until came with the login lookup, or with the
    API token's row, so checking costs no query); commits, so call it after the request's
    own work (it never carries that work along)."""
    if isinstance(account, Household):
        watched_until = account.watched_until
    else:
        watched_until = sa.inspect(account).attrs.watched_until.loaded_value
        if watched_until is NO_VALUE:
            # The request committed (which expires the row): reading it again would cost a
            # query on every API call that changes something. The next one keeps it watched.
            return
    window = float(current_app.config["WATCH_SECONDS"])
    now = utcnow()
    if watched_until is not None and watched_until > now + timedelta(seconds=window / 2):
        return
    session = db.session()
    if session.new or session.dirty or session.deleted:
        return  # unsaved work of a view that did not finish: never commit it from here
    until = now + timedelta(seconds=window)
    db.session.execute(
        sa.update(Account).where(Account.id == account.id).values(watched_until=until)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
