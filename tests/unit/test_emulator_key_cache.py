"""The emulator's copy of the things service's key cache (things/service.go CanAccessByKey,
things/redis/things.go, things/redis/channels.go of Mainflux 0.13.0).

The contract suite checks what a deployment shows (a used old key keeps working after
PATCH /things/{id}/key until the thing is deleted); these are the finer points that follow
from the source and that the contract does not assert against a deployment.
"""
import json
import uuid

import pytest
import requests

from portal.streamiot.emulator import EMBEDDED_READER_URL, EMBEDDED_URL, EmbeddedAdapter, make_emulator

SENML = {"Content-Type": "application/senml+json"}


@pytest.fixture
def http(tmp_path):
    session = requests.Session()
    session.mount(f"{EMBEDDED_URL}/", EmbeddedAdapter(make_emulator(tmp_path / "streamiot.sqlite3")))
    return session


@pytest.fixture
def auth(http):
    email = f"u-{uuid.uuid4().hex[:10]}@example.com"
    http.post(f"{EMBEDDED_URL}/users", json={"email": email, "password": "long-enough"})
    token = http.post(f"{EMBEDDED_URL}/tokens", json={"email": email, "password": "long-enough"})
    return {"Authorization": f"Bearer {token.json()['token']}"}


def _created(answer) -> str:
    return answer.headers["Location"].rsplit("/", 1)[-1]


def _device(http, auth):
    channel_id = _created(http.post(f"{EMBEDDED_URL}/channels", json={"name": "ch"}, headers=auth))
    thing_id = _created(http.post(f"{EMBEDDED_URL}/things", json={"name": "th"}, headers=auth))
    key = http.get(f"{EMBEDDED_URL}/things/{thing_id}", headers=auth).json()["key"]
    http.post(f"{EMBEDDED_URL}/connect", json={"channel_ids": [channel_id], "thing_ids": [thing_id]}, headers=auth)
    return channel_id, thing_id, key


def _publish(http, channel_id, key) -> int:
    pack = json.dumps([{"n": "E", "v": 1}])
    return http.post(f"{EMBEDDED_URL}/http/channels/{channel_id}/messages", data=pack,
                     headers={"Authorization": f"Thing {key}", **SENML}).status_code


def _patch(http, auth, thing_id, key) -> int:
    return http.patch(f"{EMBEDDED_URL}/things/{thing_id}/key", json={"key": key}, headers=auth).status_code


def test_an_old_key_never_used_stops_working_at_once(http, auth):
    channel_id, thing_id, old_key = _device(http, auth)

    assert _patch(http, auth, thing_id, str(uuid.uuid4())) == 200

    assert _publish(http, channel_id, old_key) == 500


def test_a_used_old_key_works_on_the_channels_it_used_but_not_on_new_ones(http, auth):
    channel_id, thing_id, old_key = _device(http, auth)
    other_channel = _created(http.post(f"{EMBEDDED_URL}/channels", json={"name": "ch2"}, headers=auth))
    http.post(f"{EMBEDDED_URL}/connect", json={"channel_ids": [other_channel], "thing_ids": [thing_id]},
              headers=auth)
    assert _publish(http, channel_id, old_key) == 202
    assert _patch(http, auth, thing_id, str(uuid.uuid4())) == 200

    assert _publish(http, channel_id, old_key) == 202
    assert _publish(http, other_channel, old_key) == 500


def test_disconnecting_ends_a_cached_old_key_on_that_channel(http, auth):
    channel_id, thing_id, old_key = _device(http, auth)
    assert _publish(http, channel_id, old_key) == 202
    assert _patch(http, auth, thing_id, str(uuid.uuid4())) == 200

    http.put(f"{EMBEDDED_URL}/disconnect", json={"channel_ids": [channel_id], "thing_ids": [thing_id]}, headers=auth)

    assert _publish(http, channel_id, old_key) == 500


def test_deleting_forgets_only_the_key_the_thing_used_last(http, auth):
    # thingCache.Remove(id) drops "thing:<id>" and the key it points at: once the new key
    # has been used too, the old key's entry outlives the thing, and so does the channel's
    # set of thing ids. Not asserted against a deployment.
    channel_id, thing_id, old_key = _device(http, auth)
    assert _publish(http, channel_id, old_key) == 202
    new_key = str(uuid.uuid4())
    assert _patch(http, auth, thing_id, new_key) == 200
    assert _publish(http, channel_id, new_key) == 202

    http.delete(f"{EMBEDDED_URL}/things/{thing_id}", headers=auth)

    assert _publish(http, channel_id, new_key) == 500
    assert _publish(http, channel_id, old_key) == 202
    read = http.get(f"{EMBEDDED_READER_URL}/channels/{channel_id}/messages",
                    headers={"Authorization": f"Thing {old_key}"})
    assert read.status_code == 200
    assert {m["publisher"] for m in read.json()["messages"]} == {thing_id}


def test_changing_a_key_checks_content_type_then_body_then_token(http, auth):
    thing_id = _created(http.post(f"{EMBEDDED_URL}/things", json={"name": "th"}, headers=auth))
    url = f"{EMBEDDED_URL}/things/{thing_id}/key"

    wrong_type = http.patch(url, data=json.dumps({"key": "k"}), headers={**auth, "Content-Type": "text/plain"})
    bad_json = http.patch(url, data=b"{", headers={**auth, "Content-Type": "application/json"})
    no_token = http.patch(url, json={"key": "k"})
    bad_token = http.patch(url, json={"key": "k"}, headers={"Authorization": "Bearer x"})

    assert (wrong_type.status_code, wrong_type.json()) == (415, {"error": "unsupported content type"})
    assert (bad_json.status_code, bad_json.json()) == (400, {"error": "malformed entity specification"})
    assert (no_token.status_code, no_token.json()) == (401, {"error": "missing or invalid bearer user token"})
    assert (bad_token.status_code, bad_token.content) == (500, b"")
