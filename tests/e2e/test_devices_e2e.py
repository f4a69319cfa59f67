"""The whole loop in real Chromium on the embedded defaults (emulator, worker thread,
virtual gateways): a newcomer adds a gateway and a box, gives out a PIN, uses it on the
keypad, takes it back, opens the box from afar, and removes everything again."""
import re

import pytest
from playwright.sync_api import expect

from portal.extensions import db
from portal.models import Account
from portal.streamiot.deployment import client_from_config

pytestmark = pytest.mark.e2e

SLOW = 30_000  # ms: the worker, the virtual gateway and the reply reader each take a turn


def _id_from(url: str) -> str:
    return re.search(r"/([0-9a-f-]{36})(?:[/?#]|$)", url).group(1)


def _leftovers(app, account_name: str, names: list[str]) -> list[str]:
    """Names of things and channels still in the emulator for this household."""
    from portal.jobs.context import account_secret

    with app.app_context():
        account = db.session.scalars(db.select(Account).where(Account.name == account_name)).one()
        api = client_from_config(app.config).as_user(
            account.streamiot_email, account_secret(account, "streamiot_password_enc")
        )
        found = []
        for name in names:
            found += [t["name"] for t in api.find_things(name)]
            found += [c["name"] for c in api.find_channels(name)]
        return found


def test_household_runs_a_box_end_to_end_without_hardware(live_server, page, shot):
    base = live_server.url
    page.on("dialog", lambda dialog: dialog.accept())  # hx-confirm asks; the person says yes

    # Register: the dashboard says what to do first.
    page.goto(base + "/register")
    page.fill("#email", "newcomer@example.com")
    page.fill("#password", "a long enough password")
    page.fill("#household_name", "Maple House")
    page.click("button[type=submit]")
    page.wait_for_url("**/gateways/")
    expect(page.get_by_role("heading", name="Add your first gateway")).to_be_visible()
    shot("devices-01-dashboard-empty")

    # Add a gateway with a key pair made by IoTLock; watch it come online.
    page.get_by_role("link", name="Add your first gateway").click()
    page.fill("#name", "Hallway gateway")
    shot("devices-02-add-gateway")
    page.get_by_role("button", name="Add gateway").click()
    page.wait_for_url(re.compile(r".*/gateways/[0-9a-f-]{36}$"))
    gateway_id = _id_from(page.url)
    shot("devices-03-gateway-setting-up")
    expect(page.locator("#gateway-live .device-head .badge").first).to_have_text("Online", timeout=SLOW)
    shot("devices-04-gateway-online")

    # The settings page (owners only) asks for the password on download, and offers the key once.
    page.get_by_role("link", name="Device settings").click()
    expect(page.get_by_text("Your next download includes the private key")).to_be_visible()
    shot("devices-05-gateway-settings")
    page.go_back()

    # Add a box to it.
    page.get_by_role("link", name="Add a box").click()
    page.fill("#name", "Front mailbox")
    page.check("input[name=kind][value=parcel_box]")
    shot("devices-06-add-mailbox")
    page.get_by_role("button", name="Add box").click()
    page.wait_for_url(re.compile(r".*/mailboxes/[0-9a-f-]{36}$"))
    mailbox_id = _id_from(page.url)
    expect(page.locator("#mailbox-live .glance-state .badge")).to_have_text("Ready", timeout=SLOW)

    # Give Grandma a PIN: first a guessable one, refused on the field, then a good one.
    page.fill("#label", "Grandma")
    page.fill("#digits", "1234")
    page.get_by_role("button", name="Add PIN").click()
    expect(page.locator("#add-pin .field-error")).to_contain_text("straight run")
    shot("devices-07-pin-refused")
    page.fill("#label", "Grandma")
    page.fill("#digits", "4821")
    page.get_by_role("button", name="Add PIN").click()
    row = page.locator("#pins li.pin-row", has_text="Grandma")
    expect(row.locator(".badge")).to_have_text("Confirmed on the box", timeout=SLOW)
    expect(row).not_to_contain_text("4821")  # masked in the list
    expect(page.locator("#box-holds")).to_contain_text("PINs on it", timeout=SLOW)
    shot("devices-08-pin-confirmed")

    # The digits stay hidden until asked for (the login was a moment ago: no password again).
    row.get_by_role("button", name="Show").click()
    expect(row.locator(".revealed")).to_have_text("4821")
    shot("devices-08b-pin-shown")
    page.goto(base + "/gateways/")
    expect(page.locator("#dashboard")).to_contain_text("Front mailbox")
    shot("devices-08c-dashboard")
    page.goto(f"{base}/mailboxes/{mailbox_id}")

    # Type it on the virtual box's keypad: it opens, and the log names Grandma's PIN.
    # Fast, 10 ms between presses: the page buffers them, Enter sends the entry once.
    for key in "4821":
        page.locator("#keypad .keypad").get_by_role("button", name=key, exact=True).click(no_wait_after=True)
        page.wait_for_timeout(10)
    expect(page.locator("#keypad input[name=digits]")).to_have_value("4821")
    page.locator("#keypad").get_by_role("button", name="Enter", exact=True).click()
    expect(page.locator("#keypad .keypad-result")).to_contain_text("The box opened")
    expect(page.locator("#box-events")).to_contain_text("Opened with PIN “Grandma”", timeout=SLOW)
    shot("devices-09-opened-with-pin")
    page.goto(base + "/activity")
    expect(page.locator("body")).to_contain_text("Opened with PIN “Grandma”")
    expect(page.locator("body")).not_to_contain_text("4821")
    shot("devices-10-activity-log")
    page.goto(f"{base}/mailboxes/{mailbox_id}")

    # Take the PIN back: it counts until the box confirms, then the keypad refuses it.
    row.get_by_role("button", name="Remove").click()
    expect(page.locator("#pins li.pin-row", has_text="Grandma")).to_have_count(0, timeout=SLOW)
    page.fill("#keypad input[name=digits]", "4821")
    page.locator("#keypad").get_by_role("button", name="Enter", exact=True).click()
    expect(page.locator("#keypad .keypad-result")).to_contain_text("refused")
    shot("devices-11-pin-refused-on-keypad")

    # Open it from afar.
    page.locator("#unlock").get_by_role("link", name="Open", exact=True).click()
    expect(page.locator("#unlock .unlocks .badge").first).to_have_text("Opened", timeout=SLOW)
    expect(page.locator("#box-events")).to_contain_text("Opened remotely", timeout=SLOW)
    shot("devices-12-unlocked")

    # The no-JavaScript confirmation page exists for the same button.
    page.goto(f"{base}/mailboxes/{mailbox_id}/unlock")
    shot("devices-13-unlock-confirm-page")

    # Remove the box, then the gateway: nothing of them is left in StreamIoT.
    page.goto(f"{base}/mailboxes/{mailbox_id}")
    page.get_by_role("link", name="Remove").click()
    shot("devices-14-remove-mailbox")
    page.get_by_role("button", name="Remove the box").click()
    page.wait_for_url(f"**/gateways/{gateway_id}")
    expect(page.locator("#boxes")).to_contain_text("No boxes yet", timeout=SLOW)
    page.get_by_role("link", name="Remove").click()
    shot("devices-15-remove-gateway")
    page.get_by_role("button", name="Remove the gateway").click()
    page.wait_for_url("**/gateways/", timeout=SLOW)
    expect(page.get_by_role("heading", name="Add your first gateway")).to_be_visible(timeout=SLOW)
    shot("devices-16-dashboard-after-removal")

    left = _leftovers(live_server.app, "Maple House", [f"iotlock-gw-{gateway_id}", f"iotlock-mb-{mailbox_id}"])
    assert left == []
    assert page.console_errors == []
