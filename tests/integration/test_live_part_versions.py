"""A box page's live part polls with the version it shows: while nothing it shows has
changed the answer is a bodiless 304 (htmx keeps the part as it is); any change, the clock
moving its words on, or a message to flash makes a fresh part with a new version."""
import re
from datetime import timedelta

import pytest

from portal.extensions import db
from portal.models import ActivityEvent, Command, Membership, PlatformHealth, User, utcnow
from portal.models.platform import PLATFORM_DOWN, STREAMIOT
from portal.services import dashboard, pins
from portal.streamiot import messages

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


def _heard(kit, gateway, mailbox):
    gateway.last_heartbeat_at = utcnow() - timedelta(seconds=1)


@pytest.mark.parametrize("change", [_rename_other_box, _down, _event, _unlock, _member_name, _member_email,
                                    _member_joins, _other_box_removed, _zone, _heard])
def test_each_thing_the_live_part_shows_moves_its_version(kit, change, time_machine):
    """The version is read in few statements (the box row carries the household's facts and
    StreamIoT's state; box names and members share one): each input still moves it."""
    time_machine.move_to(utcnow(), tick=False)
    gateway, mailbox = kit.ready_mailbox()
    kit.add_pin(mailbox, "Grandma", "4821")
    db.session.commit()
    before = dashboard.mailbox_live_version(mailbox.account_id, mailbox.id)
    assert dashboard.mailbox_live_version(mailbox.account_id, mailbox.id) == before
    change(kit, gateway, mailbox)
    db.session.commit()
    assert dashboard.mailbox_live_version(mailbox.account_id, mailbox.id) != before


def test_another_household_s_changes_leave_the_version_alone(kit, make_household, time_machine):
    time_machine.move_to(utcnow(), tick=False)
    gateway, mailbox = kit.ready_mailbox()
    before = dashboard.mailbox_live_version(mailbox.account_id, mailbox.id)
    user, account = make_household("neighbour@example.com", "Next door")
    account.time_zone = "Asia/Tokyo"
    user.display_name = "Neighbour"
    db.session.commit()
    assert dashboard.mailbox_live_version(mailbox.account_id, mailbox.id) == before
    assert dashboard.mailbox_live_version(account.id, mailbox.id) is None  # not theirs to see


def test_a_pin_added_to_two_boxes_moves_the_version_when_its_twin_on_the_other_box_changes(kit, time_machine):
    """The part shows a grouped PIN's twins on the other boxes: their state is in the version
    (the group ids come back as text from the version's rows and are read as ids again)."""
    time_machine.move_to(utcnow(), tick=False)
    gateway, front = kit.ready_mailbox("Front box")
    _gw, side = kit.ready_mailbox("Side gate", gateway=gateway)
    made = pins.add_pin(kit.account.id, [front.id, side.id], kit.user, label="Courier", digits="7310")
    assert len({p.group_id for p in made}) == 1
    before = dashboard.mailbox_live_version(front.account_id, front.id)
    twin = next(p for p in made if p.mailbox_id == side.id)
    db.session.get(Command, twin.command_id).state = "failed"
    db.session.commit()
    assert dashboard.mailbox_live_version(front.account_id, front.id) != before
