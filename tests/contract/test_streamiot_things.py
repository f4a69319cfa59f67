"""Contract: things and channels (create, bulk, get, list with its filters, key, delete).

Sources, Mainflux 0.13.0: things/api/things/http/transport.go (query reading),
things/api/things/http/requests.go (validation and its order), internal/apiutil/errors.go
(texts), internal/apiutil/transport.go (Read*Query), go-zoo/bone GetQuery (comma split),
things/service.go and things/redis (the key cache).
"""
import json
import uuid

import pytest

from tests.contract.checks import assert_empty, assert_error, assert_json_empty, is_uuid

BAD_TOKEN = {"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.e30.not-a-signature"}


def _id_from(answer) -> str:
    return answer.headers["Location"].rsplit("/", 1)[-1]


def test_creating_a_thing_answers_location_empty_body_and_deprecation_warning(target, tag):
    user = target.user()

    answer = target.call("POST", "/things", user=user, json={"name": f"{tag}-gw"})
    target.remember("things", _id_from(answer), user)

    assert_json_empty(answer, 201)
    prefix, _, thing_id = answer.headers["Location"].rpartition("/")
    assert prefix == "/things"
    assert is_uuid(thing_id)
    assert answer.headers["Warning-Deprecated"]


def test_a_created_thing_has_a_uuid_key_and_keeps_its_metadata(target, tag):
    user = target.user()
    thing_id, key = target.create_thing(user, f"{tag}-gw", metadata={"household": tag})

    answer = target.call("GET", f"/things/{thing_id}", user=user)

    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json() == {"id": thing_id, "name": f"{tag}-gw", "key": key, "metadata": {"household": tag}}
    assert is_uuid(key)


def test_a_thing_created_with_a_key_uses_it_and_the_key_cannot_be_reused(target, tag):
    user = target.user()
    key = str(uuid.uuid4())
    thing_id, stored_key = target.create_thing(user, f"{tag}-a", key=key)

    again = target.call("POST", "/things", user=user, json={"name": f"{tag}-b", "key": key})

    assert stored_key == key
    assert_error(again, 409)


def test_creating_a_thing_with_a_bad_token_is_an_empty_500(target, tag):
    answer = target.call("POST", "/things", headers=BAD_TOKEN, json={"name": f"{tag}-gw"})

    assert_empty(answer, 500)


def test_creating_a_thing_without_application_json_is_415(target, tag):
    user = target.user()

    answer = target.call(
        "POST", "/things", user=user, data=json.dumps({"name": tag}), headers={"Content-Type": "text/plain"}
    )

    assert_error(answer, 415, "unsupported content type")


def test_bulk_create_returns_ids_and_keys_at_once(target, tag):
    user = target.user()

    answer = target.call(
        "POST", "/things/bulk", user=user, json=[{"name": f"{tag}-1"}, {"name": f"{tag}-2", "metadata": {"n": 2}}]
    )
    things = answer.json()["things"]
    for thing in things:
        target.remember("things", thing["id"], user)

    assert answer.status_code == 201
    assert [thing["name"] for thing in things] == [f"{tag}-1", f"{tag}-2"]
    assert things[1]["metadata"] == {"n": 2}
    assert all(is_uuid(thing["id"]) and is_uuid(thing["key"]) for thing in things)
    fetched = target.call("GET", f"/things/{things[0]['id']}", user=user).json()
    assert fetched["key"] == things[0]["key"]


def test_getting_an_unknown_thing_is_an_empty_500_not_404(target):
    answer = target.call("GET", f"/things/{uuid.uuid4()}", user=target.user())

    assert_empty(answer, 500)


def test_getting_another_users_thing_is_an_empty_500(target, tag):
    thing_id, _ = target.create_thing(target.user(), f"{tag}-gw")

    answer = target.call("GET", f"/things/{thing_id}", user=target.user("other"))

    assert_empty(answer, 500)


def test_a_deleted_thing_is_404_and_deleting_again_is_204(target, tag):
    user = target.user()
    thing_id, _ = target.create_thing(user, f"{tag}-gw")

    first = target.call("DELETE", f"/things/{thing_id}", user=user)
    again = target.call("DELETE", f"/things/{thing_id}", user=user)
    fetched = target.call("GET", f"/things/{thing_id}", user=user)

    assert_json_empty(first, 204)
    assert again.status_code == 204
    assert_error(fetched, 404, "entity not found")


def test_deleting_a_thing_that_never_existed_is_500(target):
    answer = target.call("DELETE", f"/things/{uuid.uuid4()}", user=target.user())

    assert answer.status_code == 500


def test_another_user_cannot_delete_a_thing(target, tag):
    user = target.user()
    thing_id, _ = target.create_thing(user, f"{tag}-gw")

    target.call("DELETE", f"/things/{thing_id}", user=target.user("other"))

    assert target.call("GET", f"/things/{thing_id}", user=user).status_code == 200


@pytest.mark.parametrize("limit", ["0", "101"])
def test_list_limit_outside_1_to_100_is_400(target, limit):
    answer = target.call("GET", "/things", user=target.user(), params={"limit": limit})

    assert_error(answer, 400, "invalid limit size")


def test_list_page_has_total_offset_limit_order_direction_and_default_limit_10(target, tag):
    user = target.user()
    for n in range(11):
        target.create_thing(user, f"{tag}-{n}")

    page = target.call("GET", "/things", user=user, params={"name": tag}).json()

    assert set(page) == {"total", "offset", "limit", "order", "direction", "things"}
    assert page["total"] == 11
    assert page["limit"] == 10
    assert len(page["things"]) == 10
    assert set(page["things"][0]) >= {"id", "name", "key"}


def test_list_pages_with_offset_and_limit_cover_everything_once(target, tag):
    user = target.user()
    ids = {target.create_thing(user, f"{tag}-{n}")[0] for n in range(5)}

    seen = []
    for offset in (0, 2, 4):
        page = target.call(
            "GET", "/things", user=user, params={"name": tag, "offset": offset, "limit": 2, "order": "name"}
        ).json()
        assert page["offset"] == offset
        seen += [thing["id"] for thing in page["things"]]

    assert sorted(seen) == sorted(ids)


def test_list_orders_by_name_in_either_direction(target, tag):
    user = target.user()
    for suffix in ("b", "c", "a"):
        target.create_thing(user, f"{tag}-{suffix}")

    up = target.call("GET", "/things", user=user, params={"name": tag, "order": "name", "dir": "asc"}).json()
    down = target.call("GET", "/things", user=user, params={"name": tag, "order": "name", "dir": "desc"}).json()

    assert [t["name"] for t in up["things"]] == [f"{tag}-a", f"{tag}-b", f"{tag}-c"]
    assert [t["name"] for t in down["things"]] == [f"{tag}-c", f"{tag}-b", f"{tag}-a"]
    assert (up["order"], up["direction"]) == ("name", "asc")


def test_name_filter_is_a_case_insensitive_substring_with_sql_wildcards(target, tag):
    user = target.user()
    names = [f"{tag}-gw_1", f"{tag}-gw-1", f"{tag}-gw-10", f"{tag}-GWX1", f"{tag}-gw1", f"{tag}-other"]
    for name in names:
        target.create_thing(user, name)

    def found(name_filter):
        page = target.call("GET", "/things", user=user, params={"name": name_filter, "limit": 100}).json()
        return sorted(thing["name"] for thing in page["things"])

    # `_` matches any one character: the decoys gw-1, gw-10 and GWX1 come back too.
    assert found(f"{tag}-gw_1") == sorted([f"{tag}-gw_1", f"{tag}-gw-1", f"{tag}-gw-10", f"{tag}-GWX1"])
    assert found(f"{tag.upper()}-GW_1") == found(f"{tag}-gw_1")
    # `%` matches any run of characters.
    assert found(f"{tag}%1") == sorted(names[:5])
    assert found(f"{tag}-oth") == [f"{tag}-other"]


def test_names_are_not_unique(target, tag):
    user = target.user()
    target.create_thing(user, f"{tag}-same")
    target.create_thing(user, f"{tag}-same")

    page = target.call("GET", "/things", user=user, params={"name": f"{tag}-same"}).json()

    assert page["total"] == 2


def test_a_one_key_metadata_filter_returns_things_whose_metadata_contains_it(target, tag):
    user = target.user()
    target.create_thing(user, f"{tag}-a", metadata={"tag": f"{tag}-gateway", "role": "gateway"})
    target.create_thing(user, f"{tag}-b", metadata={"tag": f"{tag}-portal", "role": "portal"})

    page = target.call("GET", "/things", user=user, params={"metadata": json.dumps({"tag": f"{tag}-portal"})}).json()

    assert [thing["name"] for thing in page["things"]] == [f"{tag}-b"]


@pytest.mark.parametrize(
    "params",
    [
        {"metadata": json.dumps({"a": 1, "b": 2})},  # two keys: the comma splits it
        {"metadata": "not json"},
        {"metadata": "[1]"},
        {"metadata": ""},
        {"name": "gw,1"},
        {"limit": "ten"},
    ],
    ids=["two-key-metadata", "metadata-not-json", "metadata-not-object", "metadata-empty", "name-comma", "limit-nan"],
)
def test_a_query_the_router_cannot_read_is_400_invalid_query_parameters(target, params):
    """bone splits every query value at commas; apiutil.Read*Query refuses two values and
    metadata that does not decode into a JSON object."""
    answer = target.call("GET", "/things", user=target.user(), params=params)

    assert_error(answer, 400, "invalid query parameters")


@pytest.mark.parametrize(
    "params, message",
    [
        ({"order": "created"}, "invalid list order provided"),
        ({"dir": "up"}, "invalid list direction provided"),
        ({"name": "n" * 1025}, "invalid name size"),
    ],
    ids=["order", "dir", "name-1025"],
)
def test_a_bad_order_direction_or_name_size_has_its_own_400(target, params, message):
    answer = target.call("GET", "/things", user=target.user(), params=params)

    assert_error(answer, 400, message)


def test_a_name_filter_of_1024_characters_is_accepted(target):
    answer = target.call("GET", "/things", user=target.user(), params={"name": "n" * 1024})

    assert answer.status_code == 200
    assert answer.json()["total"] == 0


def test_connection_pages_ignore_name_and_metadata(target, tag):
    """decodeListByConnection reads offset, limit, disconnected, order and dir only."""
    user = target.user()
    channel_id = target.create_channel(user, f"{tag}-ch")
    thing_id, _ = target.create_thing(user, f"{tag}-th")
    target.connect(user, [channel_id], [thing_id])

    page = target.call(
        "GET", f"/channels/{channel_id}/things", user=user, params={"name": "nothing-like-it", "metadata": "x"}
    )

    assert page.status_code == 200
    assert [thing["id"] for thing in page.json()["things"]] == [thing_id]


def test_a_user_lists_only_its_own_things_and_channels(target, tag):
    target.create_thing(target.user(), f"{tag}-gw")
    target.create_channel(target.user(), f"{tag}-ch")
    other = target.user("other")

    things = target.call("GET", "/things", user=other, params={"name": tag}).json()
    channels = target.call("GET", "/channels", user=other, params={"name": tag}).json()

    assert things["total"] == 0 and things["things"] == []
    assert channels["total"] == 0 and channels["channels"] == []


def test_listing_with_a_bad_token_is_an_empty_500(target):
    assert_empty(target.call("GET", "/things", headers=BAD_TOKEN), 500)


# --- channels ---


def test_creating_a_channel_answers_location_and_empty_body(target, tag):
    user = target.user()

    answer = target.call("POST", "/channels", user=user, json={"name": f"{tag}-ch"})
    target.remember("channels", _id_from(answer), user)

    assert_json_empty(answer, 201)
    prefix, _, channel_id = answer.headers["Location"].rpartition("/")
    assert prefix == "/channels"
    assert is_uuid(channel_id)


def test_a_channel_reads_back_without_a_key(target, tag):
    user = target.user()
    channel_id = target.create_channel(user, f"{tag}-ch", metadata={"kind": "mailbox"})

    answer = target.call("GET", f"/channels/{channel_id}", user=user)

    assert answer.status_code == 200
    assert answer.json() == {"id": channel_id, "name": f"{tag}-ch", "metadata": {"kind": "mailbox"}}


def test_bulk_channels_return_ids(target, tag):
    user = target.user()

    answer = target.call("POST", "/channels/bulk", user=user, json=[{"name": f"{tag}-1"}, {"name": f"{tag}-2"}])
    channels = answer.json()["channels"]
    for channel in channels:
        target.remember("channels", channel["id"], user)

    assert answer.status_code == 201
    assert [channel["name"] for channel in channels] == [f"{tag}-1", f"{tag}-2"]
    assert all(is_uuid(channel["id"]) for channel in channels)


def test_getting_an_unknown_or_foreign_channel_is_an_empty_500(target, tag):
    channel_id = target.create_channel(target.user(), f"{tag}-ch")

    assert_empty(target.call("GET", f"/channels/{uuid.uuid4()}", user=target.user()), 500)
    assert_empty(target.call("GET", f"/channels/{channel_id}", user=target.user("other")), 500)


def test_a_deleted_channel_is_404_and_deleting_again_is_204(target, tag):
    user = target.user()
    channel_id = target.create_channel(user, f"{tag}-ch")

    first = target.call("DELETE", f"/channels/{channel_id}", user=user)
    again = target.call("DELETE", f"/channels/{channel_id}", user=user)

    assert_json_empty(first, 204)
    assert again.status_code == 204
    assert_error(target.call("GET", f"/channels/{channel_id}", user=user), 404, "entity not found")


def test_channel_list_has_the_page_shape_and_filters_by_name(target, tag):
    user = target.user()
    target.create_channel(user, f"{tag}-gw_1")
    target.create_channel(user, f"{tag}-gw-1")

    page = target.call("GET", "/channels", user=user, params={"name": f"{tag}-gw_1"}).json()

    assert set(page) == {"total", "offset", "limit", "order", "direction", "channels"}
    assert page["total"] == 2


def test_channel_list_limit_over_100_is_400(target):
    answer = target.call("GET", "/channels", user=target.user(), params={"limit": 101})

    assert_error(answer, 400, "invalid limit size")


# --- changing a thing's key ---


def _patch_key(target, user, thing_id, key):
    return target.call("PATCH", f"/things/{thing_id}/key", user=user, json={"key": key})


def test_changing_a_key_answers_200_with_an_empty_json_body_and_the_new_key_is_stored(target, tag):
    user = target.user()
    thing_id, _ = target.create_thing(user, f"{tag}-gw")
    new_key = str(uuid.uuid4())

    assert_json_empty(_patch_key(target, user, thing_id, new_key), 200)
    assert target.call("GET", f"/things/{thing_id}", user=user).json()["key"] == new_key


def test_changing_to_a_key_already_taken_is_409(target, tag):
    user = target.user()
    thing_id, _ = target.create_thing(user, f"{tag}-a")
    _, taken = target.create_thing(user, f"{tag}-b")

    assert_error(_patch_key(target, user, thing_id, taken), 409, "entity already exists")


def test_changing_the_key_of_an_unknown_or_foreign_thing_is_404(target, tag):
    foreign_id, _ = target.create_thing(target.user("other"), f"{tag}-gw")

    assert_error(_patch_key(target, target.user(), str(uuid.uuid4()), str(uuid.uuid4())), 404, "entity not found")
    assert_error(_patch_key(target, target.user(), foreign_id, str(uuid.uuid4())), 404, "entity not found")


def test_changing_to_an_empty_key_is_400(target, tag):
    user = target.user()
    thing_id, _ = target.create_thing(user, f"{tag}-gw")

    assert_error(_patch_key(target, user, thing_id, ""), 400, "missing or invalid bearer entity key")


def test_an_old_key_that_was_used_keeps_working_until_the_thing_is_deleted(target, tag):
    """things/service.go caches key -> thing in Redis when a key is used, and UpdateKey
    does not clear it; RemoveThing clears the key the thing used last (here the old one:
    the new key is never used, see tests/unit/test_emulator_key_cache.py for when it is)."""
    user = target.user()
    channel_id, thing_id, old_key = target.device(user, tag)
    pack = [{"bn": f"{thing_id}_", "n": "E", "v": 1}]
    assert target.publish(channel_id, old_key, pack).status_code == 202
    assert _patch_key(target, user, thing_id, str(uuid.uuid4())).status_code == 200

    old_publish = target.publish(channel_id, old_key, pack)
    old_read = target.read_until(channel_id, {"Authorization": f"Thing {old_key}"}, total=2)
    target.call("DELETE", f"/things/{thing_id}", user=user)

    assert old_publish.status_code == 202
    assert {m["publisher"] for m in old_read["messages"]} == {thing_id}
    assert_empty(target.publish(channel_id, old_key, pack), 500)
    assert_error(
        target.read(channel_id, headers={"Authorization": f"Thing {old_key}"}),
        500,
        "failed to perform authorization over the entity",
    )


def test_deleting_a_thing_revokes_its_key_for_publish_and_read(target, tag):
    """How IoTLock replaces a gateway's keys: a new thing, then the old one deleted. The old
    key, used before (so cached), publishes and reads nothing once its thing is gone."""
    user = target.user()
    channel_id, thing_id, key = target.device(user, tag)
    pack = [{"bn": f"{thing_id}_", "n": "E", "v": 1}]
    assert target.publish(channel_id, key, pack).status_code == 202
    target.read_until(channel_id, {"Authorization": f"Thing {key}"}, total=1)

    target.call("DELETE", f"/things/{thing_id}", user=user)

    assert_empty(target.publish(channel_id, key, pack), 500)
    assert_error(
        target.read(channel_id, headers={"Authorization": f"Thing {key}"}),
        500,
        "failed to perform authorization over the entity",
    )
