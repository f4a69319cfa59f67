"""Issue 12 in real Chromium, on the whole product (portal, worker, virtual gateway that
keeps the rules itself): a courier's code delivers and a household PIN collects; a PIN
typed outside its hours is refused by the box, and Activity says why."""
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from portal.extensions import db
from portal.models import Mailbox, Pin
from portal.services import accounts, gateways, mailboxes, pins
from tests.plugins.accounts import PASSWORD
from tests.plugins.browser import log_in, wait_until

pytestmark = pytest.mark.e2e

SLOW = 30_000


def _parcel_box(live_server):
    """A household (UTC) with a virtual gateway, a parcel box and PIN 4821 on it, confirmed."""
    app = live_server.app
    with app.app_context():
        user, account = accounts.register("kim@example.com", PASSWORD, "Birch Lane", time_zone="UTC")
        gateway, _ = gateways.add_gateway(account.id, user, name="Porch gateway", key_mode="generate")
        mailbox, _ = mailboxes.add_mailbox(account.id, gateway.id, user, name="Parcel box", kind="parcel_box",
                                           key_mode="generate")
        pins.add_pin(account.id, [mailbox.id], user, label="Kim", digits="4821")
        mailbox_id = mailbox.id
    wait_until(app, lambda: db.session.get(Mailbox, mailbox_id).status == "active" and all(
        p.status == "active" for p in db.session.scalars(sa.select(Pin).where(Pin.mailbox_id == mailbox_id))),
        "the box and its PIN on the virtual gateway")
    return mailbox_id, f"{live_server.url}/mailboxes/{mailbox_id}"


def _log_in(page, base):
    log_in(page, base, "kim@example.com", PASSWORD)


def _type(page, digits: str) -> None:
    page.locator("#keypad input[name=digits]").fill(digits)
    page.locator("#keypad").get_by_role("button", name="Enter", exact=True).click()


def _reload_until(page, url: str, locator: str, text: str) -> None:
    """The page at `url` until `locator` shows `text` (the box reports come by themselves)."""
    deadline = time.monotonic() + SLOW / 1000
    while True:
        page.goto(url)
        try:
            shown = page.locator(locator).first.inner_text(timeout=2_000)
        except PlaywrightError:
            shown = ""  # swapped by the page's own refresh while being read: read it again
        if text in shown or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    expect(page.locator(locator).first).to_contain_text(text)


def test_a_courier_code_delivers_a_household_pin_collects_and_hours_are_kept(live_server, page, browser, shot):
    app = live_server.app
    mailbox_id, box_url = _parcel_box(live_server)
    _log_in(page, live_server.url)

    # A delivery code, with its text for the courier.
    page.goto(box_url)
    page.get_by_role("link", name="New delivery code").click()
    page.fill("#label", "Order 1234")
    page.get_by_role("button", name="Make the code").click()
    digits = page.locator("#delivery-digits").inner_text().strip()
    assert re.fullmatch(r"[1-9]\d{3,7}", digits)
    expect(page.locator("#carrier-text")).to_contain_text(digits)
    shot("delivery-code-desktop")
    wait_until(app, lambda: db.session.scalars(sa.select(Pin).where(
        Pin.mailbox_id == mailbox_id, Pin.purpose == "courier")).one().status == "active", "the courier code on the box")

    # The courier types it: the box opens, then closes by itself: delivered.
    page.goto(box_url)
    _type(page, digits)
    expect(page.locator("#keypad .keypad-result")).to_contain_text("The box opened")
    _reload_until(page, box_url, "#mailbox-live", "Parcel waiting since")
    expect(page.locator("#parcel-waiting")).to_be_visible()
    shot("parcel-waiting-desktop")
    page.goto(live_server.url + "/gateways/")
    expect(page.locator("body")).to_contain_text("Parcel waiting since")

    # The code worked once: typed again, the box refuses it as used up.
    page.goto(box_url)
    _type(page, digits)
    expect(page.locator("#keypad .keypad-result")).to_contain_text("stayed shut")

    # Someone of the household opens it: collected.
    _type(page, "4821")
    expect(page.locator("#keypad .keypad-result")).to_contain_text("The box opened")
    _reload_until(page, box_url, "#box-events", "Parcel collected")
    expect(page.locator("#parcel-waiting")).to_have_count(0)

    # A weekly PIN whose one window is six hours away, every day: refused now, with the reason.
    start = (datetime.now(UTC) + timedelta(hours=6)).replace(second=0, microsecond=0)
    until = "00:00" if start.strftime("%H:%M") == "23:59" else (start + timedelta(minutes=1)).strftime("%H:%M")
    page.goto(box_url)
    page.fill("#label", "Cleaner")
    page.fill("#digits", "6385")
    page.get_by_label("On a weekly schedule").check()
    row = page.locator(".window-row").first
    for day in ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"):
        row.get_by_text(day, exact=True).click()
    page.fill("#w-0-from", start.strftime("%H:%M"))
    page.fill("#w-0-until", until)
    expect(page.locator("#pin-preview")).to_contain_text(start.strftime("%H:%M"))
    shot("add-pin-weekly-desktop")
    page.get_by_role("button", name="Add PIN").click()
    expect(page.locator("body")).to_contain_text("PIN “Cleaner” saved")
    wait_until(app, lambda: db.session.scalars(sa.select(Pin).where(
        Pin.mailbox_id == mailbox_id, Pin.label == "Cleaner")).one().status == "active", "the weekly PIN on the box")
    page.goto(box_url)
    _type(page, "6385")
    expect(page.locator("#keypad .keypad-result")).to_contain_text("outside its hours")
    _reload_until(page, live_server.url + "/activity", "main", "“Cleaner” PIN refused: outside its hours (")
    shot("activity-refused-desktop")
    assert page.console_errors == [], page.console_errors

    # The same pages on a phone.
    phone = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2)
    try:
        small = phone.new_page()
        _log_in(small, live_server.url)
        small.goto(box_url)
        small.get_by_label("On a weekly schedule").check()
        shot("box-page-phone", target=small)
        small.goto(live_server.url + "/activity")
        shot("activity-refused-phone", target=small)
        small.goto(box_url + "/delivery-code")
        shot("delivery-code-form-phone", target=small)
        width = small.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the page is {width}px wide at 390px"
    finally:
        phone.close()
