"""Real Chromium: every household and support page (and the API's reference) at 390x844 (a phone) and 1280x800 (a
desk), in a household with 3 gateways, 10 boxes and PINs with 60-character labels: no
horizontal scroll, 44 px tap targets on the phone, a screenshot of each under
tests/artifacts/pages/, and axe-core (bundled by axe-playwright-python, run in the page
through Playwright's evaluate, nothing fetched) with no critical or serious violation.

One live server for the module, one browser page reused for every page."""
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
import sqlalchemy as sa
from axe_playwright_python.sync_playwright import Axe
from werkzeug.serving import make_server

from portal import crypto
from portal.extensions import db
from portal.models import Mailbox, Membership, WebhookAttempt, WebhookDelivery, WebhookEndpoint, utcnow
from portal.services import alerts, api_tokens, webhooks
from portal.services import staff as staff_service
from tests.plugins.accounts import PASSWORD
from tests.plugins.browser import ARTIFACTS, log_in
from tests.plugins.showcase import build_showcase
from tests.plugins.support import fresh_code

VIEWPORTS = {"phone": (390, 844), "desk": (1280, 800)}
STAFF_EMAIL = "sam@iotlock.example"
# Targets smaller than 44 px are fine only inside running text (links in a sentence).
SMALL_TARGETS = """() => [...document.querySelectorAll(
    'main .btn, main button, main select, main input:not([type=hidden]):not([type=checkbox]):not([type=radio]),'
    + ' header .btn, header button, header select, .main-nav a')]
  .filter(e => e.offsetParent !== null)
  .map(e => [e.textContent.trim() || e.getAttribute('aria-label') || e.name || e.tagName, e.getBoundingClientRect().height])
  .filter(([_, h]) => h < 43.5)"""


@dataclass
class Site:
    url: str
    app: object
    household: object
    blocked: list = field(default_factory=list)


@pytest.fixture(scope="module")
def site(tmp_path_factory, request) -> Iterator[Site]:
    from tests.conftest import _make_app

    tmp = tmp_path_factory.mktemp("pages")
    # Three boxes a gateway on the dashboard: the showcase's biggest gateway shows its
    # "See all ... boxes" link in the tour; four PINs a page: its first box's six PINs take
    # two pages, with the links between them.
    app = _make_app("sqlite", tmp, request, EMBEDDED_WORKER=False, VIRTUAL_GATEWAYS=True,
                    RAISE_ON_LAZY_LOAD=True, DASHBOARD_BOXES_PER_GATEWAY=3, BOX_PINS_PER_PAGE=4)
    with app.app_context():
        household = build_showcase("Lindenweg 7 with a household name long enough to wrap")
        user, token = staff_service.create_staff(STAFF_EMAIL, "Sam")
        staff_service.set_password_from_link(token, PASSWORD)
        household.staff_secret = staff_service.begin_enrolment(user).secret
        user.totp_enrolled_at = utcnow()
        household.staff_id = user.id
        household.webhook = _webhook_with_a_log(household.account_id)
        household.unsubscribe = _alerts_in_the_bell(household.account_id)
        db.session.commit()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Site(f"http://127.0.0.1:{server.server_port}", app, household)
    server.shutdown()
    thread.join(timeout=5)


def _webhook_with_a_log(account_id):
    """A webhook with a long URL and a delivery log: one message delivered after failures
    (long answers), one given up."""
    endpoint = WebhookEndpoint(
        id=uuid.uuid4(), account_id=account_id, description="Home Assistant in the cellar, behind the router",
        url="https://home-assistant.lindenweg-7.example.com/api/webhook/iotlock-alerts-0123456789abcdef",
        kinds=list(webhooks.KINDS)[:9], secret_enc=b"",
    )
    endpoint.secret_enc = crypto.encrypt(webhooks.generate_secret(), table="webhook_endpoints", column="secret_enc",
                                         row_id=endpoint.id)
    db.session.add(endpoint)
    db.session.flush()
    now = utcnow()
    for state, codes in (("delivered", (500, None, 200)), ("given_up", (503,))):
        delivery = WebhookDelivery(id=uuid.uuid4(), account_id=account_id, endpoint_id=endpoint.id,
                                   message_id=f"msg_{uuid.uuid4().hex}", event_type="alert.parcel_delivered",
                                   payload="{}", state=state, attempts=len(codes),
                                   last_error="The endpoint answered 503 (gave up after retrying for 24 h)")
        db.session.add(delivery)
        db.session.flush()
        for i, code in enumerate(codes):
            db.session.add(WebhookAttempt(
                account_id=account_id, delivery_id=delivery.id, at=now - timedelta(minutes=10 - i), status_code=code,
                ok=code == 200, result="Delivered" if code == 200 else (
                    f"The endpoint answered {code}" if code else "No answer within 5 s"),
                response_snippet="upstream connect error or disconnect/reset before headers. " * 4 if code else None))
    return endpoint.id


def _alerts_in_the_bell(account_id) -> str:
    """Alerts through the real fan-out (the owner's bell: some unread, one read); returns an
    unsubscribe link's token for the owner."""
    owner = db.session.scalars(sa.select(Membership).where(Membership.account_id == account_id,
                                                           Membership.role == "owner")).one()
    box = db.session.scalars(sa.select(Mailbox).where(Mailbox.account_id == account_id)
                             .order_by(sa.func.length(Mailbox.name).desc())).first()
    alerts.raise_alert(account_id, "gateway_offline", "Gateway “Porch” is offline: last heard Fri 18:02")
    alerts.raise_alert(account_id, "parcel_delivered", f"{box.name}: Parcel delivered (“DHL Express, order 4711-0815”)",
                       mailbox_id=box.id)
    db.session.flush()
    alerts.mark_read(owner)
    alerts.raise_alert(account_id, "wrong_pins", f"{box.name}: Several wrong PINs were entered", mailbox_id=box.id)
    alerts.raise_alert(account_id, "member_joined", "robin@example.com joined the household")
    alerts.set_quiet_hours(owner, "22:00", "07:00")
    api_tokens.create_token(owner, owner.user, name="Home Assistant on the cellar server, courier codes per order",
                            scopes=["read", "pins"], expires_at=utcnow() + timedelta(days=90))
    return alerts.unsubscribe_token(owner.user_id, account_id, "battery_low")


@pytest.fixture(scope="module")
def tab(browser, site):
    context = browser.new_context(viewport={"width": 390, "height": 844})
    context.set_default_timeout(15_000)

    def outside(route):
        site.blocked.append(route.request.url)
        route.abort()

    context.route(re.compile(r"^(?!http://127\.0\.0\.1[:/])"), outside)  # nothing from a CDN or anywhere else
    page = context.new_page()
    yield page
    context.close()


def _pages(h) -> dict[str, dict[str, str]]:
    """The pages in groups, one test each, so that the run's workers can share the sweep."""
    gw_ok, gw_failed, gw_removing = h.gateways
    long_box, front, _safe, provisioning, failed, removing = h.boxes[:6]
    return {
        "gateways": {
            "dashboard": "/gateways/",
            "gateway": f"/gateways/{gw_ok}",
            "gateway-failed": f"/gateways/{gw_failed}",
            "gateway-removing": f"/gateways/{gw_removing}",
            "gateway-add": "/gateways/new",
            "gateway-rename": f"/gateways/{gw_ok}/rename",
            "gateway-remove": f"/gateways/{gw_ok}/remove",
            "gateway-settings": f"/gateways/{gw_ok}/settings",
            "gateway-replace-keys": f"/gateways/{gw_ok}/replace-keys",
        },
        "boxes": {
            "box": f"/mailboxes/{long_box}",
            "box-pins-2": f"/mailboxes/{long_box}?pins=2",
            "box-front": f"/mailboxes/{front}",
            "box-provisioning": f"/mailboxes/{provisioning}",
            "box-failed": f"/mailboxes/{failed}",
            "box-removing": f"/mailboxes/{removing}",
            "box-reports": f"/mailboxes/{long_box}/box",
            "box-add": f"/mailboxes/new/{gw_ok}",
            "box-rename": f"/mailboxes/{long_box}/rename",
            "box-remove": f"/mailboxes/{long_box}/remove",
            "box-open": f"/mailboxes/{long_box}/unlock",
            "box-key": f"/mailboxes/{long_box}/key",
        },
        "household": {
            "members": "/members/",
            "activity": "/activity",
            "settings": "/settings",
            "webhooks": "/webhooks/",
            "webhooks-log": f"/webhooks/{h.webhook}/log",
            "push-devices": "/push/",
            "alerts": "/alerts/",
            "alerts-settings": "/alerts/settings",
            "alerts-settings-box": f"/alerts/settings?box={long_box}",
            "alerts-defaults": "/alerts/defaults",
            "alerts-unsubscribe": f"/alerts/unsubscribe/{h.unsubscribe}",
            "api-tokens": "/settings/api-tokens",
            "api-reference": "/api/v1/docs",
        },
        # The same household seen by staff (password, then the second factor).
        "support": {
            "support": "/support/",
            "support-search": "/support/?q=Lindenweg",
            "support-household": f"/support/households/{h.account_id}",
        },
    }


GROUPS = ["gateways", "boxes", "household", "support"]


def _check(page, site, name, path, results, axe) -> None:
    for viewport, (width, height) in VIEWPORTS.items():
        page.set_viewport_size({"width": width, "height": height})
        response = page.goto(site.url + path)
        assert response is not None and response.status < 400, (path, response and response.status)
        page.wait_for_load_state("load")
        widths = page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        if widths[0] > widths[1]:
            results["scroll"].append(f"{name} @{viewport}: {widths[0]} > {widths[1]}")
        if viewport == "phone":
            small = page.evaluate(SMALL_TARGETS)
            if small:
                results["small"].append(f"{name}: {small[:5]}")
        page.screenshot(path=str(ARTIFACTS / "pages" / f"{name}-{viewport}.png"), full_page=True)
        if viewport == "phone":  # the first screen, as a person sees it
            page.screenshot(path=str(ARTIFACTS / "pages" / f"{name}-{viewport}-top.png"))
        found = axe.run(page, options={"resultTypes": ["violations"]})
        for violation in found.response["violations"]:
            if violation["impact"] in ("critical", "serious"):
                targets = [n["target"] for n in violation["nodes"][:3]]
                results["axe"].append(f"{name} @{viewport}: {violation['id']} {violation['help']} {targets}")
        results["pages"] += 1


def _sign_in(tab, site, group: str) -> None:
    """A fresh sign-in for each group: the owner, or staff for support. Off the last page
    first: a poll of it after the cookies are gone is sent to the login page (HX-Redirect),
    a navigation that aborted the one to /login once."""
    tab.goto("about:blank")
    tab.context.clear_cookies()
    if group != "support":
        log_in(tab, site.url, site.household.owner_email, PASSWORD)
        return
    tab.goto(site.url + "/login")
    tab.fill("#email", STAFF_EMAIL)
    tab.fill("#password", PASSWORD)
    tab.click("main button[type=submit]")
    with site.app.app_context():
        code = fresh_code(site.household.staff_secret, site.household.staff_id)
    tab.goto(site.url + "/support/verify")
    tab.fill("#code", code)
    tab.click("main button[type=submit]")
    tab.wait_for_url(re.compile(r"/support/?$"))


def test_the_groups_hold_every_page_once(site):
    groups = _pages(site.household)
    assert list(groups) == GROUPS
    names = [name for pages in groups.values() for name in pages]
    assert len(names) == len(set(names)) == 37


@pytest.mark.parametrize("group", GROUPS)
def test_every_page_fits_a_phone_and_passes_axe(site, tab, group):
    (ARTIFACTS / "pages").mkdir(parents=True, exist_ok=True)
    axe = Axe()
    results: dict = {"scroll": [], "small": [], "axe": [], "pages": 0}
    _sign_in(tab, site, group)
    pages = _pages(site.household)[group]
    for name, path in pages.items():
        _check(tab, site, name, path, results, axe)

    print(f"{results['pages']} page views checked")
    assert results["pages"] == 2 * len(pages)
    assert not site.blocked, site.blocked
    assert not results["scroll"], results["scroll"]
    assert not results["small"], results["small"]
    assert not results["axe"], "\n".join(results["axe"])
