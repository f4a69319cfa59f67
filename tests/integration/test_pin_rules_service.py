"""PINs with rules through the service: every bad input refused on its field, one PIN on
several boxes (a row a box, one group, delivered each on its own), delivery codes, duress
PINs, who a PIN belongs to, the AUTH carrying the rules, and the household's time zone."""
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import ActivityEvent, Command, Membership, Pin, utcnow
from portal.services import accounts, deliveries, gateways, mailboxes, pin_rules, pins
from portal.services.errors import Conflict, Forbidden, NotFound, ValidationFailed
from portal.streamiot import messages

WEEKDAYS = {"days": [0, 1, 2, 3, 4], "from": "08:00", "until": "18:00"}


def _local(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M")


def _add(kit, boxes, **given):
    given.setdefault("label", "Grandma")
    given.setdefault("digits", "4821")
    return pins.add_pin(kit.account.id, [b.id for b in boxes], kit.user, **given)


def _refused(kit, boxes, **given) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as caught:
        _add(kit, boxes, **given)
    db.session.rollback()
    return caught.value


def _pin_count() -> int:
    db.session.expire_all()
    return db.session.scalar(sa.select(sa.func.count()).select_from(Pin))


def _auth_records(kit, channel_id) -> list[list[dict]]:
    """Every AUTH pack the portal published on a box channel, as the records it carried."""
    packs: list[list[dict]] = []
    for message in kit.published_by_portal(channel_id):
        base, name = messages.split_name(message["name"])
        record = messages.record_from_message(message, base)
        record.pop("bn", None)
        if name == "AUTH":
            packs.append([record])
        elif packs and name in (messages.FROM, messages.UNTIL, messages.ZONE, messages.WINDOW, messages.USES,
                                messages.ROLE):
            packs[-1].append(record)
    return packs


@pytest.fixture
def two_boxes(kit):
    gateway, front = kit.ready_mailbox("Front box")
    back = kit.add_mailbox(gateway, "Back box")
    kit.confirm_all(gateway)
    return gateway, kit.reload(front), kit.reload(back)


# --- bad input, each on its field ---------------------------------------------------------------

@pytest.mark.parametrize("given,field,words", [
    ({"kind": "range", "starts": +3, "ends": +2}, "ends", "after the start"),
    ({"kind": "range", "ends": -1}, "ends", "passed"),
    ({"kind": "weekly", "windows": [{"days": [], "from": "08:00", "until": "18:00"}]}, "windows", "empty"),
    ({"kind": "weekly", "windows": [{"days": [0], "from": "18:00", "until": "08:00"}]}, "windows", "empty"),
    ({"kind": "weekly", "windows": [WEEKDAYS] * 17}, "windows", "at most 16"),
    ({"kind": "uses", "uses": 0}, "uses", "at least once"),
    ({"kind": "uses", "uses": 1001}, "uses", "at most 1000"),
    ({"kind": "uses", "uses": "lots"}, "uses", "number"),
    ({"kind": "sometimes"}, "kind", "when"),
    ({"duress": True}, "assigned_to", "belongs to a member"),
    ({"assigned_to_id": uuid.uuid4()}, "assigned_to", "member of this household"),
    ({"assigned_to_id": "not-an-id"}, "assigned_to", "member of this household"),
])
def test_bad_input_is_refused_on_its_field_and_saves_nothing(kit, given, field, words):
    _gateway, mailbox = kit.ready_mailbox()
    now = utcnow()
    for key in ("starts", "ends"):
        if isinstance(given.get(key), int):
            given[key] = _local(now + timedelta(days=given[key]))
    refused = _refused(kit, [mailbox], **given)
    assert refused.field == field and words in refused.message
    assert _pin_count() == 0


def test_no_box_chosen_is_refused_on_the_boxes(kit):
    kit.ready_mailbox()
    for nothing in ([], None, ["", " "]):
        with pytest.raises(ValidationFailed) as refused:
            pins.add_pin(kit.account.id, nothing, kit.user, label="Grandma", digits="4821")
        assert refused.value.field == "boxes"


def test_boxes_of_another_household_are_not_found(kit, make_household):
    _gateway, mailbox = kit.ready_mailbox()
    user, account = make_household("other@example.com", "Oak Lane")
    gateway, _key = gateways.add_gateway(account.id, user, name="Theirs", key_mode="generate", protocol="seed")
    theirs, _key = mailboxes.add_mailbox(account.id, gateway.id, user, name="Their box", kind="mailbox",
                                         key_mode="generate")
    for chosen in ([theirs.id], [mailbox.id, theirs.id], [uuid.uuid4()], ["junk"]):
        with pytest.raises(NotFound):
            pins.add_pin(kit.account.id, chosen, kit.user, label="Grandma", digits="4821")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Pin).where(Pin.account_id == kit.account.id)) == 0


# --- several boxes -----------------------------------------------------------------------------

def test_a_pin_on_several_boxes_is_a_row_a_box_in_one_group_each_delivered_on_its_own(kit, two_boxes):
    gateway, front, back = two_boxes
    made = _add(kit, [front, back, front], label="Cleaner", digits="5827")  # a box twice counts once
    assert [p.mailbox_id for p in made] == [front.id, back.id]
    assert len({p.id for p in made}) == 2 and len({p.group_id for p in made}) == 1
    assert {p.time_zone for p in made} == {"UTC"} and {p.purpose for p in made} == {"household"}
    auths = kit.commands(gateway, action="AUTH")
    assert sorted((c.mailbox_id, c.pin_id) for c in auths) == sorted((p.mailbox_id, p.id) for p in made)

    kit.drain()
    kit.device(gateway).answer(kit.commands(gateway, action="AUTH", mailbox=front)[0])  # only the front box
    kit.poll()
    assert [kit.reload(p).status for p in made] == ["active", "adding"]
    assert {p.id for p in pins.group_of(kit.reload(made[0]))} == {p.id for p in made}


def test_digits_taken_on_one_of_the_boxes_are_refused_naming_that_box(kit, two_boxes):
    _gateway, front, back = two_boxes
    kit.add_pin(back, "Courier", "5827", run=False)
    refused = _refused(kit, [front, back], digits="5827")
    assert refused.field == "digits" and "“Back box” already has a PIN with these digits" in refused.message
    assert _pin_count() == 1


def test_a_single_id_still_works_for_old_callers(kit):
    _gateway, mailbox = kit.ready_mailbox()
    [pin] = pins.add_pin(kit.account.id, str(mailbox.id), kit.user, label="Grandma", digits="4821")
    assert pin.mailbox_id == mailbox.id


# --- rules on the wire and in words ------------------------------------------------------------

def test_the_auth_carries_the_rules_in_the_household_zone(kit):
    owner = db.session.scalars(sa.select(Membership).where(Membership.user_id == kit.user.id)).one()
    accounts.set_time_zone(owner, kit.user, "Europe/Berlin")
    gateway, mailbox = kit.ready_mailbox()
    berlin = pin_rules.timezones.zone("Europe/Berlin")
    # Noon, 30 days on: a wall-clock time that names one moment only (in the hour repeated
    # when DST ends it names two, and the service takes the first: `ends` an hour off).
    ends = (utcnow() + timedelta(days=30)).astimezone(berlin).replace(hour=12, minute=0, second=0, microsecond=0)
    # All day every day: a seed gateway gets it now (outside its hours it would wait).
    always_open = {"days": range(7), "from": "00:00", "until": "24:00"}
    pin = kit.add_pin(mailbox, "Cleaner", "5827", kind="weekly", windows=[always_open], ends=_local(ends), uses=20)
    assert pin.time_zone == "Europe/Berlin"
    assert pin.ends_at == ends
    [pack] = _auth_records(kit, mailbox.channel_id)
    assert pack == [
        {"n": "AUTH", "u": "PIN", "v": 5827},
        {"n": "UNTIL", "u": "s", "v": int(pin.ends_at.timestamp())},
        {"n": "ZONE", "vs": "CET-1CEST,M3.5.0,M10.5.0/3"},
        {"n": "WINDOW", "vs": "1111111 00:00-24:00"},
        {"n": "USES", "v": 20},
    ]
    assert pin_rules.describe(pin, utcnow()).startswith("Works 20 times, every day 00:00-24:00, until ")
    # The seed box takes the PIN (it ignores the rules) and answers as ever.
    kit.confirm_all(gateway)
    assert kit.reload(pin).status == "active"


def test_an_always_pin_sends_the_auth_it_always_sent(kit):
    _gateway, mailbox = kit.ready_mailbox()
    kit.add_pin(mailbox, "Grandma", "4821")
    assert _auth_records(kit, mailbox.channel_id) == [[{"n": "AUTH", "u": "PIN", "v": 4821}]]


def test_the_added_line_says_the_rules(kit):
    _gateway, mailbox = kit.ready_mailbox()
    kit.add_pin(mailbox, "Parcel", "5827", kind="uses", uses=3, run=False)
    kit.add_pin(mailbox, "Grandma", "4821", run=False)
    lines = db.session.scalars(sa.select(ActivityEvent.summary).where(ActivityEvent.kind == "pin.added")
                               .order_by(ActivityEvent.occurred_at)).all()
    assert lines == ["Added PIN “Parcel” to “Front box” (works 3 times)", "Added PIN “Grandma” to “Front box”"]


def test_a_sealed_gateway_gets_a_pin_outside_its_hours_at_once_and_keeps_the_hours_itself(kit):
    gateway = kit.add_gateway("Sealed hall", protocol="sealed")
    mailbox = kit.add_mailbox(gateway, run=False)
    later = utcnow() + timedelta(days=2)
    pin = kit.add_pin(mailbox, "Cleaner", "5827", kind="range", starts=_local(later), run=False)
    assert pin.status == "adding"
    assert kit.command(gateway, "AUTH").pin_id == pin.id


# --- delivery codes ------------------------------------------------------------------------------

def test_a_delivery_code_is_one_use_with_drawn_digits_and_a_week_by_default(kit):
    _gateway, mailbox = kit.ready_mailbox()
    before = utcnow()
    pin, digits = pins.add_delivery_code(kit.account.id, mailbox.id, kit.user)
    assert pins.check_digits(digits) == digits and len(digits) == 6
    assert deliveries.pin_digits(pin) == int(digits)
    assert (pin.label, pin.purpose, pin.max_uses) == ("Delivery", "courier", 1)
    assert before + timedelta(days=7) - timedelta(minutes=1) <= pin.ends_at <= utcnow() + timedelta(days=7)
    later = _local(utcnow() + timedelta(days=2))
    second, _digits = pins.add_delivery_code(kit.account.id, mailbox.id, kit.user, label="Order 1234",
                                             expires=later)
    assert second.label == "Order 1234" and _local(second.ends_at) == later


def test_a_delivery_code_with_an_expiry_in_the_past_is_refused_on_its_field(kit):
    _gateway, mailbox = kit.ready_mailbox()
    with pytest.raises(ValidationFailed) as refused:
        pins.add_delivery_code(kit.account.id, mailbox.id, kit.user, expires="2020-01-01T00:00")
    assert refused.value.field == "expires"


def test_a_gun_safe_takes_no_delivery_code(kit):
    gateway = kit.add_gateway()
    safe = kit.add_mailbox(gateway, "Safe", kind="gun_safe")
    with pytest.raises(Conflict) as refused:
        pins.add_delivery_code(kit.account.id, safe.id, kit.user)
    assert "mailboxes and parcel boxes" in refused.value.message and "gun safe" in refused.value.message


# --- duress PINs and who a PIN belongs to ------------------------------------------------------

def test_a_duress_pin_belongs_to_a_member_once_a_box_and_differs_from_every_other_pin(kit, two_boxes,
                                                                                        add_member):
    _gateway, front, back = two_boxes
    bob, _membership = add_member(kit.account, "bob@example.com")
    kit.add_pin(front, "Grandma", "4821", run=False)
    refused = _refused(kit, [front], digits="4821", duress=True, assigned_to_id=bob.id)
    assert (refused.field, refused.message.split(" “")[0]) == (
        "digits", "A duress PIN must differ from every other PIN of this box.")

    made = _add(kit, [front, back], label="Bob duress", digits="7391", duress=True, assigned_to_id=bob.id)
    assert {(p.purpose, p.assigned_to_id) for p in made} == {("duress", bob.id)}
    again = _refused(kit, [back], digits="6193", duress=True, assigned_to_id=str(bob.id))
    assert again.field == "assigned_to" and again.message.rstrip(".") == \
        "bob@example.com already has a duress PIN on “Back box”"
    assert messages.BoxRules(**pin_rules.box_rules(made[0])).role == "duress"


def test_a_pin_is_reassigned_on_every_box_of_its_group(kit, two_boxes, add_member):
    _gateway, front, back = two_boxes
    bob, _ = add_member(kit.account, "bob@example.com")
    ann, _ = add_member(kit.account, "ann@example.com")
    made = _add(kit, [front, back], label="Bike shed", assigned_to_id=bob.id)
    assert {p.id for p in pins.assigned_to(kit.account.id, bob.id)} == {p.id for p in made}
    pins.reassign_pin(kit.account.id, made[1].id, kit.user, ann.id)
    assert pins.assigned_to(kit.account.id, bob.id) == []
    assert {p.id for p in pins.assigned_to(kit.account.id, ann.id)} == {p.id for p in made}
    with pytest.raises(ValidationFailed) as refused:
        pins.reassign_pin(kit.account.id, made[0].id, kit.user, uuid.uuid4())
    assert refused.value.field == "assigned_to"
    pins.reassign_pin(kit.account.id, made[0].id, kit.user, None)
    assert {kit.reload(p).assigned_to_id for p in made} == {None}


def test_a_duress_pin_cannot_be_left_without_a_member(kit, add_member):
    _gateway, mailbox = kit.ready_mailbox()
    bob, _ = add_member(kit.account, "bob@example.com")
    [duress] = _add(kit, [mailbox], digits="7391", duress=True, assigned_to_id=bob.id)
    with pytest.raises(ValidationFailed) as refused:
        pins.reassign_pin(kit.account.id, duress.id, kit.user, None)
    assert refused.value.field == "assigned_to"


# --- the household's time zone --------------------------------------------------------------------

def test_a_household_gets_its_zone_at_registration_and_utc_for_one_that_is_not_a_zone(app):
    _user, berlin = accounts.register("berlin@example.com", "correct horse battery", "Linden",
                                      time_zone="Europe/Berlin")
    _user, nowhere = accounts.register("nowhere@example.com", "correct horse battery", "Nowhere",
                                       time_zone="Mars/Olympus_Mons")
    _user, unset = accounts.register("unset@example.com", "correct horse battery", "Unset")
    assert (berlin.time_zone, nowhere.time_zone, unset.time_zone) == ("Europe/Berlin", "UTC", "UTC")


def test_owners_set_the_time_zone_and_an_unknown_one_is_refused_on_its_field(kit, add_member):
    owner = db.session.scalars(sa.select(Membership).where(Membership.user_id == kit.user.id)).one()
    with pytest.raises(ValidationFailed) as refused:
        accounts.set_time_zone(owner, kit.user, "Europe/Atlantis")
    assert refused.value.field == "time_zone"
    account = accounts.set_time_zone(owner, kit.user, "America/New_York")
    assert account.time_zone == "America/New_York"
    bob, membership = add_member(kit.account, "bob@example.com")
    with pytest.raises(Forbidden):
        accounts.set_time_zone(membership, bob, "Europe/Berlin")
    line = db.session.scalars(sa.select(ActivityEvent.summary).where(ActivityEvent.kind == "household.time_zone"))
    assert list(line) == ["Set the household’s time zone to America/New_York (was UTC); new PINs keep their "
                          "hours in it."]


def test_a_pin_keeps_the_zone_it_was_made_in(kit):
    owner = db.session.scalars(sa.select(Membership).where(Membership.user_id == kit.user.id)).one()
    _gateway, mailbox = kit.ready_mailbox()
    before = kit.add_pin(mailbox, "Before", "4821", kind="weekly", windows=[WEEKDAYS], run=False)
    accounts.set_time_zone(owner, kit.user, "Asia/Tokyo")
    after = kit.add_pin(mailbox, "After", "5827", kind="weekly", windows=[WEEKDAYS], run=False)
    assert (kit.reload(before).time_zone, after.time_zone) == ("UTC", "Asia/Tokyo")
    monday_noon_utc = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)  # 21:00 in Tokyo
    assert pin_rules.rule_state(kit.reload(before), monday_noon_utc) == "active"
    assert pin_rules.rule_state(after, monday_noon_utc) == "outside its hours"


def test_commands_of_a_multi_box_pin_point_at_their_own_rows(kit, two_boxes):
    gateway, front, back = two_boxes
    made = _add(kit, [front, back])
    for pin in made:
        command = db.session.get(Command, kit.reload(pin).command_id)
        assert (command.action, command.mailbox_id, command.pin_id) == ("AUTH", pin.mailbox_id, pin.id)
