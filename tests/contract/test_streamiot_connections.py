"""Contract: connecting things to channels, and the pages of connected objects.

POST /connect, PUT /disconnect and the older single connect PUT /channels/{c}/things/{t}.
"""
import uuid

from tests.contract.checks import assert_empty, assert_error, assert_json_empty


def _connect(target, user, channel_ids, thing_ids):
    return target.call("POST", "/connect", user=user, json={"channel_ids": channel_ids, "thing_ids": thing_ids})


def _disconnect(target, user, channel_ids, thing_ids):
    return target.call("PUT", "/disconnect", user=user, json={"channel_ids": channel_ids, "thing_ids": thing_ids})


def test_connect_answers_200_with_an_empty_json_body(target, tag):
    user = target.user()
    channel_id = target.create_channel(user, f"{tag}-ch")
    thing_id, _ = target.create_thing(user, f"{tag}-th")

    assert_json_empty(_connect(target, user, [channel_id], [thing_id]), 200)


def test_connecting_again_is_409(target, tag):
    user = target.user()
    channel_id = target.create_channel(user, f"{tag}-ch")
    thing_id, _ = target.create_thing(user, f"{tag}-th")
    _connect(target, user, [channel_id], [thing_id])

    assert_error(_connect(target, user, [channel_id], [thing_id]), 409)


def test_connecting_an_unknown_channel_or_thing_is_404(target, tag):
    user = target.user()
    channel_id = target.create_channel(user, f"{tag}-ch")
    thing_id, _ = target.create_thing(user, f"{tag}-th")

    assert_error(_connect(target, user, [str(uuid.uuid4())], [thing_id]), 404)
    assert_error(_connect(target, user, [channel_id], [str(uuid.uuid4())]), 404)


def test_connecting_another_users_thing_is_404(target, tag):
    channel_id = target.create_channel(target.user(), f"{tag}-ch")
    foreign_thing, _ = target.create_thing(target.user("other"), f"{tag}-th")

    assert_error(_connect(target, target.user(), [channel_id], [foreign_thing]), 404)


def test_connecting_an_empty_list_is_400(target, tag):
    user = target.user()
    thing_id, _ = target.create_thing(user, f"{tag}-th")

    assert_error(_connect(target, user, [], [thing_id]), 400, "empty list provided")


def test_connect_with_a_bad_token_is_an_empty_500(target, tag):
    answer = target.call(
        "POST",
        "/connect",
        headers={"Authorization": "Bearer not-a-token"},
        json={"channel_ids": [str(uuid.uuid4())], "thing_ids": [str(uuid.uuid4())]},
    )

    assert_empty(answer, 500)


def test_disconnect_answers_200_then_404_when_not_connected(target, tag):
    user = target.user()
    channel_id = target.create_channel(user, f"{tag}-ch")
    thing_id, _ = target.create_thing(user, f"{tag}-th")
    _connect(target, user, [channel_id], [thing_id])

    first = _disconnect(target, user, [channel_id], [thing_id])
    again = _disconnect(target, user, [channel_id], [thing_id])

    assert first.status_code == 200
    assert_error(again, 404)


def test_single_connect_answers_200_then_409_and_404_for_unknown(target, tag):
    user = target.user()
    channel_id = target.create_channel(user, f"{tag}-ch")
    thing_id, _ = target.create_thing(user, f"{tag}-th")

    first = target.call("PUT", f"/channels/{channel_id}/things/{thing_id}", user=user)
    again = target.call("PUT", f"/channels/{channel_id}/things/{thing_id}", user=user)
    unknown = target.call("PUT", f"/channels/{channel_id}/things/{uuid.uuid4()}", user=user)

    assert first.status_code == 200
    assert_error(again, 409)
    assert_error(unknown, 404)


def test_connection_pages_list_each_side(target, tag):
    user = target.user()
    channel_a = target.create_channel(user, f"{tag}-a")
    channel_b = target.create_channel(user, f"{tag}-b")
    thing_id, key = target.create_thing(user, f"{tag}-th")
    _connect(target, user, [channel_a, channel_b], [thing_id])

    channels = target.call("GET", f"/things/{thing_id}/channels", user=user)
    things = target.call("GET", f"/channels/{channel_a}/things", user=user)

    assert channels.status_code == 200
    assert channels.json()["total"] == 2
    assert sorted(c["id"] for c in channels.json()["channels"]) == sorted([channel_a, channel_b])
    assert things.status_code == 200
    assert [(t["id"], t["key"]) for t in things.json()["things"]] == [(thing_id, key)]


def test_disconnected_thing_leaves_the_connection_page(target, tag):
    user = target.user()
    channel_id = target.create_channel(user, f"{tag}-ch")
    thing_id, _ = target.create_thing(user, f"{tag}-th")
    _connect(target, user, [channel_id], [thing_id])
    _disconnect(target, user, [channel_id], [thing_id])

    page = target.call("GET", f"/channels/{channel_id}/things", user=user).json()

    assert page["total"] == 0 and page["things"] == []
