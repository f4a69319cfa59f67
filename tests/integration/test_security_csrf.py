"""CSRF on every state-changing request (forms and htmx alike), and no state change on GET."""
import pytest
from flask import url_for

from tests.access import all_routes
from tests.plugins.accounts import PASSWORD, Auth

pytestmark = pytest.mark.rollback

ROUTES = all_routes()


def _url(app, world, route):
    values = {name: world.id_of(key) for name, key in route.args.items()}
    values.update(route.fixed_args)
    with app.test_request_context():
        return url_for(route.endpoint, **values)


def _owner_of_a(app, world) -> Auth:
    auth = Auth(app.test_client())
    assert auth.login(world.a["owner"].email, PASSWORD).status_code == 302
    auth.client.get("/settings")  # the session now holds a real CSRF token
    return auth


@pytest.mark.parametrize(
    "route,method",
    [pytest.param(r, m, id=f"{r.endpoint}-{m}") for r in ROUTES for m in r.methods if m != "GET" and not r.csrf_exempt],
)
def test_a_forged_csrf_token_is_refused_and_changes_nothing(app, world, route, method):
    auth = _owner_of_a(app, world)
    before = world.snapshot("a")
    url = _url(app, world, route)
    as_form = auth.client.open(url, method=method, data={**route.data, "csrf_token": "forged"})
    as_htmx = auth.client.open(
        url, method=method, data=dict(route.data), headers={"HX-Request": "true", "X-CSRFToken": "forged"}
    )
    without = auth.client.open(url, method=method, data=dict(route.data))
    # The API takes no CSRF token because a cookie never authenticates it: a forged request
    # carrying the member's cookie is simply not logged in.
    refused = 401 if route.access == "api" else 400
    assert (as_form.status_code, as_htmx.status_code, without.status_code) == (refused, refused, refused)
    assert world.snapshot("a") == before


@pytest.mark.parametrize(
    "route",
    [
        r
        for r in ROUTES
        if "GET" in r.methods and r.endpoint.split(".")[0] in ("account", "members", "gateways", "mailboxes")
    ],
    ids=lambda r: r.endpoint,
)
def test_get_changes_nothing(app, world, route):
    auth = _owner_of_a(app, world)
    before = world.snapshot("a")
    auth.client.get(_url(app, world, route))
    assert world.snapshot("a") == before
