"""Contract: things and channels (create, bulk, get, list with its filters, delete)."""
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


def test_metadata_filter_returns_things_whose_metadata_contains_it(target, tag):
    user = target.user()
    target.create_thing(user, f"{tag}-a", metadata={"tag": tag, "role": "gateway"})
    target.create_thing(user, f"{tag}-b", metadata={"tag": tag, "role": "portal"})

    page = target.call(
        "GET", "/things", user=user, params={"metadata": json.dumps({"tag": tag, "role": "portal"})}
    ).json()

    assert [thing["name"] for thing in page["things"]] == [f"{tag}-b"]


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
