"""The sealed protocol level end to end, in real Chromium on the embedded defaults (worker,
virtual gateways): add a sealed gateway, a box and a PIN; a co-owner downloads the
gateway's settings and is then removed; the owner replaces the keys with one button, no
visit to the device, and the box still confirms a new PIN. Screenshots at 390 px and
desktop width land in tests/artifacts/."""
import re

import pytest
from playwright.sync_api import expect

from portal.extensions import db
from portal.models import ROLE_OWNER, Gateway, Membership
from portal.services import accounts
from tests.plugins.accounts import PASSWORD

pytestmark = pytest.mark.e2e

SLOW = 30_000


def _both_widths(page, shot, name):
    page.set_viewport_size({"width": 390, "height": 844})
    shot(f"{name}-390")
    page.set_viewport_size({"width": 1200, "height": 860})
    shot(f"{name}-desktop")


def _add_pin(page, label, digits):
    page.fill("#label", label)
    page.fill("#digits", digits)
    page.get_by_role("button", name="Add PIN").click()
    row = page.locator("#pins li.pin-row", has_text=label)
    expect(row.locator(".badge")).to_have_text("Confirmed on the box", timeout=SLOW)


def _log_in(context, base, email):
    page = context.new_page()
    page.goto(base + "/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/gateways/")
    return page


def test_a_sealed_gateway_gets_new_keys_without_a_visit_and_keeps_confirming_pins(live_server, page, shot):
    app, base = live_server.app, live_server.url
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(base + "/register")
    page.fill("#email", "olga@example.com")
    page.fill("#password", PASSWORD)
    page.fill("#household_name", "Maple House")
    page.click("button[type=submit]")
    page.wait_for_url("**/gateways/")

    # A sealed gateway (the default), a box on it, a PIN confirmed on the box.
    page.get_by_role("link", name="Add your first gateway").click()
    page.fill("#name", "Hallway gateway")
    expect(page.locator("input[name=protocol][value=sealed]")).to_be_checked()
    _both_widths(page, shot, "sealed-01-add-gateway")
    page.get_by_role("button", name="Add gateway").click()
    page.wait_for_url(re.compile(r".*/gateways/[0-9a-f-]{36}$"))
    gateway_url = page.url
    expect(page.locator("#gateway-live .device-head .badge").first).to_have_text("Online", timeout=SLOW)
    expect(page.locator(".protocol-sealed")).to_be_visible()
    page.get_by_role("link", name="Add a box").click()
    page.fill("#name", "Gun safe")
    page.check("input[name=kind][value=gun_safe]")
    page.get_by_role("button", name="Add box").click()
    page.wait_for_url(re.compile(r".*/mailboxes/[0-9a-f-]{36}$"))
    box_url = page.url
    expect(page.locator("#mailbox-live .glance-state .badge")).to_have_text("Ready", timeout=SLOW)
    _add_pin(page, "Grandma", "4821")

    # Ben, a co-owner, downloads the gateway's settings (his password, this download).
    with app.app_context():
        gateway = db.session.scalars(db.select(Gateway)).one()
        ben = accounts.register_user("ben@example.com", PASSWORD)
        db.session.add(Membership(account_id=gateway.account_id, user_id=ben.id, role=ROLE_OWNER))
        db.session.commit()
        old_thing = gateway.thing_id
    ben_page = _log_in(page.context.browser.new_context(), base, "ben@example.com")
    ben_page.goto(gateway_url + "/settings")
    ben_page.fill("#password", PASSWORD)
    with ben_page.expect_download() as download:
        ben_page.get_by_role("button", name="Download settings file").click()
    assert download.value.suggested_filename.endswith(".json")

    # Olga removes Ben; the gateway page tells her he had its keys.
    page.goto(base + "/members/")
    page.locator("tr", has_text="ben@example.com").get_by_role("button", name="Remove").click()
    expect(page.get_by_text("ben@example.com is no longer a member")).to_be_visible(timeout=SLOW)
    page.goto(gateway_url)
    expect(page.get_by_text("ben@example.com had this gateway’s keys.")).to_be_visible()
    _both_widths(page, shot, "sealed-02-departed-member")

    # One button and her password: the gateway is sent its new keys, sealed, and answers.
    page.locator(".keys-notice").get_by_role("link", name="Replace keys").click()
    page.wait_for_url("**/replace-keys")
    if page.locator("#password").count():
        page.fill("#password", PASSWORD)
    page.get_by_role("button", name="Replace keys").click()
    page.wait_for_url(gateway_url)
    expect(page.get_by_text("had this gateway’s keys")).to_have_count(0, timeout=SLOW)
    with app.app_context():
        for _ in range(120):
            db.session.expire_all()
            gateway = db.session.get(Gateway, gateway.id)
            if gateway.key_state == "current":
                break
            page.wait_for_timeout(250)
        assert gateway.key_state == "current", gateway.key_error
        assert gateway.thing_id != old_thing
        assert gateway.key_progress["rekey_confirmed"] is True  # the gateway answered itself
    page.reload()
    expect(page.get_by_text("Load the new settings")).to_have_count(0)
    expect(page.locator("#gateway-live .device-head .badge").first).to_have_text("Online", timeout=SLOW)
    _both_widths(page, shot, "sealed-03-keys-replaced")

    # The box still confirms a new PIN.
    page.goto(box_url)
    _add_pin(page, "Courier", "5938")
    _both_widths(page, shot, "sealed-04-pin-after-new-keys")
    assert page.console_errors == []
