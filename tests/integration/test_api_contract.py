"""The API's contract: problem documents (never HTML under /api), bad input on every write
answered with the field at fault, Idempotency-Key, the rate limit, ETag/If-Match, cursors,
no CORS; and the API tokens page."""
from datetime import timedelta

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import ApiToken, Command, IdempotentRequest, Job, Membership, Pin, utcnow
from portal.services import api_tokens, housekeeping
from tests.plugins.accounts import PASSWORD, Auth, csrf_from

pytestmark = pytest.mark.rollback


@pytest.fixture
def api(app, world):
    """A client of household A's owner token (every scope)."""
    secret = world.a["api_secret"]

    class Client:
        def __init__(self):
            self.client = app.test_client()

        def __call__(self, method, path, json=None, headers=None, **kwargs):
            return self.client.open("/api/v1" + path, method=method, json=json,
                                    headers={"Authorization": f"Bearer {secret}", **(headers or {})}, **kwargs)

    return Client()


def _problem(response, status, field=None):
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:400])
    assert response.mimetype == "application/problem+json"
    body = response.json
    assert body["status"] == status and body["title"] and body["detail"] and body["type"]
    if field is not None:
        assert field in [e["field"] for e in body["errors"]], body
    return body


# --- problems -----------------------------------------------------------------------------

def test_unknown_routes_and_methods_under_the_api_are_problems_not_pages(api):
    _problem(api("GET", "/no-such-thing"), 404)
    _problem(api("GET", "/pins/not-a-uuid"), 404)
    response = api("PUT", "/household")
    _problem(response, 405)
    assert "GET" in response.headers["Allow"]


def test_a_body_that_is_not_json_is_a_problem(api):
    response = api("POST", "/gateways", data="{not json", headers={"Content-Type": "application/json"})
    assert response.status_code in (400, 422)
    assert response.mimetype == "application/problem+json"


# Each write with a body, and a body it refuses: the problem names the field.
BAD_INPUT = [
    ("POST", "/members/invites", {"email": "not an address"}, "email"),
    ("POST", "/members/invites", {}, "email"),
    ("PATCH", "/household", {"name": ""}, "name"),
    ("PATCH", "/household", {"time_zone": "Mars/Olympus"}, "time_zone"),
    ("PATCH", "/pins/{pin}", {"assigned_to": "00000000-0000-0000-0000-000000000000"}, "assigned_to"),
    ("POST", "/gateways", {"name": ""}, "name"),
    ("POST", "/gateways", {"name": "Hall", "protocol": "carrier-pigeon"}, "protocol"),
    ("POST", "/gateways", {"name": "Hall", "public_key": "not a key"}, "public_key"),
    ("PATCH", "/gateways/{gateway}", {"name": "   "}, "name"),
    ("POST", "/boxes", {"gateway_id": "{gateway}", "name": "Box", "kind": "spaceship"}, "kind"),
    ("POST", "/boxes", {"gateway_id": "{gateway}"}, "name"),
    ("PATCH", "/boxes/{mailbox}", {"name": 42}, "name"),
    ("POST", "/pins", {"box_ids": ["{mailbox}"], "label": "Gran", "digits": "1234"}, "digits"),
    ("POST", "/pins", {"box_ids": ["{mailbox}"], "label": "", "digits": "4821"}, "label"),
    ("POST", "/pins", {"box_ids": ["{mailbox}"], "label": "Gran", "digits": "4821", "kind": "weekly"}, "windows"),
    ("POST", "/pins", {"box_ids": ["{mailbox}"], "label": "Gran", "digits": "4821", "kind": "range",
                       "ends": "2001-01-01T10:00"}, "ends"),
    ("POST", "/pins", {"box_ids": ["{mailbox}"], "label": "Gran", "digits": "4821", "kind": "uses", "uses": 0},
     "uses"),
    ("POST", "/pins", {"box_ids": [], "label": "Gran", "digits": "4821"}, "box_ids"),
    ("POST", "/pins", {"box_ids": ["{mailbox}"], "label": "Gran", "digits": "4821", "colour": "red"}, "colour"),
    ("POST", "/boxes/{mailbox}/delivery-codes", {"expires": "yesterday"}, "expires"),
    ("POST", "/webhooks", {"url": "ftp://example.com/x", "kinds": ["opened"]}, "url"),
    ("POST", "/webhooks", {"url": "https://hooks.example.com/x", "kinds": ["the-moon"]}, "kinds.0"),
    ("PATCH", "/webhooks/{webhook}", {"enabled": "perhaps"}, "enabled"),
    ("PUT", "/alert-preferences", {"choices": {"the-moon": ["email"]}}, "choices.the-moon.key"),
    ("PUT", "/alert-preferences", {"choices": {"opened": ["pigeon"]}}, "choices.opened.value.0"),
    ("PUT", "/alert-preferences", {}, "choices"),
    ("PUT", "/alert-preferences", {"choices": {"duress": ["portal"]}}, "choices"),
    ("PUT", "/boxes/{mailbox}/alert-preferences", {"choices": {"gateway_offline": ["email"]}}, "choices"),
    ("PUT", "/alert-preferences/quiet-hours", {"quiet_from": "25:00", "quiet_until": "07:00"}, "quiet_from"),
    ("PUT", "/alert-preferences/quiet-hours", {"quiet_from": "22:00", "quiet_until": None}, "quiet_until"),
    ("PUT", "/alert-preferences/quiet-hours", {"quiet_from": "22:00", "quiet_until": "22:00"}, "quiet_until"),
    ("PUT", "/household/alert-defaults", {"choices": {"opened": "email"}}, "choices.opened.value"),
]


@pytest.mark.parametrize("method,path,body,field", BAD_INPUT, ids=[f"{m} {p} {f}" for m, p, _b, f in BAD_INPUT])
def test_bad_input_on_every_write_names_the_field_and_changes_nothing(api, world, method, path, body, field):
    ids = {key: world.id_of(key) for key in ("gateway", "mailbox", "webhook", "pin")}
    path = path.format(**ids)
    body = {k: ([v.format(**ids) for v in value] if isinstance(value, list) and value and isinstance(value[0], str)
                else value.format(**ids) if isinstance(value, str) else value) for k, value in body.items()}
    before = world.snapshot("a")
    _problem(api(method, path, json=body, headers={"If-Match": "*"}), 422, field)
    assert world.snapshot("a") == before


# --- Idempotency-Key ----------------------------------------------------------------------

def _auth_jobs(mailbox_id) -> tuple[int, int]:
    commands = db.session.scalars(sa.select(Command).where(Command.mailbox_id == mailbox_id,
                                                            Command.action == "AUTH")).all()
    jobs = db.session.scalar(sa.select(sa.func.count()).select_from(Job).where(
        Job.id.in_([c.job_id for c in commands if c.job_id is not None])))
    return len(commands), jobs


def test_the_same_key_twice_makes_one_pin_and_one_delivery(api, world):
    body = {"box_ids": [world.id_of("mailbox")], "label": "Cleaner", "digits": "5927"}
    first = api("POST", "/pins", json=body, headers={"Idempotency-Key": "order-1"})
    assert first.status_code == 201, first.json
    again = api("POST", "/pins", json=body, headers={"Idempotency-Key": "order-1"})
    assert again.status_code == 201
    assert again.json == first.json and again.headers["Location"] == first.headers["Location"]
    assert again.headers["Idempotent-Replayed"] == "true"
    labels = db.session.scalars(sa.select(Pin.label).where(Pin.mailbox_id == world.a["mailbox"].id)).all()
    assert labels.count("Cleaner") == 1
    assert _auth_jobs(world.a["mailbox"].id) == (1, 1)


def test_a_retried_delivery_code_keeps_its_digits(api, world):
    path = f"/boxes/{world.id_of('mailbox')}/delivery-codes"
    first = api("POST", path, json={"label": "Order 1234"}, headers={"Idempotency-Key": "k-1234"})
    again = api("POST", path, json={"label": "Order 1234"}, headers={"Idempotency-Key": "k-1234"})
    assert first.status_code == again.status_code == 201
    assert again.json["code"] == first.json["code"] and again.json["id"] == first.json["id"]
    assert _auth_jobs(world.a["mailbox"].id) == (1, 1)


def test_the_same_key_with_another_body_is_refused(api, world):
    body = {"box_ids": [world.id_of("mailbox")], "label": "Cleaner", "digits": "5927"}
    assert api("POST", "/pins", json=body, headers={"Idempotency-Key": "k"}).status_code == 201
    _problem(api("POST", "/pins", json={**body, "digits": "6938"}, headers={"Idempotency-Key": "k"}), 422,
             "Idempotency-Key")
    assert _auth_jobs(world.a["mailbox"].id) == (1, 1)


def test_a_refused_request_leaves_its_key_free(api, world):
    body = {"box_ids": [world.id_of("mailbox")], "label": "Cleaner", "digits": "1234"}
    _problem(api("POST", "/pins", json=body, headers={"Idempotency-Key": "k2"}), 422, "digits")
    fixed = api("POST", "/pins", json={**body, "digits": "5927"}, headers={"Idempotency-Key": "k2"})
    assert fixed.status_code == 201


def test_keys_are_forgotten_after_a_day(api, world, time_machine):
    body = {"box_ids": [world.id_of("mailbox")], "label": "Cleaner", "digits": "5927"}
    assert api("POST", "/pins", json=body, headers={"Idempotency-Key": "k3"}).status_code == 201
    time_machine.move_to(utcnow() + timedelta(hours=25), tick=False)
    # The first answer is gone: the same request runs again (and the box refuses the same digits).
    _problem(api("POST", "/pins", json=body, headers={"Idempotency-Key": "k3"}), 422, "digits")


def test_housekeeping_forgets_answers_older_than_a_day(api, world, time_machine):
    body = {"box_ids": [world.id_of("mailbox")], "label": "Cleaner", "digits": "5927"}
    assert api("POST", "/pins", json=body, headers={"Idempotency-Key": "old"}).status_code == 201
    time_machine.move_to(utcnow() + timedelta(hours=23), tick=False)
    assert api("POST", f"/boxes/{world.id_of('mailbox')}/unlocks", headers={"Idempotency-Key": "new"}).status_code \
        == 202
    time_machine.move_to(utcnow() + timedelta(hours=2), tick=False)
    assert housekeeping.prune()["idempotent_answers"] == 1
    assert db.session.scalars(sa.select(IdempotentRequest.key)).all() == ["new"]


# --- rate limit ----------------------------------------------------------------------------

def test_past_the_limit_a_token_gets_429_with_retry_after_until_the_window_ends(app, api, world, monkeypatch,
                                                                              time_machine):
    time_machine.move_to(utcnow().replace(second=5, microsecond=0), tick=False)
    monkeypatch.setitem(app.config, "API_RATE_LIMIT", 3)
    for _ in range(3):
        assert api("GET", "/household").status_code == 200
    refused = api("GET", "/household")
    _problem(refused, 429)
    assert refused.headers["Retry-After"] == "55"
    # Another token of the household has its own count.
    assert api.client.get("/api/v1/household",
                          headers={"Authorization": f"Bearer {_secret(world, 'read')}"}).status_code == 200
    time_machine.move_to(utcnow() + timedelta(seconds=56), tick=False)
    assert api("GET", "/household").status_code == 200


def _secret(world, *scopes):
    membership = db.session.get(Membership, world.a["owner_membership"].id)
    return api_tokens.create_token(membership, world.a["owner"], name="other", scopes=list(scopes))[1]


# --- ETag / If-Match, cursors, CORS -------------------------------------------------------

def test_patch_needs_the_current_etag(api, world):
    path = f"/boxes/{world.id_of('mailbox')}"
    read = api("GET", path)
    etag = read.headers["ETag"]
    _problem(api("PATCH", path, json={"name": "Letters"}), 428)
    renamed = api("PATCH", path, json={"name": "Letters"}, headers={"If-Match": etag})
    assert renamed.status_code == 200 and renamed.json["name"] == "Letters"
    assert renamed.headers["ETag"] != etag
    _problem(api("PATCH", path, json={"name": "Parcels"}, headers={"If-Match": etag}), 412)
    _problem(api("DELETE", path, headers={"If-Match": etag}), 412)
    assert api("GET", path).json["name"] == "Letters"


def test_activity_pages_with_an_opaque_cursor_and_filters(api, world):
    for _ in range(5):
        api("POST", f"/boxes/{world.id_of('mailbox')}/unlocks")
    first = api("GET", "/activity?limit=2&kind=unlock")
    assert first.status_code == 200
    seen = [e["id"] for e in first.json["items"]]
    nxt = first.json["next"]
    while nxt:
        page = api.client.get(nxt, headers={"Authorization": f"Bearer {world.a['api_secret']}"})
        seen += [e["id"] for e in page.json["items"]]
        nxt = page.json["next"]
    assert len(seen) == len(set(seen)) == 5
    assert all(e["kind"] == "unlock.requested" for e in first.json["items"])
    _problem(api("GET", "/activity?cursor=bogus"), 422, "cursor")


def test_no_cors_headers_even_for_a_foreign_origin(api):
    response = api("GET", "/household", headers={"Origin": "https://evil.example"})
    assert response.status_code == 200
    assert not [name for name, _value in response.headers if name.lower().startswith("access-control-")]


def test_unlock_answers_202_with_an_unlock_to_poll(api, world):
    response = api("POST", f"/boxes/{world.id_of('mailbox')}/unlocks")
    assert response.status_code == 202
    polled = api.client.get(response.headers["Location"],
                            headers={"Authorization": f"Bearer {world.a['api_secret']}"})
    assert polled.status_code == 200 and polled.json["id"] == response.json["id"]
    assert polled.json["state"]["final"] is False


def test_the_document_is_openapi_3_1_with_webhooks_and_the_reference_page_is_local(app, api):
    spec = app.test_client().get("/api/v1/openapi.json").json
    assert spec["openapi"] == "3.1.0"
    assert "alert.opened" in spec["webhooks"]
    names = [p["name"] for p in spec["webhooks"]["alert.opened"]["post"]["parameters"]]
    assert names == ["webhook-id", "webhook-timestamp", "webhook-signature"]
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    page = app.test_client().get("/api/v1/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "POST /api/v1/pins" in html or "POST /pins" in html
    assert "cdn" not in html.lower()


# --- the tokens page ------------------------------------------------------------------------

def test_a_member_makes_a_token_sees_it_once_and_revokes_it(app, world):
    auth = Auth(app.test_client())
    assert auth.login(world.a["member"].email, PASSWORD).status_code == 302
    page = auth.client.get("/settings/api-tokens").get_data(as_text=True)
    made = auth.client.post("/settings/api-tokens", data={
        "csrf_token": csrf_from(page), "name": "Home Assistant", "scopes": ["read", "unlock"],
        "expires_in_days": "30"})
    html = made.get_data(as_text=True)
    assert made.status_code == 200 and "shown only this once" in html
    secret = html.split('id="api-token-secret" class="mono" type="text" readonly value="')[1].split('"')[0]
    assert secret.startswith("iotl_") and len(secret) == 48
    token = db.session.scalars(sa.select(ApiToken).where(ApiToken.name == "Home Assistant")).one()
    assert token.scopes == ["read", "unlock"] and secret not in (token.secret_hash, token.prefix)
    used = app.test_client().get("/api/v1/household", headers={"Authorization": f"Bearer {secret}",
                                                               "X-Forwarded-For": "203.0.113.9"})
    assert used.status_code == 200 and used.json["role"] == "member"
    listing = auth.client.get("/settings/api-tokens").get_data(as_text=True)
    assert "Home Assistant" in listing and "Last used" in listing and secret not in listing
    revoked = auth.client.post(f"/settings/api-tokens/{token.id}/revoke", data={"csrf_token": csrf_from(listing)})
    assert revoked.status_code == 302
    assert app.test_client().get("/api/v1/household",
                                 headers={"Authorization": f"Bearer {secret}"}).status_code == 401


def test_the_tokens_page_refuses_a_token_without_scopes(app, world):
    auth = Auth(app.test_client())
    assert auth.login(world.a["member"].email, PASSWORD).status_code == 302
    page = auth.client.get("/settings/api-tokens").get_data(as_text=True)
    refused = auth.client.post("/settings/api-tokens", data={"csrf_token": csrf_from(page), "name": "Nothing",
                                                             "expires_in_days": "0"})
    assert refused.status_code == 400 and "Choose at least one thing" in refused.get_data(as_text=True)


def test_a_member_cannot_revoke_anothers_token(app, world):
    auth = Auth(app.test_client())
    assert auth.login(world.a["member"].email, PASSWORD).status_code == 302
    page = auth.client.get("/settings/api-tokens").get_data(as_text=True)
    response = auth.client.post(f"/settings/api-tokens/{world.id_of('api_token')}/revoke",
                                data={"csrf_token": csrf_from(page)})
    assert response.status_code == 404
    assert db.session.get(ApiToken, world.a["api_token"].id).revoked_at is None


# --- alert preferences --------------------------------------------------------------------

def test_alert_choices_round_trip_and_a_box_can_have_its_own(api, world):
    read = api("GET", "/alert-preferences")
    assert read.status_code == 200
    body = read.json
    assert body["box_id"] is None and body["choices"]["opened"] == []  # openings start off
    assert next(k for k in body["kinds"] if k["kind"] == "duress")["locked"] is True
    choices = dict(body["choices"], opened=["portal", "push"])
    saved = api("PUT", "/alert-preferences", json={"choices": choices}, headers={"If-Match": read.headers["ETag"]})
    assert saved.status_code == 200, saved.json
    assert saved.json["choices"]["opened"] == ["portal", "push"]
    assert saved.headers["ETag"] != read.headers["ETag"]
    # The old version is gone: writing over it is refused.
    _problem(api("PUT", "/alert-preferences", json={"choices": choices}, headers={"If-Match": read.headers["ETag"]}),
             412)

    box = f"/boxes/{world.id_of('mailbox')}/alert-preferences"
    follows = api("GET", box)
    assert follows.json["own_choices"] is False and follows.json["choices"]["opened"] == ["portal", "push"]
    assert "gateway_offline" not in follows.json["choices"]  # household-wide kinds are not per box
    own = api("PUT", box, json={"choices": {"opened": ["email"]}}, headers={"If-Match": follows.headers["ETag"]})
    assert own.json["own_choices"] is True and own.json["choices"]["opened"] == ["email"]
    assert own.json["choices"]["left_open"] == []  # left out: off
    assert api("GET", "/alert-preferences").json["choices"]["opened"] == ["portal", "push"]

    assert api("DELETE", box).status_code == 204
    assert api("GET", box).json == follows.json


def test_quiet_hours_are_set_and_cleared_in_the_household_zone(api):
    read = api("GET", "/alert-preferences/quiet-hours")
    assert read.json["quiet_from"] is None and read.json["time_zone"]
    saved = api("PUT", "/alert-preferences/quiet-hours", json={"quiet_from": "22:00", "quiet_until": "07:00"},
                headers={"If-Match": read.headers["ETag"]})
    assert saved.status_code == 200, saved.json
    assert (saved.json["quiet_from"], saved.json["quiet_until"]) == ("22:00", "07:00")
    _problem(api("PUT", "/alert-preferences/quiet-hours", json={"quiet_from": None, "quiet_until": None}), 428)
    cleared = api("PUT", "/alert-preferences/quiet-hours", json={"quiet_from": None, "quiet_until": None},
                  headers={"If-Match": saved.headers["ETag"]})
    assert cleared.json["quiet_from"] is None and cleared.json["quiet_until"] is None


def test_owners_set_the_household_defaults_that_members_follow(app, api, world):
    read = api("GET", "/household/alert-defaults")
    saved = api("PUT", "/household/alert-defaults", json={"choices": {"opened": ["portal"]}},
                headers={"If-Match": read.headers["ETag"]})
    assert saved.status_code == 200 and saved.json["choices"]["opened"] == ["portal"]
    membership = db.session.get(Membership, world.a["membership"].id)
    member_token = api_tokens.create_token(membership, membership.user, name="member", scopes=["read", "manage"])[1]
    mine = app.test_client().get("/api/v1/alert-preferences", headers={"Authorization": f"Bearer {member_token}"})
    assert mine.json["choices"]["opened"] == ["portal"]  # a member who chose nothing follows the household
    assert "duress" not in mine.json["choices"]  # duress reaches owners only
