"""What the boxes say, read back from the reader: only the gateway's own thing is
believed, every message counts once, and each event lands in the log in plain words."""
import sqlalchemy as sa

from portal.extensions import db
from portal.jobs.handlers.reports import to_reports
from portal.models import ActivityEvent, ChannelCursor
from portal.services import device_reports
from portal.streamiot import messages
from tests.plugins.text import without_ids


def _events(kind=None):
    stmt = sa.select(ActivityEvent).order_by(ActivityEvent.id)
    if kind:
        stmt = stmt.where(ActivityEvent.kind == kind)
    db.session.expire_all()
    return db.session.scalars(stmt).all()


def _intruder(kit, channel_id):
    """Another thing of the same household, connected to the channel: it can publish there."""
    api = kit.user_api()
    thing_id = api.create_thing("intruder")
    api.connect([channel_id], [thing_id])
    return api.get_thing(thing_id)["key"]


def test_an_answer_from_a_thing_that_is_not_the_gateway_is_ignored(kit):
    gateway, mailbox = kit.ready_mailbox()
    pin = kit.add_pin(mailbox)
    auth = kit.command(gateway, "AUTH")
    forged = messages.reply(kit.sent_record(auth), True)
    kit.streamiot.publish(mailbox.channel_id, _intruder(kit, mailbox.channel_id), forged)
    kit.streamiot.publish(mailbox.channel_id, kit.portal_key(), forged)  # not even the portal's own thing
    kit.poll()
    assert kit.reload(auth).state == "sent"
    assert kit.reload(pin).status == "adding"
    kit.device(gateway).answer(auth)
    kit.poll()
    assert kit.reload(pin).status == "active"


def test_an_event_from_another_thing_is_ignored(kit):
    gateway, mailbox = kit.ready_mailbox()
    kit.add_pin(mailbox)
    kit.confirm_all(gateway)
    kit.streamiot.publish(mailbox.channel_id, _intruder(kit, mailbox.channel_id),
                          messages.opened_with_pin(gateway.thing_id, 4821))
    kit.poll()
    assert _events("box.opened_pin") == []


def test_every_message_is_applied_once_however_often_it_is_read(kit):
    gateway, mailbox = kit.ready_mailbox()
    kit.add_pin(mailbox, "Grandma", "4821")
    kit.confirm_all(gateway)
    kit.device(gateway).publish(messages.opened_with_pin(gateway.thing_id, 4821), mailbox.channel_id)
    kit.poll()
    kit.poll()
    # An overlapping read (same messages again, e.g. pages shifting) changes nothing either.
    [target] = [t for t in device_reports.channels_of_linked_households() if t.channel_id == mailbox.channel_id]
    page = kit.read(mailbox.channel_id, publisher=gateway.thing_id)
    assert device_reports.apply_reports(target, to_reports(page)) == 0
    assert [e.summary for e in _events("box.opened_pin")] == ["Opened with PIN “Grandma”"]
    cursor = db.session.get(ChannelCursor, mailbox.channel_id)
    assert cursor.last_time == max(m["time"] for m in page)


def test_box_events_become_plain_words_without_digits(kit):
    gateway, mailbox = kit.ready_mailbox()
    kit.add_pin(mailbox, "Parcel courier", "58213")
    kit.confirm_all(gateway)
    g, device = gateway.thing_id, kit.device(gateway)
    for pack in (
        messages.opened_with_pin(g, 58213),
        messages.closed(g),
        messages.opened_with_pin(g, 91827),  # digits the portal does not know
        messages.rejected(g, 3),
        messages.opened_remote(g),
        messages.battery(g, 15),
    ):
        device.publish(pack, mailbox.channel_id)
    kit.poll()
    box_events = [(e.kind, e.summary, e.actor_kind, e.actor_label) for e in _events() if e.kind.startswith("box.")]
    assert box_events == [
        ("box.opened_pin", "Opened with PIN “Parcel courier”", "box", "Front box"),
        ("box.closed", "Closed", "box", "Front box"),
        ("box.opened_pin", "Opened with a PIN that is not on the list any more", "box", "Front box"),
        ("box.rejected", "Wrong PIN entered (3 wrong attempts in a row)", "box", "Front box"),
        ("box.opened_remote", "Opened remotely", "box", "Front box"),
        ("box.battery", "Battery low: 15%", "box", "Front box"),
    ]
    assert all("58213" not in e.summary + without_ids(str(e.details))
               and "91827" not in e.summary + without_ids(str(e.details))
               for e in _events())
    mailbox = kit.reload(mailbox)
    assert mailbox.battery_percent == 15 and mailbox.is_open is True and mailbox.last_event_at is not None


def test_small_battery_changes_are_not_logged_but_a_drop_below_twenty_is(kit):
    gateway, mailbox = kit.ready_mailbox()
    device = kit.device(gateway)
    for pct in (87, 85, 22, 19):
        device.publish(messages.battery(gateway.thing_id, pct), mailbox.channel_id)
    kit.poll()
    assert [e.summary for e in _events("box.battery")] == ["Battery at 87%", "Battery at 22%", "Battery low: 19%"]
    assert kit.reload(mailbox).battery_percent == 19


def test_a_failed_answer_carries_the_reason_record_of_the_same_pack(kit):
    gateway, mailbox = kit.ready_mailbox()
    first = kit.add_pin(mailbox, "Grandma", "4821")
    second = kit.add_pin(mailbox, "Courier", "5938")
    first_auth, second_auth = kit.commands(gateway, action="AUTH")
    kit.device(gateway).answer(first_auth, done=False, reason="slots full")
    kit.device(gateway).answer(second_auth, done=False)
    kit.poll()
    assert kit.reload(first_auth).reason == "slots full"
    assert kit.reload(second_auth).reason == "The box refused it without saying why."
    assert kit.reload(first).status == kit.reload(second).status == "adding"


def test_a_household_with_a_command_waiting_has_every_channel_read_every_second(kit):
    gateway, mailbox = kit.ready_mailbox()
    assert device_reports.channels_to_read_fast() == []
    kit.add_pin(mailbox)
    fast = {t.channel_id: t for t in device_reports.channels_to_read_fast()}
    assert set(fast) == {gateway.channel_id, mailbox.channel_id}
    assert fast[mailbox.channel_id].publisher == gateway.thing_id
    assert fast[mailbox.channel_id].mailbox_id == mailbox.id
    every = {t.channel_id for t in device_reports.channels_of_linked_households()}
    assert every == {gateway.channel_id, mailbox.channel_id}


def test_households_that_are_not_linked_are_not_read(kit):
    from portal.models import Account

    gateway, mailbox = kit.ready_mailbox()
    account = db.session.get(Account, kit.account.id)
    account.link_state = "problem"
    db.session.commit()
    assert device_reports.channels_of_linked_households() == []


def _statements_of_a_poll(kit) -> int:
    statements = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", count)
    try:
        kit.poll()
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", count)
    return len(statements)


def test_an_answer_finds_its_pin_in_the_same_queries_however_many_pins_wait(kit):
    """Matched by the PIN's keyed digest in one query: no per-candidate look-up or decryption."""
    gateway, mailbox = kit.ready_mailbox()
    for n in range(2):
        kit.add_pin(mailbox, f"Few {n}", f"40{n:02d}")
    kit.device(gateway).answer(kit.commands(gateway, action="AUTH")[0])
    kit.poll()  # the box's first answer (its reader cursor made): each poll below reads one answer
    few = kit.add_pin(mailbox, "Answered among few", "5900")
    kit.device(gateway).answer(next(c for c in kit.commands(gateway, action="AUTH") if c.pin_id == few.id))
    with_few = _statements_of_a_poll(kit)
    for n in range(20):
        kit.add_pin(mailbox, f"Many {n}", f"70{n:02d}")
    many = kit.add_pin(mailbox, "Answered among many", "5901")
    kit.device(gateway).answer(next(c for c in kit.commands(gateway, action="AUTH") if c.pin_id == many.id))
    with_many = _statements_of_a_poll(kit)
    assert kit.reload(few).status == kit.reload(many).status == "active"
    assert with_many == with_few


def test_reading_channels_that_say_nothing_costs_the_same_queries_for_one_box_as_for_five(kit):
    """A read that finds nothing writes nothing per channel: the reads are noted all at once."""
    gateway, _mailbox = kit.ready_mailbox()
    kit.poll()  # what setting up the box left in the reader
    noted = db.session.get(ChannelCursor, gateway.channel_id).last_polled_at
    one = _statements_of_a_poll(kit)
    for n in range(4):
        kit.ready_mailbox(name=f"Box {n}", gateway=gateway)
    kit.poll()
    five = _statements_of_a_poll(kit)
    assert one == five, f"{one} statements for a poll of one quiet box, {five} for five"
    assert db.session.get(ChannelCursor, gateway.channel_id).last_polled_at > noted  # the quiet reads noted
