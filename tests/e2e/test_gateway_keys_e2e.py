"""Keys that die with access, in real Chromium on the embedded defaults: an owner sees that
a former member had a gateway's keys, replaces them with one button and the password,
watches the steps, and (a basic gateway) is told to load the new settings. The sealed
flow, where the gateway takes its new keys itself, is tests/e2e/test_sealed_e2e.py. Screenshots at phone (390 px) and
desktop width land in tests/artifacts/."""
import re

import pytest
from playwright.sync_api import expect

from portal.extensions import db
from portal.jobs.runner import drain
from portal.models import ROLE_OWNER, Gateway, GatewayKeyHolder, Membership, utcnow
from portal.services import accounts
from tests.plugins.accounts import PASSWORD

pytestmark = pytest.mark.e2e

SLOW = 30_000


@pytest.fixture
def live_server_overrides():
    # No worker: the test runs the replacement step by step, so the progress can be seen.
    return {"EMBEDDED_WORKER": False}


def _both_widths(page, shot, name):
    page.set_viewport_size({"width": 1200, "height": 860})
    shot(f"{name}-desktop")
    page.set_viewport_size({"width": 390, "height": 844})
    path = shot(f"{name}-390")
    page.set_viewport_size({"width": 1200, "height": 860})
    return path


def test_owner_replaces_the_keys_a_former_member_had(live_server, page, shot):
    app, base = live_server.app, live_server.url
    page.goto(base + "/register")
    page.fill("#email", "olga@example.com")
    page.fill("#password", PASSWORD)
    page.fill("#household_name", "Maple House")
    page.click("button[type=submit]")
    page.wait_for_url("**/gateways/")
    page.get_by_role("link", name="Add your first gateway").click()
    page.fill("#name", "Hallway gateway")
    page.check("input[name=protocol][value=seed]")  # basic firmware: its owner loads new settings
    page.get_by_role("button", name="Add gateway").click()
    page.wait_for_url(re.compile(r".*/gateways/[0-9a-f-]{36}$"))
    gateway_url = page.url
    with app.app_context():
        drain(app)
        gateway = db.session.scalars(db.select(Gateway)).one()
        # Ben was a co-owner, downloaded the settings, and was removed since.
        ben = accounts.register_user("ben@example.com", PASSWORD)
        db.session.add(Membership(account_id=gateway.account_id, user_id=ben.id, role=ROLE_OWNER))
        db.session.add(GatewayKeyHolder(account_id=gateway.account_id, gateway_id=gateway.id, user_id=ben.id,
                                        email=ben.email, first_downloaded_at=utcnow(),
                                        last_downloaded_at=utcnow(), departed_at=utcnow()))
        db.session.commit()
        gateway_id = gateway.id

    page.goto(gateway_url)
    expect(page.get_by_text("ben@example.com had this gateway’s keys.")).to_be_visible()
    _both_widths(page, shot, "keys-01-gateway-departed-member")
    page.goto(base + "/gateways/")
    expect(page.get_by_text("ben@example.com had this gateway’s keys.")).to_be_visible()
    _both_widths(page, shot, "keys-02-dashboard-departed-member")

    page.goto(gateway_url)
    page.locator(".keys-notice").get_by_role("link", name="Replace keys").click()
    page.wait_for_url("**/replace-keys")
    _both_widths(page, shot, "keys-03-replace-confirm")
    page.get_by_role("button", name="Replace keys").click()
    page.wait_for_url(gateway_url)

    # For the picture: the page as it looks while the job is between "connect" and "switch"
    # (the job itself has not run yet; it runs in full below).
    with app.app_context():
        gateway = db.session.get(Gateway, gateway_id)
        progress = gateway.key_progress
        assert gateway.key_state == "replacing"
        gateway.key_progress = {**progress, "new_thing": True, "connect": True}
        db.session.commit()
    page.reload()
    expect(page.get_by_role("heading", name="Replacing the keys")).to_be_visible()
    _both_widths(page, shot, "keys-04-replace-progress")

    with app.app_context():
        gateway = db.session.get(Gateway, gateway_id)
        gateway.key_progress = {"attempt": progress["attempt"]}
        db.session.commit()
        drain(app)
        assert db.session.get(Gateway, gateway_id).key_state == "current"
    page.reload()
    expect(page.get_by_text("Load the new settings onto the gateway; until then it can’t reach IoTLock.")).to_be_visible()
    expect(page.get_by_text("had this gateway’s keys")).to_have_count(0)
    _both_widths(page, shot, "keys-05-load-new-settings")

    # The settings page asks the password for this download.
    page.get_by_role("link", name="Download the new settings").click()
    expect(page.get_by_label("Your password")).to_be_visible()
    _both_widths(page, shot, "keys-06-settings-password")
    assert page.console_errors == []
