"""Browser fixtures: the portal served on a real port, and Playwright driving Debian's
Chromium (/usr/bin/chromium via executable_path; never `playwright install`)."""
import os
import re
import socket
import threading
import time
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from portal.extensions import db

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    def __init__(self, app, with_worker: bool):
        self.app = app
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = make_server("127.0.0.1", self.port, app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._stop_worker = None
        self.with_worker = with_worker

    def start(self):
        self._thread.start()
        if self.with_worker:
            from portal.jobs.worker import start_in_background

            self._stop_worker = start_in_background(self.app)
        return self

    def stop(self):
        if self._stop_worker:
            self._stop_worker()
        self._server.shutdown()
        self._thread.join(timeout=5)


@pytest.fixture
def live_server_overrides():
    """Settings for the live server's app; a test module may override this fixture."""
    return {}


@pytest.fixture
def live_server(tmp_path, request, live_server_overrides):
    """The whole product on a free port: portal, worker thread and (when on) virtual gateways."""
    from tests.conftest import _make_app

    overrides = {
        "EMBEDDED_WORKER": True,
        "VIRTUAL_GATEWAYS": True,
        "RAISE_ON_LAZY_LOAD": True,
        "REPLY_POLL_SECONDS": 0.3,
        "IDLE_POLL_SECONDS": 1.0,
    }
    overrides.update(live_server_overrides)
    app = _make_app("sqlite", tmp_path, request, **overrides)
    server = LiveServer(app, with_worker=overrides["EMBEDDED_WORKER"]).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        from tests.conftest import skip_or_fail

        skip_or_fail(f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 860})
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.console_errors = []
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
    yield page
    context.close()


@pytest.fixture
def shot(page):
    """shot("name") saves a full-page screenshot under tests/artifacts/ and returns its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def take(name: str, target=None) -> Path:
        path = ARTIFACTS / f"{name}.png"
        (target or page).screenshot(path=str(path), full_page=True)
        return path

    return take


def log_in(page, base: str, email: str, password: str) -> None:
    """Log in through the real form and land on the dashboard."""
    page.goto(base + "/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/gateways/$"))


def register(page, base: str, email: str, password: str, household: str) -> None:
    """Register a household through the real form and land on its dashboard."""
    page.goto(base + "/register")
    page.fill("#email", email)
    page.fill("#password", password)
    page.fill("#household_name", household)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/gateways/$"))


def wait_until(app, check, what: str, seconds: float = 60) -> None:
    """Until `check()` holds in the live server's database (the worker gets there by itself)."""
    with app.app_context():
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            db.session.expire_all()
            if check():
                return
            time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")
