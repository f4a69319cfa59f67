"""Contract: the reader (GET {reader}/channels/{id}/messages).

Sources, Mainflux 0.13.0: readers/api/transport.go (query, auth headers),
readers/api/requests.go (limits), readers/postgres/messages.go (filters, `format`),
pkg/transformers/senml/transformer.go and mainflux/senml Normalize (what a pack is stored as).
"""
import base64
import time

import pytest

from tests.contract.checks import assert_error

T0 = 1_700_000_000.0  # an absolute SenML time (>= 2**28)


def _thing(key):
    return {"Authorization": f"Thing {key}"}


def test_an_empty_channel_answers_total_0_and_no_messages_key(target, tag):
    channel_id, _, key = target.device(target.user(), tag)

    answer = target.read(channel_id, headers=_thing(key))

    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("application/json")
    page = answer.json()
    assert page["total"] == 0
    assert "messages" not in page
    assert (page["offset"], page["limit"], page["format"]) == (0, 10, "messages")


def test_a_message_carries_channel_publisher_protocol_resolved_name_unit_time_value(target, tag):
    user = target.user()
    channel_id, thing_id, key = target.device(user, tag)
    target.publish(channel_id, key, [{"bn": f"{thing_id}_", "n": "AUTH", "u": "PIN", "v": 1234, "t": T0}])

    page = target.read_until(channel_id, _thing(key), total=1)

    assert page["messages"] == [
        {
            "channel": channel_id,
            "publisher": thing_id,
            "protocol": "http",
            "name": f"{thing_id}_AUTH",
            "unit": "PIN",
            "time": T0,
            "value": 1234,
        }
    ]


def test_string_and_bool_values_come_back_under_their_own_keys(target, tag):
    user = target.user()
    channel_id, thing_id, key = target.device(user, tag)
    target.publish(
        channel_id,
        key,
        [
            {"bn": f"{thing_id}_", "n": "ADD", "u": "PublicKey", "vs": "a2V5", "t": T0},
            {"n": "CONNECT", "u": "Requested", "vb": True, "t": T0 + 1},
        ],
    )

    page = target.read_until(channel_id, _thing(key), total=2)

    connect, add = page["messages"]
    assert connect["bool_value"] is True and "value" not in connect
    assert add["string_value"] == "a2V5" and "value" not in add
    # The base name carries over to later records of the pack.
    assert connect["name"] == f"{thing_id}_CONNECT"


def test_the_name_filter_is_exact_on_the_resolved_name(target, tag):
    user = target.user()
    channel_id, thing_id, key = target.device(user, tag)
    target.publish(channel_id, key, [{"bn": f"{thing_id}_", "n": "AUTH", "u": "PIN", "v": 1234}])
    target.read_until(channel_id, _thing(key), total=1)

    by_resolved = target.read(channel_id, headers=_thing(key), params={"name": f"{thing_id}_AUTH"}).json()
    by_short = target.read(channel_id, headers=_thing(key), params={"name": "AUTH"}).json()

    assert by_resolved["total"] == 1
    assert by_resolved["name"] == f"{thing_id}_AUTH"  # filters are echoed
    assert by_short["total"] == 0 and "messages" not in by_short


def test_messages_come_newest_first_whatever_the_publish_order(target, tag):
    user = target.user()
    channel_id, thing_id, key = target.device(user, tag)
    for offset in (20, 0, 10):
        target.publish(channel_id, key, [{"bn": f"{thing_id}_", "n": f"M{offset}", "v": offset, "t": T0 + offset}])

    page = target.read_until(channel_id, _thing(key), total=3)

    assert [m["time"] for m in page["messages"]] == [T0 + 20, T0 + 10, T0]


@pytest.mark.parametrize("given", [{}, {"t": 0}], ids=["no-t", "t-0"])
def test_a_record_without_time_is_stamped_with_the_moment_of_reception(target, tag, given):
    user = target.user()
    channel_id, thing_id, key = target.device(user, tag)
    before = time.time()
    target.publish(channel_id, key, [{"bn": f"{thing_id}_", "n": "HEARTBEAT", "u": "s", "v": 5, **given}])

    page = target.read_until(channel_id, _thing(key), total=1)

    # A deployment's clock may differ a little from ours.
    assert abs(page["messages"][0]["time"] - before) < 120


def test_a_small_or_negative_time_is_stored_as_given_and_sorts_last(target, tag):
    """transformer.go keeps any non-zero time: `t: -5` is 1970, not "5 seconds ago"."""
    user = target.user()
    channel_id, thing_id, key = target.device(user, tag)
    target.publish(channel_id, key, [{"bn": f"{thing_id}_", "n": "OLD", "v": 1, "t": -5},
                                     {"n": "SMALL", "v": 2, "t": 10}])
    target.publish(channel_id, key, [{"bn": f"{thing_id}_", "n": "NOW", "v": 3}])

    page = target.read_until(channel_id, _thing(key), total=3)
    recent = target.read(channel_id, headers=_thing(key), params={"from": time.time() - 3600}).json()

    assert [(m["name"], m["time"]) for m in page["messages"][1:]] == [
        (f"{thing_id}_SMALL", 10), (f"{thing_id}_OLD", -5)]
    assert [m["name"] for m in recent["messages"]] == [f"{thing_id}_NOW"]


def test_base_value_applies_to_its_own_record_only(target, tag):
    """mainflux/senml Normalize adds `bv` to the `v` of its record; `bn` carries over."""
    user = target.user()
    channel_id, thing_id, key = target.device(user, tag)
    target.publish(channel_id, key, [{"bn": f"{thing_id}_", "bv": 100, "n": "A", "v": 1, "t": T0},
                                     {"n": "B", "v": 2, "t": T0 + 1}])

    page = target.read_until(channel_id, _thing(key), total=2)

    assert [(m["name"], m["value"]) for m in page["messages"]] == [
        (f"{thing_id}_B", 2), (f"{thing_id}_A", 101)]


def test_publisher_filter_keeps_only_that_things_messages(target, tag):
    user = target.user()
    channel_id, thing_a, key_a = target.device(user, tag)
    thing_b, key_b = target.create_thing(user, f"{tag}-b")
    target.connect(user, [channel_id], [thing_b])
    target.publish(channel_id, key_a, [{"bn": f"{thing_a}_", "n": "HEARTBEAT", "v": 1}])
    target.publish(channel_id, key_b, [{"bn": f"{thing_a}_", "n": "HEARTBEAT", "v": 2}])
    target.read_until(channel_id, _thing(key_a), total=2)

    page = target.read(channel_id, headers=_thing(key_a), params={"publisher": thing_b}).json()

    assert page["total"] == 1
    assert page["publisher"] == thing_b
    assert [(m["publisher"], m["value"]) for m in page["messages"]] == [(thing_b, 2)]


def test_from_and_to_select_a_time_window(target, tag):
    user = target.user()
    channel_id, thing_id, key = target.device(user, tag)
    target.publish(
        channel_id,
        key,
        [{"bn": f"{thing_id}_", "n": "E", "v": n, "t": T0 + 10 * n} for n in range(3)],
    )
    target.read_until(channel_id, _thing(key), total=3)

    after = target.read(channel_id, headers=_thing(key), params={"from": T0 + 5}).json()
    window = target.read(channel_id, headers=_thing(key), params={"from": T0 + 5, "to": T0 + 15}).json()

    assert [m["value"] for m in after["messages"]] == [2, 1]
    assert [m["value"] for m in window["messages"]] == [1]


def test_value_filters_with_comparators(target, tag):
    user = target.user()
    channel_id, thing_id, key = target.device(user, tag)
    target.publish(
        channel_id,
        key,
        [
            {"bn": f"{thing_id}_", "n": "BATTERY", "u": "%EL", "v": 20, "t": T0},
            {"n": "BATTERY", "u": "%EL", "v": 80, "t": T0 + 1},
            {"n": "CLOSED", "vb": True, "t": T0 + 2},
            {"n": "REASON", "vs": "slots full", "t": T0 + 3},
        ],
    )
    target.read_until(channel_id, _thing(key), total=4)

    def values(**params):
        page = target.read(channel_id, headers=_thing(key), params=params).json()
        return [m.get("value", m.get("bool_value", m.get("string_value"))) for m in page.get("messages", [])]

    assert values(v=50, comparator="gt") == [80]
    assert values(v=80, comparator="le") == [80, 20]
    assert values(v=20) == [20]
    assert values(vb="true") == [True]
    assert values(vs="slots full") == ["slots full"]


@pytest.mark.parametrize(
    "params", [{"v": "0"}, {"v": "0", "comparator": "gt"}, {"vb": "false"}, {"from": "0"}, {"to": "0"}]
)
def test_zero_valued_filters_are_ignored_and_not_echoed(target, tag, params):
    """readers.PageMetadata's fields are `omitempty`: Go's zero value is no filter at all
    (readers/postgres/messages.go builds the WHERE from the marshalled page)."""
    user = target.user()
    channel_id, thing_id, key = target.device(user, tag)
    target.publish(
        channel_id,
        key,
        [{"bn": f"{thing_id}_", "n": "BATTERY", "v": 20, "t": T0}, {"n": "CLOSED", "vb": True, "t": T0 + 1}],
    )
    target.read_until(channel_id, _thing(key), total=2)

    page = target.read(channel_id, headers=_thing(key), params=params).json()

    assert page["total"] == 2
    assert not {"v", "vb", "from", "to"} & set(page)


def test_a_filter_value_with_a_comma_is_400_invalid_query_parameters(target, tag):
    """The router (go-zoo/bone) splits every query value at commas: two values are a 400."""
    channel_id, _, key = target.device(target.user(), tag)

    answer = target.read(channel_id, headers=_thing(key), params={"vs": "a,b"})

    assert_error(answer, 400, "invalid query parameters")


def test_an_empty_format_reads_messages_without_echoing_a_format(target, tag):
    channel_id, _, key = target.device(target.user(), tag)

    page = target.read(channel_id, headers=_thing(key), params={"format": ""}).json()

    assert page == {"offset": 0, "limit": 10, "total": 0}


def test_a_format_naming_no_table_is_an_empty_page_with_zero_paging(target, tag):
    """readers/postgres/messages.go reads the table named by `format`; when PostgreSQL has
    no such table it returns MessagesPage{}, so even offset and limit come back as 0."""
    user = target.user()
    channel_id, thing_id, key = target.device(user, tag)
    target.publish(channel_id, key, [{"bn": f"{thing_id}_", "n": "E", "v": 1}])
    target.read_until(channel_id, _thing(key), total=1)

    answer = target.read(channel_id, headers=_thing(key), params={"format": "no_such_format", "limit": 5})

    assert answer.status_code == 200
    assert answer.json() == {"offset": 0, "limit": 0, "total": 0}


def test_offset_and_limit_page_through_newest_first(target, tag):
    user = target.user()
    channel_id, thing_id, key = target.device(user, tag)
    target.publish(channel_id, key, [{"bn": f"{thing_id}_", "n": "E", "v": n, "t": T0 + n} for n in range(5)])
    target.read_until(channel_id, _thing(key), total=5)

    page = target.read(channel_id, headers=_thing(key), params={"offset": 1, "limit": 2}).json()

    assert (page["offset"], page["limit"], page["total"]) == (1, 2, 5)
    assert [m["value"] for m in page["messages"]] == [3, 2]


@pytest.mark.parametrize("limit", ["0", "1001"])
def test_reader_limit_outside_1_to_1000_is_400(target, tag, limit):
    channel_id, _, key = target.device(target.user(), tag)

    assert target.read(channel_id, headers=_thing(key), params={"limit": limit}).status_code == 400


def test_subtopic_is_stored_and_filterable(target, tag):
    user = target.user()
    channel_id, thing_id, key = target.device(user, tag)
    target.publish(channel_id, key, [{"bn": f"{thing_id}_", "n": "E", "v": 1}], subtopic="door/state")
    target.publish(channel_id, key, [{"bn": f"{thing_id}_", "n": "E", "v": 2}])
    target.read_until(channel_id, _thing(key), total=2)

    page = target.read(channel_id, headers=_thing(key), params={"subtopic": "door.state"}).json()

    assert [(m["subtopic"], m["value"]) for m in page["messages"]] == [("door.state", 1)]


def test_bearer_token_reads_any_existing_channel_even_another_users(target, tag):
    owner = target.user()
    channel_id, thing_id, key = target.device(owner, tag)
    target.publish(channel_id, key, [{"bn": f"{thing_id}_", "n": "E", "v": 1}])
    target.read_until(channel_id, owner.auth, total=1)

    page = target.read_until(channel_id, target.user("other").auth, total=1)

    assert page["messages"][0]["publisher"] == thing_id


@pytest.mark.parametrize("scheme", ["basic", "none", "lower-case-thing", "bare-key"])
def test_an_unreadable_authorization_is_401_even_basic_auth_with_the_key(target, tag, scheme):
    """apiutil.ExtractThingKey / ExtractBearerToken take only `Thing ` and `Bearer `."""
    channel_id, _, key = target.device(target.user(), tag)
    headers = {
        "basic": {"Authorization": "Basic " + base64.b64encode(f":{key}".encode()).decode()},
        "none": {},
        "lower-case-thing": {"Authorization": f"thing {key}"},
        "bare-key": {"Authorization": key},
    }[scheme]

    assert_error(target.read(channel_id, headers=headers), 401, "missing or invalid bearer user token")


def test_a_garbage_bearer_token_is_500_with_the_authorization_error(target, tag):
    channel_id, _, _ = target.device(target.user(), tag)

    answer = target.read(channel_id, headers={"Authorization": "Bearer not-a-token"})

    assert_error(answer, 500, "failed to perform authorization over the entity")



def test_a_wrong_key_is_500_with_the_authorization_error(target, tag):
    channel_id, _, _ = target.device(target.user(), tag)

    answer = target.read(channel_id, headers=_thing("00000000-0000-4000-8000-000000000000"))

    assert_error(answer, 500, "failed to perform authorization over the entity")


def test_a_key_of_a_thing_not_connected_is_500_with_the_authorization_error(target, tag):
    user = target.user()
    channel_id, _, _ = target.device(user, tag)
    _, stranger_key = target.create_thing(user, f"{tag}-stranger")

    answer = target.read(channel_id, headers=_thing(stranger_key))

    assert_error(answer, 500, "failed to perform authorization over the entity")

