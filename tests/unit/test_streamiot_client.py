"""The StreamIoT client against the answers of STREAMIOT_API.md (Mainflux 0.13.0), via requests-mock."""
import json
import logging
import re
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from portal.streamiot import deployment, messages
from portal.streamiot.client import StreamIoT, UserAPI, parse_retry_after
from portal.streamiot.deployment import client_from_config
from portal.streamiot.emulator import EMBEDDED_READER_URL, EMBEDDED_URL, EmbeddedAdapter, make_emulator
from portal.streamiot.errors import (
    BadRequest,
    Conflict,
    NotFound,
    ProtocolError,
    ServerError,
    StreamIoTError,
    Unauthorized,
    Unavailable,
)

BASE = "https://iot.example.net"
READER = "https://reader.example.net:9009"
PASSWORD = "generated-Password-31337"
OLD_TOKEN = "eyJold.token.value"
NEW_TOKEN = "eyJnew.token.value"
THING_KEY = "3d2f0c0e-8f5e-4c1f-a1d4-5b6d7e8f9a0b"
THING_ID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
CHANNEL_ID = "c0ffee00-1234-4abc-9def-0123456789ab"
USER_ID = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"
EMAIL = "account-1@iotlock.invalid"

# How the platform answers: JSON errors under text/plain, empty successes under application/json.
TEXT = {"Content-Type": "text/plain; charset=utf-8"}
JSON_TYPE = {"Content-Type": "application/json"}


def error(message):
    return {"text": json.dumps({"error": message}), "headers": TEXT}


@pytest.fixture
def sio():
    return StreamIoT(BASE + "/", READER + "/", connect_timeout=1.5, read_timeout=4.0)


@pytest.fixture
def stored_tokens():
    return []


@pytest.fixture
def user(sio, stored_tokens):
    return sio.as_user(EMAIL, PASSWORD, token=OLD_TOKEN, on_token=stored_tokens.append)


@pytest.fixture
def login(requests_mock):
    """POST /tokens hands out NEW_TOKEN."""
    return requests_mock.post(f"{BASE}/tokens", status_code=201, json={"token": NEW_TOKEN}, headers=JSON_TYPE)


def created(collection, ident, **extra):
    headers = {**JSON_TYPE, "Location": f"/{collection}/{ident}", **extra}
    return {"status_code": 201, "headers": headers}


def auth_of(request):
    return request.headers.get("Authorization")


def query(request):
    return {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}


# --- users and tokens ----------------------------------------------------------


def test_create_user_returns_the_id_from_location(sio, requests_mock):
    requests_mock.post(f"{BASE}/users", **created("users", USER_ID))
    assert sio.create_user(EMAIL, PASSWORD) == USER_ID
    sent = requests_mock.last_request
    assert sent.json() == {"email": EMAIL, "password": PASSWORD}
    assert auth_of(sent) is None


def test_create_user_with_an_admin_token_sends_it_as_bearer(sio, requests_mock):
    requests_mock.post(f"{BASE}/users", **created("users", USER_ID))
    sio.create_user(EMAIL, PASSWORD, token="admin-token")
    assert auth_of(requests_mock.last_request) == "Bearer admin-token"


def test_taken_email_is_a_conflict_with_the_platform_message(sio, requests_mock):
    requests_mock.post(f"{BASE}/users", status_code=409, **error("entity already exists"))
    with pytest.raises(Conflict) as caught:
        sio.create_user(EMAIL, PASSWORD)
    assert caught.value.status == 409
    assert caught.value.error == "entity already exists"
    assert "entity already exists" in str(caught.value)


@pytest.mark.parametrize(
    "status, message",
    [(400, "password does not meet the requirements"), (400, "malformed entity specification"),
     (415, "unsupported content type")],
)
def test_requests_that_can_never_succeed_are_bad_requests(sio, requests_mock, status, message):
    requests_mock.post(f"{BASE}/users", status_code=status, **error(message))
    with pytest.raises(BadRequest) as caught:
        sio.create_user(EMAIL, "short")
    assert caught.value.error == message


def test_issue_token_returns_the_token(sio, login):
    assert sio.issue_token(EMAIL, PASSWORD) == NEW_TOKEN
    assert login.last_request.json() == {"email": EMAIL, "password": PASSWORD}


def test_wrong_password_is_unauthorized(sio, requests_mock):
    requests_mock.post(
        f"{BASE}/tokens", status_code=401, **error("failed to perform authentication over the entity")
    )
    with pytest.raises(Unauthorized) as caught:
        sio.issue_token(EMAIL, "wrong")
    assert caught.value.status == 401


def test_profile_reads_the_logged_in_user(user, requests_mock):
    requests_mock.get(f"{BASE}/users/profile", json={"id": USER_ID, "email": EMAIL}, headers=JSON_TYPE)
    assert user.profile() == {"id": USER_ID, "email": EMAIL}
    assert auth_of(requests_mock.last_request) == f"Bearer {OLD_TOKEN}"


# --- answers that are not what the API promises --------------------------------


def test_created_without_location_is_a_protocol_error(user, requests_mock):
    requests_mock.post(f"{BASE}/things", status_code=201, headers=JSON_TYPE)
    with pytest.raises(ProtocolError):
        user.create_thing("iotlock-gw-1")


def test_created_with_a_location_for_something_else_is_a_protocol_error(user, requests_mock):
    requests_mock.post(f"{BASE}/channels", **created("things", THING_ID))
    with pytest.raises(ProtocolError):
        user.create_channel("iotlock-gw-1")


def test_html_page_with_200_is_a_protocol_error(sio, user, requests_mock):
    page = {"status_code": 200, "text": "<html><body>Welcome to nginx!</body></html>",
            "headers": {"Content-Type": "text/html"}}
    requests_mock.post(f"{BASE}/tokens", **page)
    requests_mock.get(f"{BASE}/things", **page)
    requests_mock.post(f"{BASE}/connect", **page)
    requests_mock.post(f"{BASE}/users", **page)
    with pytest.raises(ProtocolError):
        sio.issue_token(EMAIL, PASSWORD)
    with pytest.raises(ProtocolError):
        user.list_things()
    with pytest.raises(ProtocolError):
        user.connect([CHANNEL_ID], [THING_ID])
    with pytest.raises(ProtocolError):
        sio.create_user(EMAIL, PASSWORD)


def test_garbage_json_is_a_protocol_error(user, requests_mock):
    requests_mock.get(f"{BASE}/things/{THING_ID}", text="[1, 2", headers=JSON_TYPE)
    with pytest.raises(ProtocolError):
        user.get_thing(THING_ID)


def test_redirect_is_a_protocol_error_and_is_not_followed(user, requests_mock):
    elsewhere = {"Location": "https://elsewhere.example/things"}
    requests_mock.post(f"{BASE}/things", status_code=301, headers=elsewhere)
    with pytest.raises(ProtocolError, match="elsewhere.example"):
        user.create_thing("iotlock-gw-1")
    assert requests_mock.call_count == 1


# --- things ------------------------------------------------------------------------


def test_create_thing_returns_the_id_from_location_of_an_empty_201(user, requests_mock):
    requests_mock.post(f"{BASE}/things", **created("things", THING_ID, **{"Warning-Deprecated": "use bulk"}))
    assert user.create_thing("iotlock-gw-1", metadata={"kind": "gateway"}) == THING_ID
    sent = requests_mock.last_request
    assert sent.json() == {"name": "iotlock-gw-1", "metadata": {"kind": "gateway"}}
    assert auth_of(sent) == f"Bearer {OLD_TOKEN}"
    assert "application/json" in sent.headers["Content-Type"]


def test_location_may_be_an_absolute_url(user, requests_mock):
    requests_mock.post(f"{BASE}/things", **created("things", THING_ID, Location=f"{BASE}/things/{THING_ID}"))
    assert user.create_thing("iotlock-gw-1") == THING_ID


def test_create_thing_with_a_taken_key_is_a_conflict(user, requests_mock, login):
    requests_mock.post(f"{BASE}/things", status_code=409, **error("entity already exists"))
    with pytest.raises(Conflict):
        user.create_thing("iotlock-gw-1", key=THING_KEY)
    assert requests_mock.last_request.json()["key"] == THING_KEY
    assert not login.called


def test_bulk_create_returns_ids_and_keys(user, requests_mock):
    things = [{"id": THING_ID, "name": "a", "key": THING_KEY}, {"id": "t2", "name": "b", "key": "k2"}]
    requests_mock.post(f"{BASE}/things/bulk", status_code=201, json={"things": things}, headers=JSON_TYPE)
    assert user.create_things([{"name": "a"}, {"name": "b"}]) == things
    assert requests_mock.last_request.json() == [{"name": "a"}, {"name": "b"}]


def test_get_thing_returns_its_key(user, requests_mock):
    thing = {"id": THING_ID, "name": "iotlock-gw-1", "key": THING_KEY, "metadata": {"a": 1}}
    requests_mock.get(f"{BASE}/things/{THING_ID}", json=thing, headers=JSON_TYPE)
    assert user.get_thing(THING_ID) == thing


def test_deleted_thing_is_not_found(user, requests_mock):
    requests_mock.get(f"{BASE}/things/{THING_ID}", status_code=404, **error("entity not found"))
    with pytest.raises(NotFound):
        user.get_thing(THING_ID)


def test_delete_thing_is_repeatable(user, requests_mock):
    requests_mock.delete(f"{BASE}/things/{THING_ID}", status_code=204, headers=JSON_TYPE)
    user.delete_thing(THING_ID)
    user.delete_thing(THING_ID)
    assert requests_mock.call_count == 2


def test_list_things_sends_the_paging_query(user, requests_mock):
    page = {"total": 0, "offset": 100, "limit": 50, "order": "name", "direction": "asc", "things": []}
    requests_mock.get(f"{BASE}/things", json=page, headers=JSON_TYPE)
    listed = user.list_things(offset=100, limit=50, name="gw", metadata={"k": "v"}, order="name", dir="asc")
    assert listed == page
    assert query(requests_mock.last_request) == {
        "offset": "100", "limit": "50", "name": "gw", "metadata": '{"k":"v"}', "order": "name", "dir": "asc",
    }


def test_invalid_limit_is_a_bad_request(user, requests_mock):
    requests_mock.get(f"{BASE}/things", status_code=400, **error("invalid limit size"))
    with pytest.raises(BadRequest):
        user.list_things(limit=1000)


# --- token kept per household: one login again, one retry -----------------------


def test_empty_500_logs_in_again_and_retries_once(user, requests_mock, login, stored_tokens):
    requests_mock.post(f"{BASE}/things", [{"status_code": 500}, created("things", THING_ID)])
    assert user.create_thing("iotlock-gw-1") == THING_ID
    assert [(r.method, r.path, auth_of(r)) for r in requests_mock.request_history] == [
        ("POST", "/things", f"Bearer {OLD_TOKEN}"),
        ("POST", "/tokens", None),
        ("POST", "/things", f"Bearer {NEW_TOKEN}"),
    ]
    assert login.last_request.json() == {"email": EMAIL, "password": PASSWORD}
    assert user.token == NEW_TOKEN
    assert stored_tokens == [NEW_TOKEN]


def test_401_logs_in_again_and_retries_once(user, requests_mock, login, stored_tokens):
    requests_mock.get(
        f"{BASE}/channels/{CHANNEL_ID}",
        [{"status_code": 401, **error("missing or invalid bearer user token")},
         {"json": {"id": CHANNEL_ID, "name": "c"}, "headers": JSON_TYPE}],
    )
    assert user.get_channel(CHANNEL_ID) == {"id": CHANNEL_ID, "name": "c"}
    assert stored_tokens == [NEW_TOKEN]


def test_second_empty_500_after_logging_in_again_is_a_server_error(user, requests_mock, login):
    requests_mock.get(f"{BASE}/things/{THING_ID}", status_code=500)
    with pytest.raises(ServerError) as caught:
        user.get_thing(THING_ID)
    assert caught.value.status == 500
    assert login.call_count == 1
    assert requests_mock.call_count == 3


def test_second_401_after_logging_in_again_is_unauthorized(user, requests_mock, login):
    requests_mock.delete(
        f"{BASE}/channels/{CHANNEL_ID}", status_code=401, **error("missing or invalid bearer user token")
    )
    with pytest.raises(Unauthorized):
        user.delete_channel(CHANNEL_ID)
    assert login.call_count == 1


def test_500_with_a_message_is_not_taken_for_an_expired_token(user, requests_mock, login):
    requests_mock.post(f"{BASE}/connect", status_code=500, **error("failed to connect"))
    with pytest.raises(ServerError, match="failed to connect"):
        user.connect([CHANNEL_ID], [THING_ID])
    assert not login.called


def test_failing_login_again_is_reported(user, requests_mock):
    requests_mock.post(f"{BASE}/things", status_code=500)
    requests_mock.post(
        f"{BASE}/tokens", status_code=401, **error("failed to perform authentication over the entity")
    )
    with pytest.raises(Unauthorized):
        user.create_thing("iotlock-gw-1")


def test_without_a_token_the_first_call_logs_in(sio, requests_mock, login, stored_tokens):
    fresh = sio.as_user(EMAIL, PASSWORD, on_token=stored_tokens.append)
    requests_mock.post(f"{BASE}/channels", **created("channels", CHANNEL_ID))
    assert fresh.create_channel("iotlock-gw-1") == CHANNEL_ID
    assert auth_of(requests_mock.last_request) == f"Bearer {NEW_TOKEN}"
    assert stored_tokens == [NEW_TOKEN]


def test_a_token_just_issued_is_not_refreshed_again(sio, requests_mock, login):
    fresh = sio.as_user(EMAIL, PASSWORD)
    requests_mock.get(f"{BASE}/things/{THING_ID}", status_code=500)
    with pytest.raises(ServerError):
        fresh.get_thing(THING_ID)
    assert login.call_count == 1


# --- exact-name lookup through the substring filter ---------------------------------


def platform_like(pattern: str, name: str) -> bool:
    """The platform's name filter: case-insensitive substring, `_` and `%` are wildcards."""
    regex = "".join("." if c == "_" else ".*" if c == "%" else re.escape(c) for c in pattern.lower())
    return re.search(regex, name.lower(), re.S) is not None


def listing(key, names):
    items = [{"id": f"{key}-{i}", "name": name, "metadata": {}} for i, name in enumerate(names)]

    def respond(request, context):
        q = query(request)
        offset, limit = int(q["offset"]), int(q["limit"])
        assert 1 <= limit <= 100
        found = [item for item in items if platform_like(q.get("name", ""), item["name"])]
        context.headers.update(JSON_TYPE)
        return {"total": len(found), "offset": offset, "limit": limit, "order": "id", "direction": "asc",
                key: found[offset:offset + limit]}

    return respond


DECOYS = [f"gw-1{i}" for i in range(130)] + ["GW-1", "xgw-1x", "gw-1 ", "gw_1"]


def test_find_thing_pages_through_decoys_to_the_exact_name(user, requests_mock):
    names = DECOYS[:120] + ["gw-1"] + DECOYS[120:]
    requests_mock.get(f"{BASE}/things", json=listing("things", names))
    assert user.find_thing("gw-1") == {"id": "things-120", "name": "gw-1", "metadata": {}}
    offsets = [query(r)["offset"] for r in requests_mock.request_history]
    assert offsets[:2] == ["0", "100"]
    for sent in requests_mock.request_history:
        assert (query(sent)["name"], query(sent)["limit"]) == ("gw-1", "100")


def test_find_thing_with_a_wildcard_in_its_name_still_matches_exactly(user, requests_mock):
    requests_mock.get(f"{BASE}/things", json=listing("things", ["gw-1", "gw-10", "GW_1", "gw_1", "gw%1"]))
    assert user.find_thing("gw_1")["id"] == "things-3"
    assert user.find_thing("gw%1")["id"] == "things-4"


def test_find_thing_is_none_when_only_decoys_match(user, requests_mock):
    requests_mock.get(f"{BASE}/things", json=listing("things", DECOYS))
    assert user.find_thing("gw-1") is None
    assert [query(r)["offset"] for r in requests_mock.request_history] == ["0", "100"]


def test_find_things_returns_every_exact_duplicate(user, requests_mock):
    names = ["dup"] + [f"dup-{i}" for i in range(150)] + ["dup"]
    requests_mock.get(f"{BASE}/things", json=listing("things", names))
    assert [t["id"] for t in user.find_things("dup")] == ["things-0", "things-151"]


def test_find_channel_pages_through_decoys_to_the_exact_name(user, requests_mock):
    names = [f"iotlock-mb-{i}x" for i in range(101)] + ["iotlock-mb-1"]
    requests_mock.get(f"{BASE}/channels", json=listing("channels", names))
    assert user.find_channel("iotlock-mb-1")["id"] == "channels-101"
    assert user.find_channels("iotlock-mb-1")[0]["id"] == "channels-101"
    assert user.find_channel("iotlock-mb-2") is None


# --- channels and connections -------------------------------------------------------------


def test_create_channel_returns_the_id_from_location(user, requests_mock):
    requests_mock.post(f"{BASE}/channels", **created("channels", CHANNEL_ID))
    assert user.create_channel("iotlock-mb-1", metadata={"m": 1}) == CHANNEL_ID
    assert requests_mock.last_request.json() == {"name": "iotlock-mb-1", "metadata": {"m": 1}}


def test_bulk_create_channels_returns_their_ids(user, requests_mock):
    channels = [{"id": CHANNEL_ID, "name": "a"}]
    requests_mock.post(
        f"{BASE}/channels/bulk", status_code=201, json={"channels": channels}, headers=JSON_TYPE
    )
    assert user.create_channels([{"name": "a"}]) == channels


def test_list_channels_and_connections_return_the_page(user, requests_mock):
    page = {"total": 1, "offset": 0, "limit": 100, "channels": [{"id": CHANNEL_ID, "name": "a"}]}
    requests_mock.get(f"{BASE}/channels", json=page, headers=JSON_TYPE)
    requests_mock.get(f"{BASE}/things/{THING_ID}/channels", json=page, headers=JSON_TYPE)
    requests_mock.get(
        f"{BASE}/channels/{CHANNEL_ID}/things", json={"total": 0, "things": None}, headers=JSON_TYPE
    )
    assert user.list_channels(name="a") == page
    assert user.list_thing_channels(THING_ID) == page
    assert user.list_channel_things(CHANNEL_ID)["things"] == []


def test_connect_sends_both_lists_and_accepts_the_empty_200(user, requests_mock):
    requests_mock.post(f"{BASE}/connect", status_code=200, headers=JSON_TYPE)
    user.connect([CHANNEL_ID, "c2"], THING_ID)
    assert requests_mock.last_request.json() == {"channel_ids": [CHANNEL_ID, "c2"], "thing_ids": [THING_ID]}


@pytest.mark.parametrize("status, raised", [(409, Conflict), (404, NotFound), (400, BadRequest)])
def test_connect_errors_are_typed(user, requests_mock, status, raised):
    requests_mock.post(f"{BASE}/connect", status_code=status, **error("whatever the platform says"))
    with pytest.raises(raised):
        user.connect([CHANNEL_ID], [THING_ID])


def test_disconnect_puts_both_lists(user, requests_mock):
    requests_mock.put(f"{BASE}/disconnect", status_code=200, headers=JSON_TYPE)
    user.disconnect(CHANNEL_ID, [THING_ID])
    assert requests_mock.last_request.json() == {"channel_ids": [CHANNEL_ID], "thing_ids": [THING_ID]}


def test_disconnect_of_unconnected_is_not_found(user, requests_mock):
    requests_mock.put(f"{BASE}/disconnect", status_code=404, **error("entity not found"))
    with pytest.raises(NotFound):
        user.disconnect([CHANNEL_ID], [THING_ID])


def test_single_connect_puts_the_pair(user, requests_mock):
    url = f"{BASE}/channels/{CHANNEL_ID}/things/{THING_ID}"
    already = {"status_code": 409, **error("entity already exists")}
    requests_mock.put(url, [{"status_code": 200, "headers": JSON_TYPE}, already])
    user.connect_thing(CHANNEL_ID, THING_ID)
    with pytest.raises(Conflict):
        user.connect_thing(CHANNEL_ID, THING_ID)


# --- publish ---------------------------------------------------------------------


def test_publish_posts_senml_as_the_thing(sio, requests_mock):
    requests_mock.post(f"{BASE}/http/channels/{CHANNEL_ID}/messages", status_code=202)
    pack = messages.add_pin(THING_ID, 4821)
    sio.publish(CHANNEL_ID, THING_KEY, pack)
    sent = requests_mock.last_request
    assert auth_of(sent) == f"Thing {THING_KEY}"
    assert sent.headers["Content-Type"] == "application/senml+json"
    assert sent.json() == pack


def test_publish_with_a_wrong_key_is_a_server_error_without_any_login(sio, requests_mock):
    requests_mock.post(f"{BASE}/http/channels/{CHANNEL_ID}/messages", status_code=500)
    with pytest.raises(ServerError):
        sio.publish(CHANNEL_ID, "wrong", messages.unlock(THING_ID, 1_700_000_060))
    assert requests_mock.call_count == 1


def test_publish_refuses_invalid_senml_before_sending(sio, requests_mock):
    with pytest.raises(ValueError):
        sio.publish(CHANNEL_ID, THING_KEY, [{"n": "no value"}])
    assert requests_mock.call_count == 0


@pytest.mark.parametrize(
    "answer",
    [{"status_code": 200, "text": "<html>captive portal</html>", "headers": {"Content-Type": "text/html"}},
     {"status_code": 200}],
)
def test_publish_answered_with_anything_but_202_is_a_protocol_error(sio, requests_mock, answer):
    requests_mock.post(f"{BASE}/http/channels/{CHANNEL_ID}/messages", **answer)
    with pytest.raises(ProtocolError):
        sio.publish(CHANNEL_ID, THING_KEY, messages.unlock(THING_ID, 1_700_000_060))


def test_publish_with_an_unsupported_content_type_is_a_bad_request(sio, requests_mock):
    requests_mock.post(
        f"{BASE}/http/channels/{CHANNEL_ID}/messages", status_code=415, **error("unsupported content type")
    )
    with pytest.raises(BadRequest):
        sio.publish(CHANNEL_ID, THING_KEY, messages.unlock(THING_ID, 1_700_000_060))


# --- reader --------------------------------------------------------------------------


READ_URL = f"{READER}/channels/{CHANNEL_ID}/messages"


def test_read_messages_as_a_thing_uses_the_reader_url(sio, requests_mock):
    page = {"offset": 0, "limit": 100, "format": "messages", "total": 1, "publisher": THING_ID, "messages": [
        {"channel": CHANNEL_ID, "publisher": THING_ID, "protocol": "http", "name": f"{THING_ID}_AUTH",
         "unit": "Done", "time": 1700000000.5, "value": 4821},
    ]}
    requests_mock.get(READ_URL, json=page)
    assert sio.read_messages(CHANNEL_ID, thing_key=THING_KEY, publisher=THING_ID, from_=1700000000.25) == page
    sent = requests_mock.last_request
    assert auth_of(sent) == f"Thing {THING_KEY}"
    assert query(sent) == {"offset": "0", "limit": "100", "publisher": THING_ID, "from": "1700000000.25"}


def test_messages_is_an_empty_list_when_the_reader_leaves_it_out(sio, requests_mock):
    requests_mock.get(READ_URL, json={"offset": 0, "limit": 100, "format": "messages", "total": 0})
    assert sio.read_messages(CHANNEL_ID, thing_key=THING_KEY)["messages"] == []


def test_read_messages_as_the_user_sends_bearer_and_filters(user, requests_mock):
    requests_mock.get(READ_URL, json={"total": 0, "offset": 0, "limit": 10})
    user.read_messages(CHANNEL_ID, limit=10, name=f"{THING_ID}_OPENED", vb=True, to=5)
    sent = requests_mock.last_request
    assert auth_of(sent) == f"Bearer {OLD_TOKEN}"
    assert query(sent) == {
        "offset": "0", "limit": "10", "name": f"{THING_ID}_OPENED", "vb": "true", "to": "5",
    }


def test_reading_as_the_user_logs_in_again_on_401(user, requests_mock, login, stored_tokens):
    requests_mock.get(READ_URL, [{"status_code": 401, **error("missing or invalid bearer user token")},
                                 {"json": {"total": 0}}])
    assert user.read_messages(CHANNEL_ID)["messages"] == []
    assert auth_of(requests_mock.last_request) == f"Bearer {NEW_TOKEN}"
    assert stored_tokens == [NEW_TOKEN]


def test_reading_as_the_user_logs_in_again_when_the_reader_refuses_the_token(user, requests_mock, login,
                                                                             stored_tokens):
    # The reader's answer to an expired Bearer token: a 500 WITH a JSON error, not an empty one.
    requests_mock.get(READ_URL, [{"status_code": 500, **error("failed to perform authorization over the entity")},
                                 {"json": {"total": 0}}])
    assert user.read_messages(CHANNEL_ID)["messages"] == []
    assert auth_of(requests_mock.last_request) == f"Bearer {NEW_TOKEN}"
    assert stored_tokens == [NEW_TOKEN]


def test_reader_refusing_the_fresh_token_too_is_a_server_error(user, requests_mock, login):
    requests_mock.get(READ_URL, status_code=500, **error("failed to perform authorization over the entity"))
    with pytest.raises(ServerError):
        user.read_messages(CHANNEL_ID)
    assert requests_mock.call_count == 3  # read, login, read again: no second login


@pytest.mark.parametrize("zero", [{"v": 0}, {"vb": False}, {"from_": 0}, {"to": 0.0}])
def test_a_zero_valued_filter_the_platform_would_ignore_is_refused(sio, requests_mock, zero):
    with pytest.raises(ValueError, match="zero value"):
        sio.read_messages(CHANNEL_ID, thing_key=THING_KEY, **zero)
    assert requests_mock.call_count == 0


def test_reading_with_zero_filters_on_the_emulator_returns_everything(tmp_path):
    # Why the client refuses them: the emulator, like the platform, ignores them.
    emulator = make_emulator(tmp_path / "streamiot.sqlite3")
    session = requests.Session()
    session.mount(f"{EMBEDDED_URL}/", EmbeddedAdapter(emulator))
    client = StreamIoT(EMBEDDED_URL, EMBEDDED_READER_URL, session=session)
    client.create_user("zero@example.com", "long-enough")
    api = client.as_user("zero@example.com", "long-enough")
    channel_id = api.create_channel("ch")
    thing_id = api.create_thing("th")
    key = api.get_thing(thing_id)["key"]
    api.connect(channel_id, thing_id)
    client.publish(channel_id, key, [{"bn": f"{thing_id}_", "n": "OPENED", "vb": True, "t": 1_700_000_000},
                                     {"n": "CLOSED", "vb": False, "t": 1_700_000_001}])

    raw = session.get(f"{EMBEDDED_READER_URL}/channels/{channel_id}/messages",
                      params={"vb": "false"}, headers={"Authorization": f"Thing {key}"}).json()

    assert raw["total"] == 2 and "vb" not in raw
    assert client.read_messages(channel_id, thing_key=key, vb=True)["total"] == 1


def test_reader_refusing_a_key_is_a_server_error_with_its_message(sio, requests_mock):
    requests_mock.get(READ_URL, status_code=500, **error("failed to perform authorization over the entity"))
    with pytest.raises(ServerError) as caught:
        sio.read_messages(CHANNEL_ID, thing_key="wrong")
    assert caught.value.error == "failed to perform authorization over the entity"


def test_reading_needs_exactly_one_credential(sio):
    with pytest.raises(ValueError):
        sio.read_messages(CHANNEL_ID)
    with pytest.raises(ValueError):
        sio.read_messages(CHANNEL_ID, thing_key=THING_KEY, token=OLD_TOKEN)


# --- unavailable, timeouts, Retry-After -------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        requests.exceptions.ConnectTimeout,
        requests.exceptions.ReadTimeout,
        requests.exceptions.ConnectionError,
    ],
)
def test_no_answer_is_unavailable(user, requests_mock, failure):
    requests_mock.post(f"{BASE}/things", exc=failure)
    with pytest.raises(Unavailable) as caught:
        user.create_thing("iotlock-gw-1")
    assert caught.value.status is None
    assert caught.value.retry_after is None


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors_are_unavailable(sio, requests_mock, status):
    requests_mock.post(f"{BASE}/http/channels/{CHANNEL_ID}/messages", status_code=status,
                       text="<html>Bad Gateway</html>", headers={"Content-Type": "text/html"})
    with pytest.raises(Unavailable) as caught:
        sio.publish(CHANNEL_ID, THING_KEY, messages.unlock(THING_ID, 1_700_000_060))
    assert caught.value.status == status
    assert caught.value.retry_after is None


def test_503_with_retry_after_seconds_says_when_to_come_back(user, requests_mock):
    requests_mock.get(f"{BASE}/things", status_code=503, headers={"Retry-After": "7"})
    with pytest.raises(Unavailable) as caught:
        user.list_things()
    assert caught.value.retry_after == 7.0


def test_429_with_retry_after_date_says_when_to_come_back(sio, requests_mock):
    when = datetime.now(UTC) + timedelta(seconds=120)
    retry_after = {"Retry-After": format_datetime(when, usegmt=True)}
    requests_mock.post(f"{BASE}/tokens", status_code=429, headers=retry_after)
    with pytest.raises(Unavailable) as caught:
        sio.issue_token(EMAIL, PASSWORD)
    assert 100 <= caught.value.retry_after <= 121


@pytest.mark.parametrize("value, seconds", [("0", 0.0), ("2.5", 2.5), ("-3", 0.0), ("soon", None), ("", None),
                                            ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)])
def test_retry_after_parsing(value, seconds):
    assert parse_retry_after(value) == seconds


def test_every_call_carries_the_configured_timeouts(sio, user, requests_mock, login):
    requests_mock.post(f"{BASE}/users", **created("users", USER_ID))
    requests_mock.post(f"{BASE}/things", [{"status_code": 500}, created("things", THING_ID)])
    requests_mock.post(f"{BASE}/things/bulk", status_code=201, json={"things": []})
    requests_mock.get(f"{BASE}/things/{THING_ID}", json={"id": THING_ID})
    requests_mock.get(f"{BASE}/things", json=listing("things", ["a"]))
    requests_mock.delete(f"{BASE}/things/{THING_ID}", status_code=204)
    requests_mock.post(f"{BASE}/channels", **created("channels", CHANNEL_ID))
    requests_mock.post(f"{BASE}/channels/bulk", status_code=201, json={"channels": []})
    requests_mock.get(f"{BASE}/channels/{CHANNEL_ID}", json={"id": CHANNEL_ID})
    requests_mock.get(f"{BASE}/channels", json=listing("channels", ["a"]))
    requests_mock.delete(f"{BASE}/channels/{CHANNEL_ID}", status_code=204)
    requests_mock.post(f"{BASE}/connect", status_code=200)
    requests_mock.put(f"{BASE}/disconnect", status_code=200)
    requests_mock.put(f"{BASE}/channels/{CHANNEL_ID}/things/{THING_ID}", status_code=200)
    requests_mock.get(f"{BASE}/users/profile", json={"id": USER_ID})
    requests_mock.post(f"{BASE}/http/channels/{CHANNEL_ID}/messages", status_code=202)
    requests_mock.get(READ_URL, json={"total": 0})

    sio.create_user(EMAIL, PASSWORD)
    sio.issue_token(EMAIL, PASSWORD)
    user.create_thing("a")
    user.create_things([{"name": "a"}])
    user.get_thing(THING_ID)
    user.find_thing("a")
    user.delete_thing(THING_ID)
    user.create_channel("a")
    user.create_channels([{"name": "a"}])
    user.get_channel(CHANNEL_ID)
    user.find_channel("a")
    user.delete_channel(CHANNEL_ID)
    user.connect([CHANNEL_ID], [THING_ID])
    user.disconnect([CHANNEL_ID], [THING_ID])
    user.connect_thing(CHANNEL_ID, THING_ID)
    user.profile()
    user.read_messages(CHANNEL_ID)
    sio.publish(CHANNEL_ID, THING_KEY, messages.closed(THING_ID))
    sio.read_messages(CHANNEL_ID, thing_key=THING_KEY)

    assert requests_mock.call_count == 21
    assert {r.timeout for r in requests_mock.request_history} == {(1.5, 4.0)}


# --- configuration -------------------------------------------------------------------


def test_from_config_uses_the_deployment_urls_and_timeouts(requests_mock):
    sio = client_from_config({
        "STREAMIOT_URL": "https://iot.example.net/",
        "STREAMIOT_READER_URL": "https://reader.example.net:9009//",
        "STREAMIOT_CONNECT_TIMEOUT": 2.0, "STREAMIOT_READ_TIMEOUT": 20.0,
    })
    assert (sio.base_url, sio.reader_url) == (BASE, READER)
    requests_mock.get(READ_URL, json={"total": 0})
    sio.read_messages(CHANNEL_ID, thing_key=THING_KEY)
    assert requests_mock.last_request.timeout == (2.0, 20.0)


def test_from_config_refuses_a_deployment_without_reader_url():
    with pytest.raises(ValueError, match="STREAMIOT_READER_URL"):
        client_from_config({"STREAMIOT_URL": BASE, "STREAMIOT_READER_URL": ""})


class FakeAdapter(requests.adapters.BaseAdapter):
    def __init__(self, wsgi_app):
        super().__init__()
        self.wsgi_app = wsgi_app


def test_from_config_embedded_mounts_the_emulator_in_process(monkeypatch, tmp_path):
    made = []

    def fake_get_emulator(db_path, token_ttl=36000):
        made.append((db_path, token_ttl))
        return "the wsgi app"

    monkeypatch.setattr(deployment, "get_emulator", fake_get_emulator)
    monkeypatch.setattr(deployment, "EmbeddedAdapter", FakeAdapter)
    db_path = str(tmp_path / "streamiot-emulator.sqlite3")
    sio = client_from_config({
        "STREAMIOT_URL": "embedded", "STREAMIOT_READER_URL": "", "STREAMIOT_EMULATOR_DB": db_path,
        "STREAMIOT_EMULATOR_TOKEN_TTL": 60, "STREAMIOT_CONNECT_TIMEOUT": 3.05, "STREAMIOT_READ_TIMEOUT": 10.0,
    })
    assert (sio.base_url, sio.reader_url) == ("http://streamiot.embedded", "http://streamiot.embedded/reader")
    assert made == [(db_path, 60)]
    adapter = sio.session.get_adapter("http://streamiot.embedded/reader/channels/x/messages")
    assert isinstance(adapter, FakeAdapter) and adapter.wsgi_app == "the wsgi app"


# --- secrets --------------------------------------------------------------------------


def test_secrets_never_reach_logs_errors_or_reprs(sio, user, requests_mock, login, caplog):
    caplog.set_level(logging.DEBUG)
    raised = []
    requests_mock.post(f"{BASE}/users", **created("users", USER_ID))
    requests_mock.post(f"{BASE}/things", status_code=500)
    requests_mock.post(f"{BASE}/http/channels/{CHANNEL_ID}/messages", status_code=500)
    requests_mock.get(READ_URL, exc=requests.exceptions.ReadTimeout)
    requests_mock.post(f"{BASE}/channels", status_code=201, text=json.dumps({"key": THING_KEY}))

    sio.create_user(EMAIL, PASSWORD, token="admin-secret-token")
    for call in (
        lambda: user.create_thing("a", key=THING_KEY),
        lambda: sio.publish(CHANNEL_ID, THING_KEY, messages.closed(THING_ID)),
        lambda: sio.read_messages(CHANNEL_ID, thing_key=THING_KEY),
        lambda: user.create_channel("a"),
    ):
        with pytest.raises(StreamIoTError) as caught:
            call()
        raised.append(str(caught.value))

    shown = caplog.text + " ".join(raised) + repr(user) + repr(sio)
    for secret in (PASSWORD, OLD_TOKEN, NEW_TOKEN, THING_KEY, "admin-secret-token"):
        assert secret not in shown
    assert isinstance(user, UserAPI)
