"""Security headers on every answer: pages, error pages, htmx partials, CSV, redirects."""
import pytest

from config import ProductionConfig
from portal import create_app
from portal.crypto import generate_data_key
from tests.plugins.accounts import PASSWORD

pytestmark = pytest.mark.rollback

HTMX = {"HX-Request": "true"}


def _assert_headers(response):
    csp = response.headers["Content-Security-Policy"]
    script_src = next(part for part in csp.split(";") if part.strip().startswith("script-src"))
    assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] in ("same-origin", "strict-origin-when-cross-origin", "no-referrer")
    assert response.headers["X-Frame-Options"] == "DENY"


@pytest.fixture
def logged_in(auth, make_household):
    make_household("owner@example.com", "Elm Street")
    auth.login("owner@example.com", PASSWORD)
    return auth


@pytest.mark.parametrize("path", ["/", "/login", "/register", "/members/join/unknown-token", "/nowhere"])
def test_public_pages_and_error_pages_carry_the_headers(client, path):
    _assert_headers(client.get(path))


@pytest.mark.parametrize("path", ["/settings", "/members/", "/activity", "/activity.csv", "/no-household", "/nowhere"])
def test_member_pages_carry_the_headers(logged_in, path):
    _assert_headers(logged_in.client.get(path))


@pytest.mark.parametrize("path", ["/members/", "/activity"])
def test_htmx_partials_carry_the_headers(logged_in, path):
    response = logged_in.client.get(path, headers=HTMX)
    assert "<html" not in response.get_data(as_text=True)
    _assert_headers(response)


def test_csrf_failure_405_401_and_429_carry_the_headers(app, logged_in, client):
    _assert_headers(logged_in.client.post("/members/invite", data={"email": "x@example.com", "csrf_token": "forged"}))
    _assert_headers(logged_in.client.get("/logout"))
    _assert_headers(app.test_client().get("/members/", headers=HTMX))
    other = app.test_client()
    from tests.plugins.accounts import csrf_from

    token = csrf_from(other.get("/login").get_data(as_text=True))
    for _ in range(6):
        response = other.post("/login", data={"email": "owner@example.com", "password": "nope nope nope", "csrf_token": token})
    assert response.status_code == 429
    _assert_headers(response)


def test_production_adds_hsts_and_serves_htmx_itself(tmp_path):
    """Production pages load htmx from the portal's own origin (a pinned local copy): no
    third party sees every page view, and pages work where a CDN can't be reached."""
    app = create_app(
        ProductionConfig,
        SECRET_KEY="x" * 32,
        IOTLOCK_DATA_KEY=generate_data_key(),
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'p.sqlite3'}",
        INSTANCE_DIR=tmp_path,
        STREAMIOT_EMULATOR_DB=str(tmp_path / "e.sqlite3"),
    )
    response = app.test_client().get("/login")
    assert "max-age=" in response.headers["Strict-Transport-Security"]
    _assert_headers(response)
    html = response.get_data(as_text=True)
    assert f'<script src="/static/vendor/htmx-{ProductionConfig.HTMX_VERSION}.min.js">' in html
    assert "jsdelivr" not in html and "jsdelivr" not in response.headers["Content-Security-Policy"]
    assert "script-src 'self';" in response.headers["Content-Security-Policy"]


def test_pages_have_no_inline_script_or_style(logged_in):
    for path in ("/settings", "/members/", "/activity", "/no-household"):
        html = logged_in.client.get(path).get_data(as_text=True)
        assert "style=" not in html, path
        assert "<script>" not in html and "onclick=" not in html, path
