"""A box page's live part polls with the version it shows: while nothing it shows has
changed the answer is a bodiless 304 (htmx keeps the part as it is); any change, the clock
moving its words on, or a message to flash makes a fresh part with a new version.

The version is the household's change count (kept by the database), StreamIoT's state and
the second until which the part's words hold, signed: an unchanged poll reads one row."""
import re
from datetime import timedelta

import pytest

from portal.extensions import db
from portal.models import ActivityEvent, Command, Membership, PlatformHealth, User, utcnow
from portal.models.platform import PLATFORM_DOWN, STREAMIOT
from portal.services import pins
from portal.streamiot import messages
from tests.plugins.devices import live_version_of
from tests.plugins.text import visible_text

POLL = {"HX-Request": "true", "X-IoTLock-Poll": "1"}
CSRF = re.compile(r'(name="csrf_token" value=")[^"]+|("X-CSRFToken": ")[^"]+')


def _poll(client, mailbox, etag=None):
    headers = dict(POLL, **({"If-None-Match": etag} if etag else {}))
    return client.get(f"/mailboxes/{mailbox.id}", headers=headers)


def _shown(response) -> str:
    """The part as a person sees it (CSRF tokens, signed each second, left out)."""
    return CSRF.sub(r"\1\2", response.get_data(as_text=True))


def test_an_unchanged_live_part_answers_304_and_each_change_a_new_part(kit, member_client, time_machine):
    time_machine.move_to(utcnow(), tick=False)
    gateway, mailbox = kit.ready_mailbox()
    kit.add_pin(mailbox, "Grandma", "4821")  # sent, waiting for the box: the part polls
    first = _poll(member_client, mailbox)
    etag = first.headers["ETag"]
    assert first.status_code == 200 and f'"If-None-Match": "\\"{etag[1:-1]}\\""' in first.get_data(as_text=True)

    again = _poll(member_client, mailbox, etag)
    assert again.status_code == 304 and again.get_data() == b""

    kit.confirm_all(gateway)  # the box confirms the PIN
    changed = _poll(member_client, mailbox, etag)
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert _shown(changed) != _shown(first)


def test_the_version_follows_the_words_of_the_clock(kit, member_client, time_machine):
    start = utcnow()
    time_machine.move_to(start, tick=False)
    gateway, mailbox = kit.ready_mailbox()
    kit.add_pin(mailbox, "Grandma", "4821")
    kit.device(gateway).publish(messages.opened_with_pin(gateway.thing_id, 4821), mailbox.channel_id)
    kit.poll()
    seen = _poll(member_client, mailbox)
    for seconds in (1, 2, 15, 59, 61, 62, 120, 3600, 3601):
        time_machine.move_to(start + timedelta(seconds=seconds), tick=False)
        now = _poll(member_client, mailbox, seen.headers["ETag"])
        if now.status_code == 304:
            # Unchanged for the server: then unchanged for a person too.
            assert _shown(_poll(member_client, mailbox)) == _shown(seen), seconds
        else:
            seen = now


VERSION_IN_PART = re.compile(r'"If-None-Match": "\\"([^"\\]+)\\""')


@pytest.mark.parametrize("asked, polled", [("", ""), ("?pins=2", "?pins=2"), ("?pins=99", "?pins=3"),
                                           ("?pins=last", "?pins=3")])
def test_the_page_carries_its_live_part_s_version_so_its_first_poll_is_a_304(kit, member_client, time_machine,
                                                                             asked, polled):
    """The whole page draws the live part with the version the part's poll would give it:
    the first poll, a second later, is a 304 while nothing changed (it drew the part again),
    on every page of PINs, the one a page past the end shows included. The clock stands at 5 s
    past a minute: the part's words hold to the minute's turn, which that second must not cross."""
    time_machine.move_to(utcnow().replace(second=5, microsecond=0) + timedelta(minutes=1), tick=False)
    _gateway, mailbox = kit.ready_mailbox()
    for n in range(51):  # sent, waiting for the box: the part polls; 3 pages of PINs
        kit.add_pin(mailbox, f"P{n:02d}", f"{4000 + n}", run=False)
    db.session.commit()
    page = member_client.get(f"/mailboxes/{mailbox.id}{asked}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and f'hx-get="/mailboxes/{mailbox.id}{polled}"' in html
    [version] = VERSION_IN_PART.findall(re.search(r'<div id="mailbox-live"[^>]*>', html).group(0))
    drawn = member_client.get(f"/mailboxes/{mailbox.id}{polled}", headers=POLL)
    assert drawn.headers["ETag"] == f'"{version}"'  # what the poll draws, it versions the same

    time_machine.move_to(utcnow() + timedelta(seconds=1), tick=False)
    first = member_client.get(f"/mailboxes/{mailbox.id}{polled}", headers=dict(POLL, **{"If-None-Match": f'"{version}"'}))
    assert first.status_code == 304

    kit.add_pin(mailbox, "P51", "4051", run=False)  # a member adds a PIN
    db.session.commit()
    changed = member_client.get(f"/mailboxes/{mailbox.id}{polled}",
                                headers=dict(POLL, **{"If-None-Match": f'"{version}"'}))
    assert changed.status_code == 200 and changed.headers["ETag"] != f'"{version}"'


def test_a_message_to_flash_is_never_answered_304(kit, member_client):
    gateway, mailbox = kit.ready_mailbox()
    kit.add_pin(mailbox, "Grandma", "4821")
    etag = _poll(member_client, mailbox).headers["ETag"]
    with member_client.session_transaction() as session:
        session["_flashes"] = [("info", "Something to say")]
    flashed = _poll(member_client, mailbox, etag)
    assert flashed.status_code == 200 and "Something to say" in flashed.get_data(as_text=True)


def _rename_other_box(kit, gateway, mailbox):
    _gw, other = kit.ready_mailbox("Side gate", gateway=gateway)
    other.name = "Back gate"


def _down(kit, gateway, mailbox):
    db.session.merge(PlatformHealth(name=STREAMIOT, state=PLATFORM_DOWN, next_probe_at=utcnow() + timedelta(seconds=30)))


def _event(kit, gateway, mailbox):
    db.session.add(ActivityEvent(account_id=mailbox.account_id, actor_kind="box", actor_label=mailbox.name,
                                 kind="box.closed", summary="Closed", gateway_id=gateway.id, mailbox_id=mailbox.id,
                                 occurred_at=utcnow() + timedelta(seconds=1)))


def _unlock(kit, gateway, mailbox):
    db.session.add(Command(account_id=mailbox.account_id, gateway_id=gateway.id, mailbox_id=mailbox.id,
                           action="UNLOCK", channel_key="mailbox", state="confirmed"))


def _member_name(kit, gateway, mailbox):
    kit.user.display_name = "Sam at home"


def _member_email(kit, gateway, mailbox):
    kit.user.email = "sam@example.org"  # shown where a member has no name


def _member_joins(kit, gateway, mailbox):
    user = User(email="kim@example.com")
    db.session.add(user)
    db.session.flush()
    db.session.add(Membership(account_id=mailbox.account_id, user_id=user.id, role="member"))


def _other_box_removed(kit, gateway, mailbox):
    _gw, other = kit.ready_mailbox("Side gate", gateway=gateway)
    db.session.commit()
    other.status = "removing"


def _zone(kit, gateway, mailbox):
    kit.account.time_zone = "Europe/Paris"


def _came_online(kit, gateway, mailbox):
    kit.reload(gateway).online_since = utcnow() + timedelta(seconds=1)  # set by the heartbeat that brings it online


@pytest.mark.parametrize("change", [_rename_other_box, _down, _event, _unlock, _member_name, _member_email,
                                    _member_joins, _other_box_removed, _zone, _came_online])
def test_each_thing_the_live_part_shows_moves_its_version(kit, change, time_machine):
    """The version is read in few statements (the box row carries the household's facts and
    StreamIoT's state; box names and members share one): each input still moves it."""
    time_machine.move_to(utcnow(), tick=False)
    gateway, mailbox = kit.ready_mailbox()
    kit.add_pin(mailbox, "Grandma", "4821")
    db.session.commit()
    before = live_version_of(mailbox.account_id, mailbox.id)
    assert live_version_of(mailbox.account_id, mailbox.id) == before
    change(kit, gateway, mailbox)
    db.session.commit()
    assert live_version_of(mailbox.account_id, mailbox.id) != before


def test_another_household_s_changes_leave_the_version_alone(kit, make_household, time_machine):
    time_machine.move_to(utcnow(), tick=False)
    gateway, mailbox = kit.ready_mailbox()
    before = live_version_of(mailbox.account_id, mailbox.id)
    user, account = make_household("neighbour@example.com", "Next door")
    account.time_zone = "Asia/Tokyo"
    user.display_name = "Neighbour"
    db.session.commit()
    assert live_version_of(mailbox.account_id, mailbox.id) == before
    assert live_version_of(account.id, mailbox.id) is None  # not theirs to see


def test_a_pin_added_to_two_boxes_moves_the_version_when_its_twin_on_the_other_box_changes(kit, time_machine):
    """The part shows a grouped PIN's twins on the other boxes: their state is in the version
    (the group ids come back as text from the version's rows and are read as ids again)."""
    time_machine.move_to(utcnow(), tick=False)
    gateway, front = kit.ready_mailbox("Front box")
    _gw, side = kit.ready_mailbox("Side gate", gateway=gateway)
    made = pins.add_pin(kit.account.id, [front.id, side.id], kit.user, label="Courier", digits="7310")
    assert len({p.group_id for p in made}) == 1
    before = live_version_of(front.account_id, front.id)
    twin = next(p for p in made if p.mailbox_id == side.id)
    db.session.get(Command, twin.command_id).state = "failed"
    db.session.commit()
    assert live_version_of(front.account_id, front.id) != before


def test_a_pin_added_to_two_boxes_names_its_twin_and_its_state_in_the_part_and_on_the_page(kit, member_client):
    """The part reads the twins' box names with the twins themselves (it does not read the
    household's other boxes, which only the add-PIN form lists)."""
    gateway, front = kit.ready_mailbox("Front box")
    _gw, side = kit.ready_mailbox("Side gate", gateway=gateway)
    made = pins.add_pin(kit.account.id, [front.id, side.id], kit.user, label="Courier", digits="7310")
    twin = next(p for p in made if p.mailbox_id == side.id)
    db.session.get(Command, twin.command_id).state = "failed"
    db.session.commit()
    part = visible_text(_poll(member_client, front).get_data(as_text=True))
    page = visible_text(member_client.get(f"/mailboxes/{front.id}").get_data(as_text=True))
    assert "Also on: Side gate (failed)" in part, part
    assert "Also on: Side gate (failed)" in page
    assert "Also on: Front box" not in part


def test_the_part_is_drawn_again_the_second_a_scheduled_pin_starts(kit, member_client, time_machine):
    """Rule states change at the second a PIN starts or ends, whatever the minute: the
    version holds until then and not a second longer."""
    start = utcnow().replace(second=10, microsecond=0)
    time_machine.move_to(start, tick=False)
    gateway, mailbox = kit.ready_mailbox()
    pin = kit.add_pin(mailbox, "Cleaner", "5150", kind="range",
                      ends=(start + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M"))
    kit.confirm_all(gateway)
    pin = kit.reload(pin)
    pin.starts_at = start + timedelta(minutes=5, seconds=20)  # the API and forms take minutes; a second is harder
    db.session.commit()
    time_machine.move_to(start + timedelta(minutes=5), tick=False)  # the box's events are old now
    seen = _poll(member_client, mailbox)
    etag = seen.headers["ETag"]
    time_machine.move_to(start + timedelta(minutes=5, seconds=19), tick=False)
    assert _poll(member_client, mailbox, etag).status_code == 304
    time_machine.move_to(start + timedelta(minutes=5, seconds=20), tick=False)
    started = _poll(member_client, mailbox, etag)
    assert started.status_code == 200 and _shown(started) != _shown(seen)


@pytest.mark.parametrize("etag", ['"garbled"', '"1.2.3"', '"7.99999999999.0123456789abcdef0123"', "*", '""'])
def test_a_version_the_portal_did_not_sign_draws_the_part(kit, member_client, etag):
    _gateway, mailbox = kit.ready_mailbox()
    kit.add_pin(mailbox, "Grandma", "4821")
    response = _poll(member_client, mailbox, etag)
    assert response.status_code == 200 and "Grandma" in response.get_data(as_text=True)


def test_one_box_s_version_does_not_hold_for_another_box(kit, member_client, time_machine):
    time_machine.move_to(utcnow(), tick=False)
    gateway, front = kit.ready_mailbox("Front box")
    _gw, side = kit.ready_mailbox("Side gate", gateway=gateway)
    etag = _poll(member_client, front).headers["ETag"]
    assert _poll(member_client, front, etag).status_code == 304
    other = _poll(member_client, side, etag)
    assert other.status_code == 200 and "Side gate" in other.get_data(as_text=True)


def test_a_change_tried_again_soon_counts_down_and_later_on_the_minute_its_words_turn(kit, member_client,
                                                                                      time_machine):
    """A queued change whose last try failed says when it is tried again: in seconds under two
    minutes away (the part is drawn again each second), else in minutes (drawn again the
    second its minutes go down, not a second later)."""
    start = utcnow().replace(second=0, microsecond=0)  # the minute's own turn is out of the way
    time_machine.move_to(start, tick=False)
    _gateway, mailbox = kit.ready_mailbox()
    pin = kit.add_pin(mailbox, "Grandma", "4821", run=False)
    start += timedelta(minutes=10)  # what the box said is old news by now
    time_machine.move_to(start, tick=False)
    command = db.session.get(Command, kit.reload(pin).command_id)
    command.retry_at = start + timedelta(seconds=90)
    db.session.commit()
    soon = _poll(member_client, mailbox)
    assert "trying again in 90 s" in soon.get_data(as_text=True)
    time_machine.move_to(start + timedelta(seconds=1), tick=False)
    ticked = _poll(member_client, mailbox, soon.headers["ETag"])
    assert ticked.status_code == 200 and "trying again in 89 s" in ticked.get_data(as_text=True)

    command.retry_at = start + timedelta(seconds=1 + 330)  # 5.5 minutes: "in 6 min"
    db.session.commit()
    later = _poll(member_client, mailbox)
    assert "trying again in 6 min" in later.get_data(as_text=True)
    time_machine.move_to(start + timedelta(seconds=1 + 29), tick=False)
    assert _poll(member_client, mailbox, later.headers["ETag"]).status_code == 304
    time_machine.move_to(start + timedelta(seconds=1 + 30), tick=False)
    turned = _poll(member_client, mailbox, later.headers["ETag"])
    assert turned.status_code == 200 and "trying again in 5 min" in turned.get_data(as_text=True)


def test_an_event_s_minutes_ago_turn_with_the_event_not_with_the_clock_s_minute(kit, member_client, time_machine):
    start = utcnow().replace(second=20, microsecond=0)  # the clock's minutes turn at :00, 40 s after it
    time_machine.move_to(start, tick=False)
    _gateway, mailbox = kit.ready_mailbox()
    db.session.add(ActivityEvent(account_id=kit.account.id, actor_kind="box", actor_label=mailbox.name,
                                 kind="box.closed", summary="Closed", mailbox_id=mailbox.id, occurred_at=start))
    db.session.commit()
    time_machine.move_to(start + timedelta(minutes=5, seconds=45), tick=False)
    seen = _poll(member_client, mailbox)
    assert "5 minutes ago" in seen.get_data(as_text=True)
    time_machine.move_to(start + timedelta(minutes=5, seconds=59), tick=False)
    assert _poll(member_client, mailbox, seen.headers["ETag"]).status_code == 304
    time_machine.move_to(start + timedelta(minutes=6), tick=False)
    turned = _poll(member_client, mailbox, seen.headers["ETag"])
    assert turned.status_code == 200 and "6 minutes ago" in turned.get_data(as_text=True)


def test_the_gateway_reads_offline_the_second_after_its_window_ends(app, kit, member_client, time_machine):
    """Online while no more than the window has passed: a part drawn at the window's last
    instant holds no further than that second."""
    start = utcnow().replace(microsecond=0) + timedelta(seconds=5)
    time_machine.move_to(start, tick=False)
    gateway, mailbox = kit.ready_mailbox()
    kit.add_pin(mailbox, "Grandma", "4821")  # waiting for the box: the part polls
    gateway = kit.reload(gateway)
    gateway.last_heartbeat_at = start
    db.session.commit()
    time_machine.move_to(start + timedelta(seconds=app.config["HEARTBEAT_WINDOW_SECONDS"]), tick=False)
    seen = _poll(member_client, mailbox)
    assert "Online" in seen.get_data(as_text=True)
    time_machine.move_to(start + timedelta(seconds=app.config["HEARTBEAT_WINDOW_SECONDS"] + 1), tick=False)
    stale = _poll(member_client, mailbox, seen.headers["ETag"])
    assert stale.status_code == 200 and "Offline" in stale.get_data(as_text=True)
