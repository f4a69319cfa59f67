"""The access matrix of the API, route by route (tests/access/api.py): no token, a revoked
or an expired one gets 401; a token without the route's scope gets 403 and changes nothing;
household B's token gets 404 on every id of household A and changes nothing; a plain
member's token gets 403 on owners' routes; a session cookie is no token."""
from datetime import timedelta

import pytest
from flask import url_for

from portal.extensions import db
from portal.models import Membership, utcnow
from portal.services import api_tokens
from tests.access import all_routes
from tests.plugins.accounts import PASSWORD, Auth

pytestmark = pytest.mark.rollback

API_ROUTES = [r for r in all_routes() if r.access == "api"]
ALL_SCOPES = ["read", "manage", "pins", "unlock"]


def _cases(predicate=lambda r: True):
    return [pytest.param(r, id=r.endpoint) for r in API_ROUTES if predicate(r)]


def _url(app, world, route, household="a"):
    values = {name: world.id_of(key, household) for name, key in route.args.items()}
    with app.test_request_context():
        return url_for(route.endpoint, **values)


def _body(world, route, household="a"):
    def fill(value):
        if isinstance(value, str) and value.startswith("@"):
            return world.id_of(value[1:], household)
        if isinstance(value, list):
            return [fill(v) for v in value]
        return value

    return {k: fill(v) for k, v in route.data.items()} if route.data else None


def _token(world, household="a", who="owner", scopes=ALL_SCOPES, **kwargs):
    side = getattr(world, household)
    membership = db.session.get(Membership, (side["owner_membership"] if who == "owner" else side["membership"]).id)
    _token_row, secret = api_tokens.create_token(membership, side[who], name="test", scopes=scopes, **kwargs)
    return secret


def _call(app, world, route, secret=None, household="a", client=None):
    client = client or app.test_client()
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    if route.methods[0] in ("PATCH", "PUT", "DELETE"):
        headers["If-Match"] = "*"
    return client.open(_url(app, world, route, household), method=route.methods[0], headers=headers,
                       json=_body(world, route, household) if route.methods[0] in ("POST", "PATCH", "PUT") else None)


def _is_problem(response, status):
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:300])
    assert response.mimetype == "application/problem+json"
    assert response.json["status"] == status


def test_every_api_route_is_declared_with_its_scope(app):
    in_app = {(rule.endpoint, m) for rule in app.url_map.iter_rules() if rule.endpoint.startswith("api.")
              for m in rule.methods - {"HEAD", "OPTIONS"}}
    listed = {(r.endpoint, r.methods[0]) for r in API_ROUTES}
    assert in_app == listed
    for route in API_ROUTES:
        assert route.scope == ("read" if route.methods[0] == "GET" else route.scope)
        assert route.scope in ALL_SCOPES


@pytest.mark.parametrize("route", _cases())
def test_no_token_gets_401(app, world, route):
    before = world.snapshot("a")
    response = _call(app, world, route)
    _is_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert world.snapshot("a") == before


@pytest.mark.parametrize("route", _cases())
def test_revoked_and_expired_tokens_get_401(app, world, route, time_machine):
    revoked = _token(world)
    token_id = db.session.scalars(db.select(api_tokens.ApiToken).order_by(api_tokens.ApiToken.created_at.desc())).first().id
    api_tokens.revoke_token(db.session.get(Membership, world.a["owner_membership"].id), world.a["owner"], token_id)
    expiring = _token(world, expires_at=utcnow() + timedelta(days=1))
    before = world.snapshot("a")
    _is_problem(_call(app, world, route, revoked), 401)
    time_machine.move_to(utcnow() + timedelta(days=2), tick=False)
    _is_problem(_call(app, world, route, expiring), 401)
    assert world.snapshot("a") == before


@pytest.mark.parametrize("route", _cases(lambda r: r.methods[0] != "GET"))
def test_a_read_token_gets_403_on_every_write(app, world, route):
    secret = _token(world, scopes=["read"])
    before = world.snapshot("a")
    _is_problem(_call(app, world, route, secret), 403)
    assert world.snapshot("a") == before


@pytest.mark.parametrize("route", _cases(lambda r: r.methods[0] != "GET"))
def test_a_token_with_every_other_scope_gets_403(app, world, route):
    secret = _token(world, scopes=[s for s in ALL_SCOPES if s != route.scope])
    before = world.snapshot("a")
    _is_problem(_call(app, world, route, secret), 403)
    assert world.snapshot("a") == before


def _names_ids(route) -> bool:
    values = [x for v in route.data.values() for x in (v if isinstance(v, list) else [v])]
    return bool(route.args) or any(isinstance(v, str) and v.startswith("@") for v in values)


@pytest.mark.parametrize("route", _cases(_names_ids))
def test_household_b_gets_404_on_the_ids_of_a_and_nothing_changes(app, world, route):
    before = world.snapshot("a")
    response = _call(app, world, route, world.b["api_secret"], household="a")
    _is_problem(response, 404)
    assert world.snapshot("a") == before


@pytest.mark.parametrize("route", _cases(lambda r: r.owners_only))
def test_a_plain_members_token_gets_403_on_owners_routes(app, world, route):
    secret = _token(world, who="member")
    before = world.snapshot("a")
    _is_problem(_call(app, world, route, secret), 403)
    assert world.snapshot("a") == before


@pytest.mark.parametrize("route", _cases(lambda r: r.methods[0] == "GET"))
def test_household_b_reads_only_its_own(app, world, route):
    response = _call(app, world, route, world.b["api_secret"], household="b")
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    body = response.get_data(as_text=True)
    for secret in ("Household A", world.a["owner"].email, world.a["member"].email, world.id_of("gateway"),
                   world.id_of("mailbox")):
        assert secret not in body


@pytest.mark.parametrize("route", _cases(lambda r: r.methods[0] == "GET"))
def test_a_logged_in_session_is_not_a_token(app, world, route):
    auth = Auth(app.test_client())
    assert auth.login(world.a["owner"].email, PASSWORD).status_code == 302
    _is_problem(_call(app, world, route, client=auth.client), 401)


def test_leaving_or_being_removed_revokes_the_members_tokens(app, world):
    from portal.services import members

    secret = _token(world, who="member")
    assert _call(app, world, _cases(lambda r: r.endpoint == "api.household")[0].values[0], secret).status_code == 200
    owner_membership = db.session.get(Membership, world.a["owner_membership"].id)
    members.remove_member(owner_membership, world.a["owner"], world.a["membership"].id)
    _is_problem(_call(app, world, _cases(lambda r: r.endpoint == "api.household")[0].values[0], secret), 401)
    mine = [t for t in api_tokens.list_tokens(owner_membership)]
    assert all(t.revoked_at is None for t in mine), "the owner's own tokens keep working"
