"""What a box that keeps rules reports, applied: refusals and lockouts in the household's
words and time, opens counted, duress seen by owners only, and a courier's parcel from
the courier's opening to the household's collecting it, each step once."""
import threading
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.jobs.handlers.reports import to_reports
from portal.models import Account, ActivityEvent
from portal.services import activity, device_reports
from portal.streamiot import messages
from tests.plugins.text import without_ids

# Saturday 10 January 2026, 20:14 UTC: 21:14 in Berlin.
SATURDAY_EVENING = datetime(2026, 1, 10, 20, 14, 5, tzinfo=UTC)


def _box_events(kind=None):
    db.session.expire_all()
    stmt = sa.select(ActivityEvent).where(ActivityEvent.kind.startswith("box.")).order_by(ActivityEvent.id)
    if kind:
        stmt = sa.select(ActivityEvent).where(ActivityEvent.kind == kind).order_by(ActivityEvent.id)
    return db.session.scalars(stmt).all()


def _summaries(kind=None):
    return [e.summary for e in _box_events(kind)]


def _in_zone(kit, name):
    account = db.session.get(Account, kit.account.id)
    account.time_zone = name
    db.session.commit()


def _with(kit, pin, **columns):
    """A PIN with the purpose or use limit the PIN service gives it."""
    pin = kit.reload(pin)
    for column, value in columns.items():
        setattr(pin, column, value)
    db.session.commit()
    return kit.reload(pin)


@pytest.fixture
def saturday_evening(time_machine):
    """The clock at SATURDAY_EVENING (and running) before anything of the household exists."""
    time_machine.move_to(SATURDAY_EVENING)


@pytest.fixture
def box(kit):
    """A seed box with a household PIN confirmed on it; `say` publishes as the gateway."""
    gateway, mailbox = kit.ready_mailbox()
    household = kit.add_pin(mailbox, "Grandma", "4821")
    kit.confirm_all(gateway)
    device = kit.device(gateway)

    def say(*packs):
        for pack in packs:
            device.publish(pack, mailbox.channel_id)
        kit.poll()

    return gateway, mailbox, kit.reload(household), say


def test_a_refused_pin_is_logged_with_why_in_words_and_the_households_time(saturday_evening, kit, box):
    gateway, mailbox, grandma, say = box
    _in_zone(kit, "Europe/Berlin")
    g = gateway.thing_id
    say(messages.refused(g, 4821, messages.OUTSIDE_HOURS), messages.refused(g, 4821, messages.NOT_YET),
        messages.refused(g, 4821, messages.ENDED), messages.refused(g, 4821, messages.USED_UP),
        messages.refused(g, 4821, "moon phase"), messages.refused(g, 91827, messages.ENDED))
    assert _summaries() == [
        "“Grandma” PIN refused: outside its hours (Sat 21:14)",
        "“Grandma” PIN refused: not valid yet (Sat 21:14)",
        "“Grandma” PIN refused: expired (Sat 21:14)",
        "“Grandma” PIN refused: used up (Sat 21:14)",
        "“Grandma” PIN refused: refused by the box (Sat 21:14)",
        "A PIN not on the list any more refused: expired (Sat 21:14)",
    ]
    first = _box_events()[0]
    assert first.kind == "box.refused"
    assert first.details == {"pin_id": str(grandma.id), "reason": "outside hours"}
    assert not any("4821" in e.summary + without_ids(str(e.details)) for e in _box_events())
    assert kit.reload(grandma).uses == 0


def test_a_lockout_shows_until_when_and_an_opening_by_pin_ends_it(saturday_evening, kit, box):
    gateway, mailbox, _grandma, say = box
    _in_zone(kit, "Europe/Berlin")
    g = gateway.thing_id
    until = int(SATURDAY_EVENING.timestamp()) + 300  # 20:19 UTC
    say(messages.rejected(g, 5), messages.locked_out(g, until), messages.rejected_locked_out(g, 6))
    assert _summaries() == [
        "Wrong PIN entered (5 wrong attempts in a row)",
        "Keypad locked out until 21:19 after wrong PINs",
        "Entry refused: the keypad is locked out (Sat 21:14)",
    ]
    assert _box_events()[-1].details == {"attempts": 6, "reason": "locked out"}
    assert kit.reload(mailbox).locked_until.replace(tzinfo=UTC) == datetime.fromtimestamp(until, UTC)
    say(messages.opened_remote(g))
    assert kit.reload(mailbox).locked_until is not None  # the keypad itself is still locked
    say(messages.opened_with(g, 4821))
    assert kit.reload(mailbox).locked_until is None


def test_dual_control_logs_the_first_pin_and_then_both(kit, box):
    gateway, mailbox, grandma, say = box
    second = kit.add_pin(mailbox, "Alex", "5938")
    kit.confirm_all(gateway)
    g = gateway.thing_id
    say(messages.first_of_two(g, 4821), messages.opened_with(g, 5938, second=4821))
    assert _summaries() == ["First PIN “Grandma” accepted: waiting for a second one",
                            "Opened with PINs “Grandma” and “Alex”"]
    assert (kit.reload(grandma).uses, kit.reload(second).uses) == (1, 1)


def test_opens_are_counted_and_what_the_box_says_is_left_wins(kit, box):
    gateway, _mailbox, grandma, say = box
    grandma = _with(kit, grandma, max_uses=5)
    g = gateway.thing_id
    say(messages.opened_with(g, 4821))
    assert kit.reload(grandma).uses == 1
    say(messages.opened_with(g, 4821, left=1))  # the box counted an open the portal missed
    assert kit.reload(grandma).uses == 4
    say(messages.opened_with(g, 4821, left=0))
    assert kit.reload(grandma).uses == 5


def test_a_duress_opening_is_one_row_that_only_owners_see(kit, box):
    gateway, mailbox, _grandma, say = box
    kit.user.display_name = "Alex"
    db.session.commit()
    duress = _with(kit, kit.add_pin(mailbox, "Alex's alarm", "7305"), purpose="duress",
                   assigned_to_id=kit.user.id)
    kit.confirm_all(gateway)
    g = gateway.thing_id
    say(messages.opened_with(g, 7305, duress=True))
    say(messages.opened_with(g, 7305))  # a seed box does not say so: the PIN's purpose does
    rows = _box_events()
    assert [(e.kind, e.summary, e.details) for e in rows] == [
        ("box.duress", "Opened under duress with the duress PIN of Alex", {"pin_id": str(duress.id), "duress": True}),
    ] * 2
    account_id = kit.account.id
    assert [e.kind for e in activity.list_events(account_id, owner=True).events if e.kind.startswith("box.")] \
        == ["box.duress"] * 2
    assert [e for e in activity.list_events(account_id, owner=False).events if e.kind == "box.duress"] == []
    assert activity.list_events(account_id, kind="box.duress", owner=False).events == []
    assert [e.kind for e in activity.recent_for_mailbox(account_id, mailbox.id, owner=False)
            if e.kind.startswith("box.")] == []
    assert "duress" not in "".join(activity.export_csv(account_id, owner=False))
    assert "Opened under duress" in "".join(activity.export_csv(account_id, owner=True))


def test_a_parcel_is_delivered_when_the_box_closes_and_collected_by_a_household_pin(kit, box):
    gateway, mailbox, _grandma, say = box
    courier = _with(kit, kit.add_pin(mailbox, "Delivery", "6172"), purpose="courier", max_uses=1)
    kit.confirm_all(gateway)
    g = gateway.thing_id
    say(messages.opened_with(g, 6172, left=0))
    assert kit.reload(courier).delivery_state == "opened"
    assert kit.reload(mailbox).parcel_since is None
    say(messages.closed(g))
    courier, mailbox = kit.reload(courier), kit.reload(mailbox)
    assert courier.delivery_state == "delivered" and courier.delivered_at is not None
    assert mailbox.parcel_since == courier.delivered_at
    say(messages.opened_with(g, 4821))
    say(messages.closed(g), messages.opened_with(g, 4821))  # nothing left to deliver or collect
    courier, mailbox = kit.reload(courier), kit.reload(mailbox)
    assert courier.delivery_state == "collected" and courier.collected_at >= courier.delivered_at
    assert mailbox.parcel_since is None and courier.uses == 1
    assert _summaries() == [
        "Courier “Delivery” opened the box",
        "Closed",
        "Parcel delivered (“Delivery”)",
        "Opened with PIN “Grandma”",
        "Parcel collected",
        "Closed",
        "Opened with PIN “Grandma”",
    ]


def test_a_remote_unlock_collects_the_parcel_and_a_courier_opening_does_not(kit, box):
    gateway, mailbox, _grandma, say = box
    first = _with(kit, kit.add_pin(mailbox, "Parcel A", "6172"), purpose="courier")
    second = _with(kit, kit.add_pin(mailbox, "Parcel B", "3958"), purpose="courier")
    kit.confirm_all(gateway)
    g = gateway.thing_id
    say(messages.opened_with(g, 6172), messages.closed(g))
    since = kit.reload(mailbox).parcel_since
    say(messages.opened_with(g, 3958), messages.closed(g))  # a second parcel joins the first
    assert kit.reload(mailbox).parcel_since == since
    assert kit.reload(first).delivery_state == kit.reload(second).delivery_state == "delivered"
    say(messages.opened_remote(g))
    assert kit.reload(first).delivery_state == kit.reload(second).delivery_state == "collected"
    assert kit.reload(mailbox).parcel_since is None
    assert _summaries("box.parcel_collected") == ["Parcel collected"]


def test_a_report_read_again_changes_nothing_twice(kit, box):
    gateway, mailbox, grandma, say = box
    courier = _with(kit, kit.add_pin(mailbox, "Delivery", "6172"), purpose="courier")
    kit.confirm_all(gateway)
    g = gateway.thing_id
    say(messages.opened_with(g, 6172), messages.closed(g), messages.opened_with(g, 4821, left=3))
    before = _summaries()
    [target] = [t for t in device_reports.channels_of_linked_households() if t.channel_id == mailbox.channel_id]
    page = kit.read(mailbox.channel_id, publisher=g)
    assert device_reports.apply_reports(target, to_reports(page)) == 0
    assert _summaries() == before
    assert kit.reload(courier).delivery_state == "collected" and kit.reload(grandma).uses == 1


# Several workers at once is the PostgreSQL deployment (SQLite runs one worker).
@pytest.mark.postgres_only
@pytest.mark.parametrize("backend", ["postgresql"])
def test_two_workers_applying_the_same_close_deliver_the_parcel_once(app, backend, kit, box):
    gateway, mailbox, _grandma, say = box
    courier = _with(kit, kit.add_pin(mailbox, "Delivery", "6172"), purpose="courier")
    kit.confirm_all(gateway)
    say(messages.opened_with(gateway.thing_id, 6172))
    kit.device(gateway).publish(messages.closed(gateway.thing_id), mailbox.channel_id)  # read by both, below
    [target] = [t for t in device_reports.channels_of_linked_households() if t.channel_id == mailbox.channel_id]
    reports = to_reports(kit.read(mailbox.channel_id, publisher=gateway.thing_id))
    db.session.commit()
    start, applied, errors = threading.Barrier(2), [], []

    def worker():
        with app.app_context():
            try:
                start.wait(10)
                applied.append(device_reports.apply_reports(target, reports))
            except Exception as exc:  # noqa: BLE001  (reported by the test)
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [] and sorted(applied) == [0, 1]
    assert _summaries("box.parcel_delivered") == ["Parcel delivered (“Delivery”)"]
    assert _summaries("box.closed") == ["Closed"]
    courier, mailbox = kit.reload(courier), kit.reload(mailbox)
    assert courier.delivery_state == "delivered" and mailbox.parcel_since == courier.delivered_at
