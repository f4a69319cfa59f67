"""Real Chromium can register a household on the live portal."""
import pytest

pytestmark = pytest.mark.e2e


@pytest.fixture
def live_server_overrides():
    return {"EMBEDDED_WORKER": False, "VIRTUAL_GATEWAYS": False}


def test_register_in_browser(live_server, page, shot):
    page.goto(live_server.url + "/register")
    page.fill("#email", "e2e@example.com")
    page.fill("#password", "a long enough password")
    page.fill("#household_name", "Browser House")
    shot("register")
    page.click("button[type=submit]")
    page.wait_for_url("**/gateways/")
    assert "Browser House" in page.text_content("body")
    shot("dashboard-empty")
    assert page.console_errors == []
