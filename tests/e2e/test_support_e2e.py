"""Real Chromium: a staff member created on the command line sets a password, enrols TOTP,
finds a household by its gateway's name, sees a PIN delivery that ran out of retries with
its reason, requeues it, and watches the box confirm it; the household sees it all."""
import re
import time
import uuid
from datetime import timedelta
from urllib.parse import urlsplit

import pyotp
import pytest
import sqlalchemy as sa

from portal import crypto
from portal.extensions import db
from portal.models import Account, Command, Gateway, Job, Pin, utcnow
from tests.plugins.accounts import PASSWORD
from tests.plugins.text import visible_text

pytestmark = pytest.mark.e2e

STAFF_PASSWORD = "lantern orchard violet 42"


def _wait_for(check, what: str, timeout: float = 45.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.expire_all()
        value = check()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def _household_with_a_failed_pin(app):
    """A real household: linked to StreamIoT, a gateway online (a virtual one), a mailbox
    registered on it; then a PIN whose delivery gave up after its retries (as when StreamIoT
    was down for an hour), written in one transaction so the worker never saw it queued."""
    from portal.services import accounts, deliveries, gateways, mailboxes, pins

    with app.app_context():
        owner, account = accounts.register("olga@example.com", PASSWORD, "Lindenweg 7")
        _wait_for(lambda: db.session.get(Account, account.id).link_state == "connected", "the household link")
        gateway, _private = gateways.add_gateway(account.id, owner, name="Porch hub", key_mode="generate")
        _wait_for(lambda: db.session.get(Gateway, gateway.id).last_heartbeat_at is not None, "the gateway's heartbeat")
        mailbox, _private = mailboxes.add_mailbox(
            account.id, gateway.id, owner, name="Front door", kind="mailbox", key_mode="generate"
        )
        _wait_for(
            lambda: db.session.scalar(
                sa.select(sa.func.count()).select_from(Command).where(
                    Command.mailbox_id == mailbox.id, Command.action == "Mailbox", Command.state == "confirmed"
                )
            ),
            "the mailbox to be registered on the gateway",
        )

        pin = Pin(id=uuid.uuid4(), account_id=account.id, mailbox_id=mailbox.id, label="Grandma",
                  digits_digest=pins.digest_of(mailbox.id, "58203917"), status="adding", created_by_id=owner.id)
        pin.digits_enc = crypto.encrypt("58203917", table="pins", column="digits_enc", row_id=pin.id)
        db.session.add(pin)
        db.session.flush()
        command = Command(id=uuid.uuid4(), account_id=account.id, gateway_id=gateway.id, mailbox_id=mailbox.id,
                          pin_id=pin.id, action="AUTH", channel_key="mailbox", state="queued",
                          requested_by_id=owner.id, created_at=utcnow() - timedelta(hours=1))
        job = Job(account_id=account.id, kind=deliveries.JOB_SEND, target=deliveries.job_target(gateway.id),
                  payload={"command_id": str(command.id)}, state="failed", attempts=12, max_attempts=12,
                  last_error="StreamIoT unavailable: 503 Service Unavailable",
                  created_at=utcnow() - timedelta(hours=1), finished_at=utcnow() - timedelta(minutes=5))
        db.session.add_all([command, job])
        db.session.flush()
        command.job_id = job.id
        pin.command_id = command.id
        deliveries.give_up(command.id, "Not delivered: StreamIoT was unavailable for all 12 attempts.")
        db.session.commit()
        return command.id


def test_staff_requeue_a_failed_pin_delivery_in_the_browser(live_server, page, shot):
    app = live_server.app
    command_id = _household_with_a_failed_pin(app)

    # 1. The staff account exists only through the command line, which prints a link.
    result = app.test_cli_runner().invoke(args=["staff", "create", "sam@support.example", "--name", "Sam"])
    assert result.exit_code == 0, result.output
    link = re.search(r"(https?://\S+/support/set-password/\S+)", result.output).group(1)
    page.goto(live_server.url + urlsplit(link).path)
    page.fill("#password", STAFF_PASSWORD)
    page.fill("#confirm", STAFF_PASSWORD)
    shot("support-01-set-password")
    page.click("main button[type=submit]")
    page.wait_for_url("**/login")

    # 2. Log in with the password; the console asks for an authenticator app first.
    page.fill("#email", "sam@support.example")
    page.fill("#password", STAFF_PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url("**/support/enrol**")
    assert page.locator(".qr svg").is_visible()
    secret = page.text_content("#totp-secret").replace(" ", "")
    shot("support-02-enrol-totp")
    page.fill("#code", pyotp.TOTP(secret).now())
    page.click("main button[type=submit]")
    page.wait_for_selector("#recovery-codes")
    codes = page.locator("#recovery-codes code").all_text_contents()
    assert len(codes) == 10
    shot("support-03-recovery-codes")
    page.click("text=I have saved them")
    page.wait_for_url("**/support/")

    # 3. Find the household by its gateway's name.
    page.fill("#q", "Porch hub")
    page.press("#q", "Enter")
    page.wait_for_selector("#results >> text=Lindenweg 7")
    shot("support-04-search")
    page.click("#results >> text=Lindenweg 7")
    page.wait_for_url("**/support/households/**")

    # 4. The failed delivery, with its reason and spent attempts; never the digits.
    row = page.locator(f"#command-{command_id}")
    assert "Failed" in row.text_content()
    assert "StreamIoT was unavailable for all 12 attempts" in row.text_content()
    assert "12 of 12" in row.text_content()
    assert "58203917" not in visible_text(page.content())
    shot("support-05-household-failed-delivery")

    # 5. Requeue it; the worker sends it, the virtual gateway answers, the page updates itself.
    row.locator("button", has_text="Requeue").click()
    page.wait_for_selector("text=Requeued the delivery of PIN “Grandma”")
    page.locator(f"#command-{command_id} >> text=Confirmed on the box").wait_for(timeout=45_000)
    assert "58203917" not in visible_text(page.content())
    shot("support-06-household-requeued-confirmed")

    # 6. The household reads who looked and what they did.
    page.click("text=Log out")
    page.fill("#email", "olga@example.com")
    page.fill("#password", PASSWORD)
    page.click("main button[type=submit]")
    page.goto(live_server.url + "/activity")
    log = page.text_content("main")
    assert "Support (Sam)" in log
    assert "Viewed your household in the support console." in log
    assert "Requeued the delivery of PIN “Grandma”." in log
    shot("support-07-household-activity-log")

    # 7. Staff log in again: this time the console asks for a code (the next 30-second step;
    # the one used at enrolment is spent).
    page.click("text=Log out")
    page.fill("#email", "sam@support.example")
    page.fill("#password", STAFF_PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url("**/support/verify**")
    shot("support-08-verify")
    page.fill("#code", pyotp.TOTP(secret).at(time.time() + 30))
    page.click("main button[type=submit]")
    page.wait_for_url("**/support/")
    assert page.locator("#q").is_visible()
    assert page.console_errors == []
