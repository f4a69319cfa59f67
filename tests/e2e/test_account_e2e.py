"""Real Chromium: forgot password (the email through the worker and a real SMTP server),
the reset page, the sole owner's refusal in view on the members page, and deleting the
account. Screenshots of each new page at 390 px and desktop width."""
import re
import time

import pytest

from tests.plugins.mail import mail_settings

pytestmark = pytest.mark.e2e

OLD_PASSWORD = "owner has a long passphrase"
NEW_PASSWORD = "a brand new long passphrase"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1200, "height": 860}


@pytest.fixture
def live_server_overrides(smtp_inbox):
    return {"EMBEDDED_WORKER": True, "VIRTUAL_GATEWAYS": False, **mail_settings(smtp_inbox)}


def _both_widths(page, shot, name):
    for label, size in (("390", PHONE), ("desktop", DESKTOP)):
        page.set_viewport_size(size)
        shot(f"{name}-{label}")
    page.set_viewport_size(DESKTOP)


def _wait_for_mail(inbox, seconds=15):
    deadline = time.monotonic() + seconds
    while not inbox.messages and time.monotonic() < deadline:
        time.sleep(0.1)
    assert inbox.messages, "no email arrived"
    return inbox.text_of(inbox.messages[-1])


def test_forgot_password_reset_members_refusal_and_delete_account(live_server, page, shot, smtp_inbox):
    url = live_server.url
    page.goto(url + "/register")
    page.fill("#email", "owner@example.com")
    page.fill("#password", OLD_PASSWORD)
    page.fill("#household_name", "Elm Street")
    page.click("button[type=submit]")
    page.wait_for_url("**/gateways/")
    page.click("text=Log out")
    page.wait_for_url("**/login")

    page.click("text=Forgot your password?")
    page.wait_for_url("**/password/forgot")
    _both_widths(page, shot, "password-forgot")
    page.fill("#email", "owner@example.com")
    page.click("text=Email me a link")
    page.wait_for_url("**/password/forgot/sent")
    assert "If an account exists for that address, we sent a link" in page.text_content("main")
    _both_widths(page, shot, "password-forgot-sent")

    body = _wait_for_mail(smtp_inbox)
    link = re.search(r"http://\S+/password/reset/[A-Za-z0-9_-]+", body).group(0)
    page.goto(link)
    assert "owner@example.com" in page.text_content("main")
    _both_widths(page, shot, "password-reset")
    page.fill("#password", "password123")
    page.click("text=Save new password")
    assert "one of the most common ones" in page.text_content("main")
    _both_widths(page, shot, "password-reset-refused")
    page.fill("#password", NEW_PASSWORD)
    page.click("text=Save new password")
    page.wait_for_url("**/login")
    assert "Log in with your new password" in page.text_content("main")
    page.goto(link)
    assert "expired or was already used" in page.text_content("main")
    _both_widths(page, shot, "password-reset-used")

    page.goto(url + "/login")
    page.fill("#email", "owner@example.com")
    page.fill("#password", NEW_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/gateways/")

    # The only owner steps down: the refusal is scrolled into view, on a phone too.
    page.set_viewport_size(PHONE)
    page.goto(url + "/members/")
    page.click("text=Step down as owner")
    notice = page.locator("#members-notice")
    notice.wait_for()
    assert "You are the only owner" in notice.text_content()
    page.wait_for_function(
        "() => { const r = document.querySelector('#members-notice').getBoundingClientRect();"
        " return r.top >= -1 && r.bottom <= window.innerHeight; }"
    )
    page.screenshot(path=str(shot("members-sole-owner-refused-390").with_name("members-sole-owner-refused-390-viewport.png")))
    page.set_viewport_size(DESKTOP)

    page.goto(url + "/settings/delete")
    assert "you are its only member, so it is closed" in page.text_content("main")
    _both_widths(page, shot, "account-delete")
    page.fill("#password", NEW_PASSWORD)
    page.fill("#confirm", "delete")
    page.get_by_role("button", name="Delete my account").click()
    assert "Type “delete my account” to confirm" in page.text_content("main")
    _both_widths(page, shot, "account-delete-refused")
    page.fill("#password", NEW_PASSWORD)
    page.fill("#confirm", "delete my account")
    page.get_by_role("button", name="Delete my account").click()
    page.wait_for_url("**/login")
    assert "Your account owner@example.com is deleted" in page.text_content("main")
    shot("account-deleted-desktop")
    assert [e for e in page.console_errors if "410 (GONE)" not in e] == []  # the used link: expected
