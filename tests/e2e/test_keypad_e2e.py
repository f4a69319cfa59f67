"""The virtual box's keypad in real Chromium (issue 11): presses far faster than a round
trip all count and Enter sends them as one entry; without JavaScript the same keypad is a
plain form (the digits field and Enter) that still opens the box."""
import time

import pytest
from playwright.sync_api import expect

from portal.extensions import db
from portal.models import Mailbox, Pin
from portal.services import accounts, gateways, mailboxes, pins
from tests.plugins.accounts import PASSWORD
from tests.plugins.browser import log_in

pytestmark = pytest.mark.e2e

SLOW = 30_000


def _box_with_a_pin(live_server) -> str:
    """A household with a virtual gateway, a box and PIN 5827 on it, all confirmed by the
    virtual gateway (the embedded worker runs it); the box's page URL."""
    app = live_server.app
    with app.app_context():
        user, account = accounts.register("kim@example.com", PASSWORD, "Birch Lane")
        gateway, _ = gateways.add_gateway(account.id, user, name="Porch gateway", key_mode="generate")
        mailbox, _ = mailboxes.add_mailbox(account.id, gateway.id, user, name="Front box", kind="mailbox",
                                           key_mode="generate")
        [pin] = pins.add_pin(account.id, mailbox.id, user, label="Courier", digits="5827")
        mailbox_id, pin_id = mailbox.id, pin.id
    with app.app_context():
        start = time.monotonic()
        while time.monotonic() - start < 60:
            db.session.expire_all()
            if db.session.get(Pin, pin_id).status == "active" and db.session.get(Mailbox, mailbox_id).status == "active":
                break
            time.sleep(0.2)
        else:
            pytest.fail("the virtual gateway did not confirm the box and its PIN")
    return f"{live_server.url}/mailboxes/{mailbox_id}"


def _log_in(page, base):
    log_in(page, base, "kim@example.com", PASSWORD)


def test_presses_ten_ms_apart_all_count_and_enter_sends_one_entry(live_server, page, shot):
    box_url = _box_with_a_pin(live_server)
    _log_in(page, live_server.url)
    page.goto(box_url)
    posts = []
    page.on("request", lambda r: r.method == "POST" and "/keypad" in r.url and posts.append(r))
    keypad = page.locator("#keypad .keypad")
    for key in "5827":
        keypad.get_by_role("button", name=key, exact=True).click(no_wait_after=True)
        page.wait_for_timeout(10)
    expect(page.locator("#keypad input[name=digits]")).to_have_value("5827")
    assert posts == []  # typing stayed in the page
    page.locator("#keypad").get_by_role("button", name="Enter", exact=True).click()
    expect(page.locator("#keypad .keypad-result")).to_contain_text("The box opened")
    assert len(posts) == 1 and "digits=5827" in (posts[0].post_data or "")
    expect(page.locator("#box-events")).to_contain_text("Opened with PIN “Courier”", timeout=SLOW)
    assert page.url == box_url  # no plain form submit fell through
    # C clears, and the next entry is refused as a wrong one.
    for key in "58":
        keypad.get_by_role("button", name=key, exact=True).click(no_wait_after=True)
    keypad.get_by_role("button", name="Clear").click()
    expect(page.locator("#keypad input[name=digits]")).to_have_value("")
    page.locator("#keypad input[name=digits]").fill("1111")
    page.locator("#keypad input[name=digits]").press("Enter")  # the field's Enter tries it too
    expect(page.locator("#keypad .keypad-result")).to_contain_text("refused")
    assert page.console_errors == []
    shot("keypad-fast-presses")


def test_without_javascript_the_keypad_is_a_plain_form_that_opens_the_box(live_server, browser, shot):
    box_url = _box_with_a_pin(live_server)
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1200, "height": 860})
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        _log_in(page, live_server.url)
        page.goto(box_url)
        # The keys type through the server (each press reloads the page)...
        page.locator("#keypad .keypad").get_by_role("button", name="5", exact=True).click()
        expect(page.locator("#keypad input[name=digits]")).to_have_value("5")
        # ... and the field plus Enter is the plain form.
        page.locator("#keypad input[name=digits]").fill("5827")
        page.locator("#keypad input[name=digits]").press("Enter")
        expect(page.locator("body")).to_contain_text("The box opened: that PIN is on it.")
        page.locator("#keypad input[name=digits]").fill("5827")
        page.locator("#keypad").get_by_role("button", name="Enter", exact=True).click()
        expect(page.locator("body")).to_contain_text("The box opened: that PIN is on it.")
        shot("keypad-without-javascript", target=page)
    finally:
        context.close()
