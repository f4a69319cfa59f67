"""The access matrix: every route is listed with who may use it; visitors are sent to log in;
a member of household B gets 404 for every id of household A, and nothing of A changes."""
import pytest
from flask import url_for

from tests.access import all_routes
from tests.plugins.accounts import PASSWORD, Auth

pytestmark = pytest.mark.rollback

ROUTES = all_routes()
SKIP_METHODS = {"HEAD", "OPTIONS"}


def _cases(predicate):
    return [
        pytest.param(route, method, id=f"{route.endpoint}-{method}")
        for route in ROUTES
        if predicate(route)
        for method in route.methods
    ]


def _url(app, world, route, household="a"):
    values = {name: world.id_of(key, household) for name, key in route.args.items()}
    values.update(route.fixed_args)
    with app.test_request_context():
        return url_for(route.endpoint, **values)


def _request(auth: Auth, method: str, url: str, route, csrf_page: str):
    if method == "GET":
        return auth.client.get(url)
    data = dict(route.data)
    data["csrf_token"] = auth.csrf(csrf_page)
    return auth.client.open(url, method=method, data=data)


def _login(app, user) -> Auth:
    auth = Auth(app.test_client())
    response = auth.login(user.email, PASSWORD)
    assert response.status_code == 302, "could not log in"
    return auth


def test_every_route_of_the_app_is_in_the_matrix(sqlite_app):
    app = sqlite_app
    listed = {(route.endpoint, method) for route in ROUTES for method in route.methods}
    in_app = {
        (rule.endpoint, method)
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods - SKIP_METHODS
    }
    missing = sorted(in_app - listed)
    assert not missing, "routes missing from tests/access/<area>.py: " + ", ".join(f"{m} {e}" for e, m in missing)
    stale = sorted(listed - in_app)
    assert not stale, "tests/access lists routes the app does not have: " + ", ".join(f"{m} {e}" for e, m in stale)


def test_matrix_entries_name_known_access_levels_and_world_keys(world):
    for route in ROUTES:
        assert route.access in {"public", "login", "member", "owner", "staff", "api"}, route
        assert (route.access == "api") == bool(route.scope), f"{route.endpoint}: a scope is for API routes only"
        for key in route.args.values():
            assert key in world.a, f"{route.endpoint}: the world has no {key!r}"


@pytest.mark.parametrize("route,method", _cases(lambda r: r.access not in ("public", "api")))
def test_visitors_are_sent_to_log_in(app, world, route, method):
    auth = Auth(app.test_client())
    response = _request(auth, method, _url(app, world, route), route, csrf_page="/login")
    assert response.status_code == 302, f"{method} {route.endpoint} answered {response.status_code}"
    assert response.headers["Location"].split("?")[0] in ("/login", "http://localhost/login")


@pytest.mark.parametrize("route,method", _cases(lambda r: r.args and r.access in ("member", "owner")))
def test_owner_of_another_household_gets_404_and_nothing_changes(app, world, route, method):
    before = world.snapshot("a")
    auth = _login(app, world.b["owner"])
    response = _request(auth, method, _url(app, world, route), route, csrf_page="/settings")
    assert response.status_code == 404, f"{method} {route.endpoint} with A's ids answered {response.status_code}"
    assert world.snapshot("a") == before


@pytest.mark.parametrize("route,method", _cases(lambda r: r.args and r.access in ("member", "owner")))
def test_member_of_another_household_gets_404_or_403_and_nothing_changes(app, world, route, method):
    before = world.snapshot("a")
    auth = _login(app, world.b["member"])
    response = _request(auth, method, _url(app, world, route), route, csrf_page="/settings")
    expected = (404, 403) if route.access == "owner" else (404,)
    assert response.status_code in expected, f"{method} {route.endpoint} answered {response.status_code}"
    assert world.snapshot("a") == before


@pytest.mark.parametrize("route,method", _cases(lambda r: r.access == "owner"))
def test_plain_member_gets_403_on_owner_routes_and_nothing_changes(app, world, route, method):
    before = world.snapshot("a")
    auth = _login(app, world.a["member"])
    response = _request(auth, method, _url(app, world, route), route, csrf_page="/settings")
    assert response.status_code == 403, f"{method} {route.endpoint} answered {response.status_code}"
    assert world.snapshot("a") == before


@pytest.mark.parametrize(
    "route", [r for r in ROUTES if "GET" in r.methods and not r.args and r.access in ("member", "owner", "login")],
    ids=lambda r: r.endpoint,
)
def test_pages_of_household_b_show_nothing_of_household_a(app, world, route):
    auth = _login(app, world.b["owner"])
    # A form's POST URL answers GET with a redirect to the form's page: that page is checked.
    response = auth.client.get(_url(app, world, route, household="b"), follow_redirects=True)
    assert response.status_code == 200, f"{route.endpoint} answered {response.status_code}"
    body = response.get_data(as_text=True)
    for secret in ("Household A", world.a["owner"].email, world.a["member"].email, world.a["invite"].email,
                   world.a["gateway"].name):
        assert secret not in body, f"{route.endpoint} shows {secret!r} of household A"


def test_switching_to_another_household_is_404(app, world):
    auth = _login(app, world.b["member"])
    response = auth.post("/household/switch", {"account_id": world.id_of("account")})
    assert response.status_code == 404
    assert "Household B" in auth.client.get("/members/").get_data(as_text=True)
