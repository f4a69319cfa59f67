"""The API from end to end, with nothing but the API after the token: add a gateway and a
box, add a PIN, wait (the worker and the virtual gateway's rounds) until the box confirmed
it, open the box with the keypad, and read the opening in the activity; plus an unlock
polled until the box opened."""
import pytest

from portal.extensions import db
from portal.models import Membership
from portal.services import api_tokens, mailboxes


@pytest.fixture
def app_overrides():
    return {"VIRTUAL_GATEWAYS": True}


def _until_final(kit, get, path, rounds=8):
    for _ in range(rounds):
        body = get(path).json
        if body["state"]["final"]:
            return body
        kit.settle(rounds=1)
    return get(path).json


def test_a_token_adds_a_gateway_box_and_pin_and_reads_the_keypad_opening(app, kit):
    membership = db.session.query(Membership).filter_by(user_id=kit.user.id).one()
    _token, secret = api_tokens.create_token(membership, kit.user, name="e2e", scopes=["read", "manage", "pins",
                                                                                       "unlock"])
    client = app.test_client()
    headers = {"Authorization": f"Bearer {secret}"}

    def get(path):
        return client.get(path if path.startswith("/api") else "/api/v1" + path, headers=headers)

    def post(path, body=None, key=None):
        return client.post("/api/v1" + path, json=body, headers={**headers, **({"Idempotency-Key": key} if key else {})})

    gateway = post("/gateways", {"name": "Porch"}, key="gw-1")
    assert gateway.status_code == 201, gateway.json
    box = post("/boxes", {"gateway_id": gateway.json["id"], "name": "Front mailbox", "kind": "mailbox"})
    assert box.status_code == 201, box.json
    kit.settle()
    assert _until_final(kit, get, f"/boxes/{box.json['id']}")["state"]["state"] == "active"

    added = post("/pins", {"box_ids": [box.json["id"]], "label": "Grandma", "digits": "4821"}, key="pin-1")
    assert added.status_code == 201, added.json
    pin_path = added.headers["Location"]
    assert get(pin_path).json["state"]["state"] == "queued"
    confirmed = _until_final(kit, get, pin_path)
    assert confirmed["state"] == {"state": "confirmed", "label": "Confirmed on the box", "reason": None,
                                  "final": True}

    assert mailboxes.press_keypad(kit.account.id, box.json["id"], "4821") == "opened"
    kit.settle(rounds=2)
    events = get(f"/activity?box_id={box.json['id']}&kind=box").json["items"]
    assert "Opened with PIN “Grandma”" in [e["summary"] for e in events]

    unlock = post(f"/boxes/{box.json['id']}/unlocks")
    assert unlock.status_code == 202
    opened = _until_final(kit, get, unlock.headers["Location"])
    assert opened["state"]["state"] == "opened"

    removed = client.delete(pin_path, headers=headers)
    assert removed.status_code == 202
    kit.settle()
    assert get(pin_path).status_code == 404
    assert mailboxes.press_keypad(kit.account.id, box.json["id"], "4821") == "rejected"
