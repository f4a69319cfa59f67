"""Contract: the HTTP adapter (POST /http/channels/{id}/messages).

Sources, Mainflux 0.13.0: http/api/transport.go (content type, Basic auth or `Thing `),
http/api/requests.go (no key: apiutil.ErrBearerToken).
"""
import base64
import json

import pytest

from tests.contract.checks import SENML, TIMEOUT, assert_empty, assert_error

PIN_PACK = [{"bn": "x_", "n": "AUTH", "u": "PIN", "v": 1234}]


def test_publishing_answers_202_with_no_body_and_no_content_type(target, tag):
    channel_id, _, key = target.device(target.user(), tag)

    assert_empty(target.publish(channel_id, key, PIN_PACK), 202)


def test_any_body_is_accepted_with_202_and_invalid_senml_is_dropped(target, tag):
    user = target.user()
    channel_id, thing_id, key = target.device(user, tag)

    answers = [
        target.publish(channel_id, key, b"this is not json"),
        target.publish(channel_id, key, {"n": "not-a-list", "v": 1}),
        target.publish(channel_id, key, [{"n": "two-values", "v": 1, "vs": "x"}]),
        target.publish(channel_id, key, [{"n": "no-value"}]),
    ]
    target.publish(channel_id, key, [{"bn": f"{thing_id}_", "n": "MARKER", "vb": True}])

    assert [answer.status_code for answer in answers] == [202, 202, 202, 202]
    page = target.read_until(channel_id, user.auth, total=1)
    assert [message["name"] for message in page["messages"]] == [f"{thing_id}_MARKER"]


def test_content_type_other_than_senml_json_is_415(target, tag):
    channel_id, _, key = target.device(target.user(), tag)

    for content_type in ("text/plain", "application/json"):
        answer = target.publish(channel_id, key, PIN_PACK, headers={"Content-Type": content_type})
        assert answer.status_code == 415, content_type


def test_a_wrong_key_is_an_empty_500(target, tag):
    channel_id, _, _ = target.device(target.user(), tag)

    assert_empty(target.publish(channel_id, "00000000-0000-4000-8000-000000000000", PIN_PACK), 500)


def test_a_thing_not_connected_to_the_channel_is_an_empty_500(target, tag):
    user = target.user()
    channel_id, _, _ = target.device(user, tag)
    _, stranger_key = target.create_thing(user, f"{tag}-stranger")

    assert_empty(target.publish(channel_id, stranger_key, PIN_PACK), 500)


@pytest.mark.parametrize("scheme", ["none", "lower-case-thing", "bearer", "bare-key"])
def test_every_unreadable_authorization_is_401_with_the_bearer_message(target, tag, scheme):
    channel_id, _, key = target.device(target.user(), tag)
    authorization = {"lower-case-thing": f"thing {key}", "bearer": "Bearer x", "bare-key": key}.get(scheme)

    answer = target.http.post(
        f"{target.url}/http/channels/{channel_id}/messages",
        data=json.dumps(PIN_PACK),
        headers={"Content-Type": SENML, **({"Authorization": authorization} if authorization else {})},
        timeout=TIMEOUT,
    )

    assert_error(answer, 401, "missing or invalid bearer user token")


def test_basic_auth_with_an_empty_user_and_the_key_as_password_publishes(target, tag):
    user = target.user()
    channel_id, _, key = target.device(user, tag)
    basic = base64.b64encode(f":{key}".encode()).decode()

    answer = target.publish(channel_id, key, PIN_PACK, headers={"Authorization": f"Basic {basic}"})

    assert_empty(answer, 202)
    target.read_until(channel_id, user.auth, total=1)


def test_an_error_body_of_the_adapter_is_json_under_text_plain(target, tag):
    channel_id, _, key = target.device(target.user(), tag)

    answer = target.publish(channel_id, key, PIN_PACK, headers={"Content-Type": "text/plain"})

    assert_error(answer, 415)
