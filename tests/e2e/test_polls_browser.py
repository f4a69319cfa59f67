"""In real Chromium, a polled part sends the version it shows and keeps itself as it is on a
304: the activity feed (every 5 s), the bell (every 2 s) and the dashboard (every 3 s while
something is on its way) answer 304 while nothing moves, and show what lands on the poll
after (services/versions.py; base.html's htmx-config)."""
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from portal import crypto
from portal.extensions import db
from portal.models import Account, ActivityEvent, Alert, Gateway, Membership, Notification, utcnow
from tests.plugins.accounts import PASSWORD
from tests.plugins.browser import register

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
    register(page, live_server.url, "polls@example.com", PASSWORD, "Poll House")

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


def test_the_bell_keeps_itself_on_a_304_and_rings_when_an_alert_lands(live_server, page):
    """The bell that every page polls every 2 s: its page's version holds from the first poll,
    it never claims to be the current page away from the alerts pages, and an alert for the
    member shows on the poll after it lands."""
    register(page, live_server.url, "bell@example.com", PASSWORD, "Bell House")

    polls = []
    page.on("response", lambda r: polls.append(r.status) if "/alerts/bell" in r.url else None)
    bell = page.locator("#alert-bell")
    _wait_for(page, lambda: polls.count(304) >= 2, seconds=10)
    assert 200 not in polls, polls  # the page drew the bell with its version: nothing to draw again
    assert bell.get_attribute("aria-current") is None

    with live_server.app.app_context():
        account_id, user_id = db.session.execute(
            db.select(Membership.account_id, Membership.user_id).join(Account, Account.id == Membership.account_id)
            .where(Account.name == "Bell House")).one()
        alert = Alert(account_id=account_id, kind="opened", summary="Front box: opened")
        db.session.add(alert)
        db.session.flush()
        db.session.add(Notification(account_id=account_id, alert_id=alert.id, user_id=user_id, channel="portal",
                                    state="sent"))
        db.session.commit()
    expect(bell).to_contain_text("1", timeout=6_000)
    assert bell.get_attribute("aria-current") is None
    assert page.console_errors == []

    page.goto(live_server.url + "/alerts/")
    bell = page.locator("#alert-bell")
    assert bell.get_attribute("aria-current") == "page"
    polled = len(polls)
    _wait_for(page, lambda: len(polls) >= polled + 2, seconds=10)
    assert bell.get_attribute("aria-current") == "page"  # still, after its polls


def test_the_dashboard_keeps_itself_on_a_304_and_shows_the_next_change(live_server, page):
    register(page, live_server.url, "board@example.com", PASSWORD, "Board House")
    with live_server.app.app_context():
        account_id = db.session.scalars(db.select(Account.id).where(Account.name == "Board House")).one()
        # Being set up (no worker runs here): the dashboard polls every 3 s.
        db.session.add(Gateway(account_id=account_id, name="Hallway", public_key=crypto.generate_keypair()[0],
                               status="provisioning"))
        db.session.commit()

    polls = []
    page.on("response", lambda r: polls.append((r.status, r.request.headers.get("if-none-match")))
            if r.request.headers.get("x-iotlock-poll") and r.url.endswith("/gateways/") else None)
    page.goto(live_server.url + "/gateways/")
    board = page.locator("#dashboard")
    expect(board).to_contain_text("Setting up")
    shown = board.inner_text()
    _wait_for(page, lambda: 304 in [status for status, _ in polls], seconds=20)
    # The page drew its part with its version: every poll sends one, the first included.
    assert all(etag and etag.startswith('"') for _, etag in polls), polls
    assert board.inner_text() == shown

    with live_server.app.app_context():
        db.session.execute(db.update(Gateway).where(Gateway.account_id == account_id).values(name="Garage"))
        db.session.commit()
    expect(board).to_contain_text("Garage", timeout=8_000)
    assert page.console_errors == []
