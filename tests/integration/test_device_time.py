"""Device time: events are dated when they happened (the platform's receive time, or a box
clock only when believable), ordered by receive time, and the time a box event was
written down is kept apart. Which channels are read fast: those of households someone is
looking at, and those waiting for an answer."""
import csv
import io
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from portal.extensions import db
from portal.models import Account, ActivityEvent, ChannelCursor
from portal.services import device_reports
from portal.streamiot import messages
from tests.plugins.accounts import PASSWORD, Auth

START = datetime(2026, 12, 4, 9, 0, 0, tzinfo=UTC)


def _box_events():
    db.session.expire_all()
    return db.session.scalars(
        sa.select(ActivityEvent).where(ActivityEvent.kind.startswith("box.")).order_by(ActivityEvent.id)
    ).all()


def _with_t(pack, t):
    pack[0]["t"] = t
    return pack


def _logged_in(app, kit):
    auth = Auth(app.test_client())
    assert auth.login(kit.user.email, PASSWORD).status_code == 302
    return auth.client


def test_three_presses_five_seconds_apart_read_together_keep_three_times_in_the_csv(kit, app, time_machine):
    time_machine.move_to(START, tick=False)
    gateway, mailbox = kit.ready_mailbox()
    kit.add_pin(mailbox, "Grandma", "4821")
    kit.confirm_all(gateway)
    device = kit.device(gateway)
    for i in range(3):
        time_machine.move_to(START + timedelta(minutes=5, seconds=5 * i), tick=False)
        device.publish(messages.opened_with_pin(gateway.thing_id, 4821), mailbox.channel_id)
    time_machine.move_to(START + timedelta(minutes=6), tick=False)
    kit.poll()  # all three read in one pass, a minute later

    events = [e for e in _box_events() if e.kind == "box.opened_pin"]
    assert [e.occurred_at for e in events] == [START + timedelta(minutes=5, seconds=s) for s in (0, 5, 10)]
    assert {e.recorded_at for e in events} == {START + timedelta(minutes=6)}

    response = _logged_in(app, kit).get("/activity.csv")
    rows = [r for r in csv.DictReader(io.StringIO(response.get_data(as_text=True))) if r["kind"] == "box.opened_pin"]
    assert sorted(r["time_utc"] for r in rows) == ["2026-12-04T09:05:00Z", "2026-12-04T09:05:05Z",
                                                   "2026-12-04T09:05:10Z"]
    assert {r["recorded_utc"] for r in rows} == {"2026-12-04T09:06:00Z"}


def test_a_relative_device_time_is_still_applied_and_ordered_by_when_it_was_received(kit, time_machine):
    time_machine.move_to(START, tick=False)
    gateway, mailbox = kit.ready_mailbox()
    device, g = kit.device(gateway), gateway.thing_id
    time_machine.move_to(START + timedelta(minutes=1), tick=False)
    device.publish(messages.battery(g, 87), mailbox.channel_id)
    kit.poll()
    # A box that sends a relative time: the platform keeps it as given, dated 1970.
    time_machine.move_to(START + timedelta(minutes=2), tick=False)
    device.publish(_with_t(messages.closed(g), -5), mailbox.channel_id)
    assert [m["time"] for m in kit.read(mailbox.channel_id, publisher=g, name=f"{g}_CLOSED")] == [-5]
    kit.poll()
    time_machine.move_to(START + timedelta(minutes=3), tick=False)
    device.publish(messages.opened_with_pin(g, 4821), mailbox.channel_id)
    kit.poll()
    kit.poll()  # read again: still applied once

    events = _box_events()
    assert [e.kind for e in events] == ["box.battery", "box.closed", "box.opened_pin"]
    closed = events[1]
    # Dated by the read that found it, right after it was received; never 1970.
    assert closed.occurred_at == START + timedelta(minutes=2)
    assert kit.reload(mailbox).is_open is True  # the later OPENED wins: order is by receipt


def test_identical_relative_time_messages_each_count_once(kit, time_machine):
    time_machine.move_to(START, tick=False)
    gateway, mailbox = kit.ready_mailbox()
    device, g = kit.device(gateway), gateway.thing_id
    device.publish(_with_t(messages.rejected(g, 1), -1), mailbox.channel_id)
    kit.poll()
    device.publish(_with_t(messages.rejected(g, 1), -1), mailbox.channel_id)  # the same bytes again
    kit.poll()
    kit.poll()
    assert [e.kind for e in _box_events()] == ["box.rejected", "box.rejected"]


def test_a_believable_absolute_device_time_dates_the_event(kit, time_machine):
    time_machine.move_to(START, tick=False)
    gateway, mailbox = kit.ready_mailbox()
    happened = START + timedelta(seconds=50)
    time_machine.move_to(START + timedelta(seconds=52), tick=False)
    kit.device(gateway).publish(_with_t(messages.closed(gateway.thing_id), happened.timestamp()), mailbox.channel_id)
    kit.poll()
    [event] = _box_events()
    assert event.occurred_at == happened and event.recorded_at == START + timedelta(seconds=52)


def test_a_clock_running_ahead_neither_dates_the_event_nor_hides_later_ones(kit, time_machine):
    time_machine.move_to(START, tick=False)
    gateway, mailbox = kit.ready_mailbox()
    device, g = kit.device(gateway), gateway.thing_id
    ahead = (START + timedelta(days=1)).timestamp()
    device.publish(_with_t(messages.closed(g), ahead), mailbox.channel_id)
    kit.poll()
    time_machine.move_to(START + timedelta(seconds=20), tick=False)
    device.publish(messages.rejected(g, 2), mailbox.channel_id)  # no t: dated by the platform
    kit.poll()
    kit.poll()
    events = _box_events()
    assert [(e.kind, e.occurred_at) for e in events] == [("box.closed", START),
                                                         ("box.rejected", START + timedelta(seconds=20))]
    # The cursor never moved to the clock that runs ahead.
    assert db.session.get(ChannelCursor, mailbox.channel_id).last_time < START.timestamp() + 60


def test_a_message_stored_a_moment_before_the_cursor_is_still_read(kit, time_machine):
    """The platform may store a message received at T1 after one received at T2 > T1 (its
    writer is concurrent): reads look back, so the late one is not skipped."""
    time_machine.move_to(START, tick=False)
    gateway, mailbox = kit.ready_mailbox()
    device, g = kit.device(gateway), gateway.thing_id
    device.publish(_with_t(messages.battery(g, 50), (START + timedelta(seconds=10)).timestamp()),
                   mailbox.channel_id)
    time_machine.move_to(START + timedelta(seconds=11), tick=False)
    kit.poll()
    device.publish(_with_t(messages.closed(g), (START + timedelta(seconds=4)).timestamp()), mailbox.channel_id)
    kit.poll()
    assert [e.kind for e in _box_events()] == ["box.battery", "box.closed"]


def _fast_channels() -> set[str]:
    return {t.channel_id for t in device_reports.channels_to_read_fast()}


def test_a_household_with_a_page_open_is_read_fast_and_an_idle_one_is_not(kit, time_machine, app):
    time_machine.move_to(START, tick=False)
    gateway, mailbox = kit.ready_mailbox()
    member_client = _logged_in(app, kit)
    assert _fast_channels() == set()  # nothing waiting, nobody looking

    assert member_client.get("/gateways/").status_code == 200
    assert _fast_channels() == {gateway.channel_id, mailbox.channel_id}

    time_machine.move_to(START + timedelta(seconds=app.config["WATCH_SECONDS"] + 1), tick=False)
    assert _fast_channels() == set()


def test_a_live_refresh_keeps_the_household_watched_with_few_writes(kit, time_machine, app):
    time_machine.move_to(START, tick=False)
    _gateway, mailbox = kit.ready_mailbox()
    member_client = _logged_in(app, kit)
    writes = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE ACCOUNTS"):
            writes.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", count)
    try:
        for second in range(0, 120, 3):  # htmx refreshes the page every few seconds
            time_machine.move_to(START + timedelta(seconds=second), tick=False)
            member_client.get(f"/mailboxes/{mailbox.id}", headers={"HX-Request": "true"})
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", count)
    db.session.expire_all()
    until = db.session.get(Account, kit.account.id).watched_until
    assert until > START + timedelta(seconds=117)
    assert len(writes) <= 5, f"{len(writes)} writes for 40 refreshes in two minutes"
