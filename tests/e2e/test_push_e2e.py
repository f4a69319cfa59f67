"""Real Chromium: the devices page registers the service worker for the whole site and offers
"Turn on alerts on this device"; a push delivered to the worker (through DevTools, as no
real push service is reachable here) shows "IoTLock" with the alert's summary and link."""
import json
import re
import time

import pytest

from portal.services import accounts
from tests.plugins.accounts import PASSWORD
from tests.plugins.browser import log_in

pytestmark = pytest.mark.e2e


@pytest.fixture
def live_server_overrides():
    return {"EMBEDDED_WORKER": False, "VIRTUAL_GATEWAYS": False}


def test_the_service_worker_shows_a_pushed_alert(live_server, page, shot):
    with live_server.app.app_context():
        accounts.register("pat@example.com", PASSWORD, "Birch Lane")
    page.context.grant_permissions(["notifications"], origin=live_server.url)
    cdp = page.context.new_cdp_session(page)
    registrations = []
    cdp.on("ServiceWorker.workerRegistrationUpdated", lambda event: registrations.extend(event["registrations"]))
    cdp.send("ServiceWorker.enable")

    log_in(page, live_server.url, "pat@example.com", PASSWORD)
    page.goto(live_server.url + "/settings")
    page.click("text=Your devices…")
    page.wait_for_url(re.compile(r".*/push/$"))
    turn_on = page.get_by_role("button", name="Turn on alerts on this device")
    turn_on.wait_for(state="visible")
    assert page.text_content("[data-push-status]") == "This browser does not get alerts."
    assert not page.get_by_role("button", name="Turn off alerts on this device").is_visible()
    scope = page.evaluate("navigator.serviceWorker.ready.then(r => r.scope)")
    assert scope == live_server.url + "/"
    shot("push-devices")

    # DevTools tells of a registration once per change: one id, however many times.
    [registration_id] = {r["registrationId"] for r in registrations if r["scopeURL"] == scope and not r["isDeleted"]}
    alert = {"id": "a1", "kind": "opened", "summary": "Front mailbox opened by Pat", "household": "Birch Lane",
             "box": "Front mailbox", "occurred_at": "2026-12-04T18:00:00Z", "url": live_server.url + "/activity"}
    expected = [{"title": "IoTLock", "body": "Front mailbox opened by Pat (Birch Lane)",
                 "url": live_server.url + "/activity"}]

    def deliver():
        cdp.send("ServiceWorker.deliverPushMessage", {"origin": live_server.url + "/",
                                                     "registrationId": registration_id,
                                                     "data": json.dumps(alert)})

    # A push service delivers a message again until the worker takes it. Once, in a CI run on a
    # busy machine, no notification came of DevTools' first delivery within 10 s (not seen in
    # 16 runs alone or beside two busy cores), so the push is delivered again, as a push
    # service would, at most three times.
    shown: list = []
    for _attempt in range(3):
        deliver()
        shown = _notifications(page, seconds=8)
        if shown:
            break
    assert shown == expected
    # Delivered once more (a push service's retry), the alert shows once, not twice: its id is
    # the notification's tag.
    deliver()
    page.wait_for_timeout(300)
    assert _notifications(page, seconds=8) == expected
    assert page.console_errors == []


def _notifications(page, *, seconds: float) -> list:
    """The notifications the worker shows, asked until there are some or `seconds` pass. (The
    worker shows one after the push is handed to it; a wait_for_function on the promise once
    returned before it was shown, and read [].)"""
    shown: list = []
    deadline = time.monotonic() + seconds
    while not shown and time.monotonic() < deadline:
        shown = page.evaluate("""navigator.serviceWorker.ready.then(r => r.getNotifications())
            .then(list => list.map(n => ({title: n.title, body: n.body, url: n.data.url})))""")
        if not shown:
            page.wait_for_timeout(50)
    return shown
