"""In real Chromium, a polled part sends the version it shows and keeps itself as it is on a
304: the activity feed polls every 5 s, answers 304 while nothing moves, and shows a new
event on the poll after it lands (services/versions.py; base.html's htmx-config)."""
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from portal.extensions import db
from portal.models import Account, ActivityEvent, utcnow

pytestmark = pytest.mark.e2e


@pytest.fixture
def live_server_overrides():
    return {"EMBEDDED_WORKER": False, "VIRTUAL_GATEWAYS": False}


def _wait_for(page, condition, seconds: float) -> None:
    for _ in range(int(seconds * 4)):
        if condition():
            return
        page.wait_for_timeout(250)
    assert condition()


def test_the_activity_feed_keeps_itself_on_a_304_and_shows_what_lands_next(live_server, page):
    page.goto(live_server.url + "/register")
    page.fill("#email", "polls@example.com")
    page.fill("#password", "a long enough password")
    page.fill("#household_name", "Poll House")
    page.click("button[type=submit]")
    page.wait_for_url("**/gateways/")

    # What registering wrote happened an hour ago: its time in words no longer turns each
    # second ("12 seconds ago"), which would draw the feed again at each poll, rightly.
    with live_server.app.app_context():
        account_id = db.session.scalars(db.select(Account.id).where(Account.name == "Poll House")).one()
        db.session.execute(db.update(ActivityEvent).where(ActivityEvent.account_id == account_id)
                           .values(occurred_at=utcnow() - timedelta(hours=1)))
        db.session.commit()

    polls = []
    page.on("response", lambda r: polls.append((r.status, r.request.headers.get("if-none-match")))
            if r.request.headers.get("x-iotlock-poll") and "/activity" in r.url else None)
    page.goto(live_server.url + "/activity")
    feed = page.locator("#activity-feed")
    shown = feed.inner_text()
    # The first poll draws the feed with a version; the next carry it and get a 304 (one may
    # draw it again: a version also ends at the clock's minute, and two polls can't both
    # straddle one).
    _wait_for(page, lambda: 304 in [status for status, _ in polls], seconds=20)
    assert polls[0] == (200, None) and all(etag and etag.startswith('"') for _, etag in polls[1:]), polls
    assert feed.inner_text() == shown  # a 304 leaves it as it was

    with live_server.app.app_context():
        db.session.add(ActivityEvent(account_id=account_id, actor_kind="box", actor_label="Front box",
                                     kind="box.closed", summary="Parcel delivered", occurred_at=utcnow()))
        db.session.commit()
    expect(feed).to_contain_text("Parcel delivered", timeout=8_000)
    _wait_for(page, lambda: polls[-1][0] == 200, seconds=2)  # the response event may trail the swap
    assert page.console_errors == []
