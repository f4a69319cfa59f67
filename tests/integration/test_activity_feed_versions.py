"""The activity feed polls every 5 s with the version it shows (services/versions.py): while
nothing it shows has changed and its times read the same, the answer is a bodiless 304 that
htmx does not swap; any new event, a time turning ("5 minutes ago" -> "6 minutes ago"), other
filters or another household draw it again."""
from datetime import timedelta

from portal.extensions import db
from portal.models import ActivityEvent, utcnow
from tests.plugins.accounts import PASSWORD, Auth

POLL = {"HX-Request": "true", "X-IoTLock-Poll": "1"}


def _poll(client, etag=None, query=""):
    return client.get(f"/activity{query}", headers=dict(POLL, **({"If-None-Match": etag} if etag else {})))


def _event(account_id, summary, when, mailbox=None):
    db.session.add(ActivityEvent(account_id=account_id, actor_kind="box", actor_label="Front box", kind="box.closed",
                                 summary=summary, mailbox_id=mailbox.id if mailbox else None, occurred_at=when))
    db.session.commit()


def test_an_unchanged_feed_answers_304_and_a_new_event_draws_it_again(kit, member_client, time_machine):
    start = utcnow() - timedelta(hours=2)
    time_machine.move_to(start + timedelta(hours=2, seconds=5), tick=False)
    _event(kit.account.id, "Opened with Grandma's PIN", start)
    page = member_client.get("/activity").get_data(as_text=True)
    feed = page[page.index('id="activity-feed"'):]
    assert "If-None-Match" not in feed  # a full page's feed carries no version: its first poll draws it
    first = _poll(member_client)
    etag = first.headers["ETag"]
    assert first.status_code == 200 and f'"If-None-Match": "\\"{etag[1:-1]}\\""' in first.get_data(as_text=True)
    again = _poll(member_client, etag)
    assert again.status_code == 304 and again.get_data() == b""

    _event(kit.account.id, "Parcel delivered", utcnow())
    changed = _poll(member_client, etag)
    assert changed.status_code == 200 and "Parcel delivered" in changed.get_data(as_text=True)
    assert changed.headers["ETag"] != etag


def test_an_event_s_minutes_turn_with_the_event_not_with_the_clock_s_minute(kit, member_client, time_machine):
    start = utcnow().replace(second=20, microsecond=0)  # the clock's minutes turn 40 s after it
    time_machine.move_to(start + timedelta(minutes=5, seconds=45), tick=False)
    _event(kit.account.id, "Closed", start)
    seen = _poll(member_client)
    assert "5 minutes ago" in seen.get_data(as_text=True)
    time_machine.move_to(start + timedelta(minutes=5, seconds=59), tick=False)
    assert _poll(member_client, seen.headers["ETag"]).status_code == 304
    time_machine.move_to(start + timedelta(minutes=6), tick=False)
    turned = _poll(member_client, seen.headers["ETag"])
    assert turned.status_code == 200 and "6 minutes ago" in turned.get_data(as_text=True)


def test_a_version_holds_only_for_the_filters_it_was_drawn_with(kit, member_client, time_machine):
    time_machine.move_to(utcnow(), tick=False)
    _event(kit.account.id, "Closed", utcnow() - timedelta(hours=1))
    etag = _poll(member_client).headers["ETag"]
    assert _poll(member_client, etag).status_code == 304
    assert _poll(member_client, etag, "?kind=box").status_code == 200
    assert _poll(member_client, etag, "?page=2").status_code == 200


def test_another_household_s_version_or_changes_never_hold_or_move_this_one(app, kit, member_client, make_household,
                                                                            time_machine):
    time_machine.move_to(utcnow(), tick=False)
    _event(kit.account.id, "Opened with Grandma's PIN", utcnow() - timedelta(hours=1))
    etag = _poll(member_client).headers["ETag"]
    user, neighbour = make_household("neighbour@example.com", "Next door")
    db.session.commit()
    _event(neighbour.id, "Their own event", utcnow() - timedelta(hours=1))
    assert _poll(member_client, etag).status_code == 304  # their change leaves ours alone

    theirs = app.test_client()
    assert Auth(theirs).login(user.email, PASSWORD).status_code == 302
    drawn = _poll(theirs, etag)  # our version, sent from their login
    assert drawn.status_code == 200
    assert "Their own event" in drawn.get_data(as_text=True)
    assert "Grandma" not in drawn.get_data(as_text=True)
