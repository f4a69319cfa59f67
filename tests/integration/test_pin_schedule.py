"""The worker's PIN schedule: a seed gateway's PIN comes off its box at the end of its hours
and goes back at their start (the edges to the minute, with the moment passed in); an
ended PIN is taken off any box; removing a paused or pausing PIN; a member's PINs go when
they leave or are removed; and two passes at once queue one command (PostgreSQL)."""
import threading
from datetime import UTC, datetime, time, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from portal.extensions import db
from portal.jobs.handlers.pin_schedule import keep_pin_schedules
from portal.models import ActivityEvent, Membership, Pin, utcnow
from portal.services import deliveries, members, pin_rules, pins

WEEKDAYS = {"days": [0, 1, 2, 3, 4], "from": "08:00", "until": "18:00"}
NOTHING = {"ended": 0, "paused": 0, "resumed": 0}


def _next_monday() -> datetime:
    """Midnight UTC of a Monday at least two days ahead (the household's zone is UTC)."""
    day = utcnow().date() + timedelta(days=2)
    day += timedelta(days=(7 - day.weekday()) % 7)
    return datetime.combine(day, time(0, 0), UTC)


def _at(day: datetime, clock: str) -> datetime:
    hours, minutes = map(int, clock.split(":"))
    return day + timedelta(hours=hours, minutes=minutes)


def _pass(app, now):
    result = keep_pin_schedules(app, now)
    db.session.expire_all()
    return result


def _lines(kind):
    return db.session.scalars(sa.select(ActivityEvent.summary).where(ActivityEvent.kind == kind)
                              .order_by(ActivityEvent.occurred_at)).all()


def _set_uses(pin, uses):
    # What the box reports do (portal/services/device_reports.py counts OPENED).
    db.session.execute(sa.update(Pin).where(Pin.id == pin.id).values(uses=uses))
    db.session.commit()


# --- seed gateways: off and on at the edges of the hours --------------------------------

def test_a_seed_pin_comes_off_and_goes_back_at_the_edges_of_its_hours(app, kit):
    gateway, mailbox = kit.ready_mailbox()
    monday = _next_monday()
    pin = kit.add_pin(mailbox, "Cleaner", "5827", kind="weekly", windows=[WEEKDAYS], starts=f"{monday:%Y-%m-%d}T00:00")
    assert pin.status == "paused" and kit.commands(gateway, action="AUTH") == []  # made before its start

    assert _pass(app, _at(monday, "07:59")) == NOTHING
    assert _pass(app, _at(monday, "08:00")) == {**NOTHING, "resumed": 1}
    assert kit.reload(pin).status == "adding"
    kit.drain()
    kit.confirm_all(gateway)
    assert kit.reload(pin).status == "active"

    assert _pass(app, _at(monday, "17:59")) == NOTHING
    assert _pass(app, _at(monday, "18:00")) == {**NOTHING, "paused": 1}
    assert kit.reload(pin).status == "pausing"
    assert deliveries.pin_shown(kit.reload(pin), kit.command(gateway, "UNAUTH")).key == "pausing"
    assert _pass(app, _at(monday, "18:00")) == NOTHING  # the same pass again changes nothing
    kit.drain()
    kit.confirm_all(gateway)
    assert kit.reload(pin).status == "paused"
    assert [c.state for c in kit.commands(gateway, action="UNAUTH")] == ["confirmed"]

    assert _pass(app, _at(monday + timedelta(days=1), "08:00")) == {**NOTHING, "resumed": 1}
    assert [c.action for c in kit.commands(gateway, mailbox=mailbox) if c.pin_id == pin.id] == [
        "AUTH", "UNAUTH", "AUTH"]
    assert _pass(app, _at(monday + timedelta(days=5), "12:00")) == {**NOTHING, "paused": 1}  # Saturday
    assert _lines("pin.ended") == []


def test_an_add_on_its_way_at_the_end_of_the_hours_is_followed_by_its_removal(app, kit):
    gateway, mailbox = kit.ready_mailbox()
    monday = _next_monday()
    pin = kit.add_pin(mailbox, "Cleaner", "5827", kind="weekly", windows=[WEEKDAYS], starts=f"{monday:%Y-%m-%d}T00:00")
    _pass(app, _at(monday, "09:00"))
    assert _pass(app, _at(monday, "18:00")) == {**NOTHING, "paused": 1}  # the AUTH never left
    kit.drain()
    kit.confirm_all(gateway)
    kit.confirm_all(gateway)
    assert kit.reload(pin).status == "paused"


def test_a_failed_add_is_left_for_the_member_to_retry(app, kit):
    gateway, mailbox = kit.ready_mailbox()
    monday = _next_monday()
    pin = kit.add_pin(mailbox, "Cleaner", "5827", kind="weekly", windows=[WEEKDAYS], starts=f"{monday:%Y-%m-%d}T00:00")
    _pass(app, _at(monday, "09:00"))
    kit.drain()
    kit.device(gateway).answer(kit.command(gateway, "AUTH"), done=False, reason="slots full")
    kit.poll()
    assert _pass(app, _at(monday, "18:00")) == NOTHING
    assert kit.reload(pin).status == "adding"


def test_a_paused_pin_is_removed_at_once_and_a_pausing_one_by_the_unauth_on_its_way(app, kit):
    gateway, mailbox = kit.ready_mailbox()
    monday = _next_monday()
    start = f"{monday:%Y-%m-%d}T00:00"
    paused = kit.add_pin(mailbox, "Cleaner", "5827", kind="weekly", windows=[WEEKDAYS], starts=start)
    pins.remove_pin(kit.account.id, paused.id, kit.user)
    assert kit.reload(paused).status == "removed" and kit.reload(paused).digits_enc == b""

    pausing = kit.add_pin(mailbox, "Gardener", "7391", kind="weekly", windows=[WEEKDAYS], starts=start)
    _pass(app, _at(monday, "09:00"))
    kit.drain()
    kit.confirm_all(gateway)
    _pass(app, _at(monday, "19:00"))
    assert kit.reload(pausing).status == "pausing"
    pins.remove_pin(kit.account.id, pausing.id, kit.user)
    assert kit.reload(pausing).status == "removing"
    assert len(kit.commands(gateway, action="UNAUTH")) == 1  # the pause's UNAUTH is the removal
    kit.drain()
    kit.confirm_all(gateway)
    assert kit.reload(pausing).status == "removed"


# --- ended PINs, on every gateway -------------------------------------------------------------

def test_an_active_pin_past_its_end_is_taken_off_its_box(app, kit):
    gateway, mailbox = kit.ready_mailbox()
    ends = utcnow() + timedelta(hours=1)
    pin = kit.add_pin(mailbox, "Visitor", "5827", kind="range", ends=f"{ends:%Y-%m-%dT%H:%M}")
    kit.confirm_all(gateway)
    assert _pass(app, utcnow()) == NOTHING
    assert _pass(app, ends + timedelta(minutes=1)) == {**NOTHING, "ended": 1}
    pin = kit.reload(pin)
    assert (pin.status, pin.ended) == ("removing", "expired")
    assert _pass(app, ends + timedelta(minutes=2)) == NOTHING
    assert _lines("pin.ended") == ["PIN “Visitor” ended (expired): taken off “Front box”"]
    kit.drain()
    kit.confirm_all(gateway)
    assert kit.reload(pin).status == "removed"
    assert pin_rules.rule_state(kit.reload(pin), utcnow()) == "expired"


def test_a_pin_used_up_is_taken_off_its_box(app, kit):
    gateway, mailbox = kit.ready_mailbox()
    pin = kit.add_pin(mailbox, "Plumber", "5827", kind="uses", uses=2)
    kit.confirm_all(gateway)
    _set_uses(pin, 1)
    assert _pass(app, utcnow()) == NOTHING
    _set_uses(pin, 2)
    assert _pass(app, utcnow()) == {**NOTHING, "ended": 1}
    assert kit.reload(pin).ended == "used up"
    assert kit.command(gateway, "UNAUTH").pin_id == pin.id
    assert _lines("pin.ended") == ["PIN “Plumber” ended (used up): taken off “Front box”"]


def test_a_paused_pin_that_ended_is_simply_removed(app, kit):
    gateway, mailbox = kit.ready_mailbox()
    monday = _next_monday()
    pin = kit.add_pin(mailbox, "Cleaner", "5827", kind="weekly", windows=[WEEKDAYS],
                      starts=f"{monday:%Y-%m-%d}T00:00", ends=f"{monday + timedelta(days=1):%Y-%m-%d}T00:00")
    assert _pass(app, monday + timedelta(days=2)) == {**NOTHING, "ended": 1}
    pin = kit.reload(pin)
    assert (pin.status, pin.ended) == ("removed", "expired")
    assert kit.commands(gateway, action="UNAUTH") == []


# --- members leaving ---------------------------------------------------------------------------

def _membership(account, user):
    return db.session.scalars(
        sa.select(Membership).where(Membership.account_id == account.id, Membership.user_id == user.id)
    ).one()


@pytest.fixture
def bobs_bike(kit, add_member):
    """(gateway, box, bob, his membership, his PIN "Bike" on the box)."""
    gateway, mailbox = kit.ready_mailbox()
    bob, membership = add_member(kit.account, "bob@example.com")
    [bike] = pins.add_pin(kit.account.id, mailbox.id, kit.user, label="Bike", digits="5827", assigned_to_id=bob.id)
    kit.drain()
    kit.confirm_all(gateway)
    return gateway, mailbox, bob, membership, kit.reload(bike)


def test_a_member_leaving_takes_their_pins_off_the_boxes(kit, bobs_bike):
    gateway, mailbox, bob, _bob_membership, bike = bobs_bike
    [queued] = pins.add_pin(kit.account.id, mailbox.id, kit.user, label="Spare", digits="7391",
                            assigned_to_id=bob.id)
    kit.add_pin(mailbox, "Grandma", "4821", run=False)  # nobody's: stays
    assert {p.label for p in pins.assigned_to(kit.account.id, bob.id)} == {"Bike", "Spare"}

    members.leave(_membership(kit.account, bob), bob)
    assert kit.reload(bike).status == "removing"
    assert kit.reload(queued).status == "removed"  # never left the portal: withdrawn
    assert sorted(_lines("pin.removed")) == [
        "PIN “Bike” of bob@example.com removed: bob@example.com left the household",
        "PIN “Spare” of bob@example.com removed: bob@example.com left the household",
    ]
    kit.drain()
    kit.confirm_all(gateway)
    assert kit.reload(bike).status == "removed"
    assert [p.label for p in db.session.scalars(sa.select(Pin).where(Pin.status == "active"))] == ["Grandma"]


def test_a_member_removed_by_an_owner_loses_their_pins(kit, bobs_bike):
    _gateway, _mailbox, _bob, bob_membership, bike = bobs_bike
    members.remove_member(_membership(kit.account, kit.user), kit.user, bob_membership.id)
    assert kit.reload(bike).status == "removing"
    assert _lines("pin.removed") == [
        "PIN “Bike” of bob@example.com removed: bob@example.com was removed from the household"]


def test_a_pin_reassigned_first_stays(kit, bobs_bike):
    _gateway, _mailbox, bob, _bob_membership, bike = bobs_bike
    pins.reassign_pin(kit.account.id, bike.id, kit.user, kit.user.id)
    members.leave(_membership(kit.account, bob), bob)
    assert kit.reload(bike).status == "active"
    assert pins.assigned_to(kit.account.id, kit.user.id) == [bike]


# --- two passes at once -------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["postgresql"])
@pytest.mark.parametrize("attempt", range(3))
def test_two_passes_at_once_queue_one_unauth(app, kit, backend, attempt):
    gateway, mailbox = kit.ready_mailbox()
    ends = utcnow() + timedelta(hours=1)
    pin = kit.add_pin(mailbox, "Visitor", "5827", kind="range", ends=f"{ends:%Y-%m-%dT%H:%M}")
    kit.confirm_all(gateway)
    later = ends + timedelta(minutes=5)
    both_read = threading.Barrier(2, timeout=10)
    results, errors = [], []

    def read_then_wait(conn, cursor, statement, parameters, context, executemany):
        # Each pass reads the PIN as active before either writes: the race itself.
        if statement.lstrip().upper().startswith("SELECT") and "FROM pins" in statement \
                and getattr(threading.current_thread(), "is_pass", False) and not both_read.broken:
            threading.current_thread().is_pass = False
            both_read.wait()

    def run():
        threading.current_thread().is_pass = True
        try:
            with app.app_context():
                results.append(keep_pin_schedules(app, later))
        except Exception as exc:  # noqa: BLE001  (reported by the test)
            errors.append(exc)

    event.listen(db.engine, "after_cursor_execute", read_then_wait)
    try:
        threads = [threading.Thread(target=run) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        event.remove(db.engine, "after_cursor_execute", read_then_wait)
    assert not errors, errors
    assert sorted(r["ended"] for r in results) == [0, 1]
    assert len(kit.commands(gateway, action="UNAUTH")) == 1
    assert _lines("pin.ended") == ["PIN “Visitor” ended (expired): taken off “Front box”"]
    assert kit.reload(pin).status == "removing"
