"""Rules a sealed box keeps itself: its reports name PINs by reference and are signed, and
safe mode (lockouts after wrong PINs, two PINs to open) goes to it as a SAFE command that is
queued, sent and confirmed by the answer echoing its version, like a PIN change."""
import uuid

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import Account, ActivityEvent, Command, IgnoredDeviceMessage, LoginSession, utcnow
from portal.services import device_link, mailboxes, safe_mode
from portal.services.errors import Conflict, ValidationFailed
from portal.streamiot import messages


@pytest.fixture
def app_overrides():
    return {"VIRTUAL_GATEWAYS": True}



def _summaries(kind):
    db.session.expire_all()
    return list(db.session.scalars(sa.select(ActivityEvent.summary).where(ActivityEvent.kind == kind)
                                   .order_by(ActivityEvent.id)))


@pytest.fixture
def sealed(kit):
    """A sealed box the virtual gateway set up, with a confirmed PIN, and `say`, which
    publishes a pack signed under the link's report key as the gateway does."""
    gateway = kit.add_gateway(protocol="sealed")
    mailbox = kit.add_mailbox(gateway)
    kit.settle()
    pin = kit.add_pin(mailbox, "Grandma", "4821")
    kit.settle()
    assert kit.reload(pin).status == "active"
    gateway, mailbox = kit.reload(gateway), kit.reload(mailbox)
    key = device_link.link_key(db.session.get(Account, kit.account.id), gateway, device_link.REPORT)
    device = kit.device(gateway)
    counter = iter(range(1_000_000, 2_000_000))

    def say(pack):
        signed = messages.signed(pack, mailbox.channel_id, next(counter), key)
        device.publish(signed, mailbox.channel_id)
        kit.poll()
        return signed

    return gateway, mailbox, kit.reload(pin), say


def test_a_sealed_box_names_its_pins_by_reference_and_a_replay_is_ignored(kit, sealed):
    gateway, mailbox, grandma, say = sealed
    courier = kit.add_pin(mailbox, "Delivery", "6172")
    kit.settle()
    courier = kit.reload(courier)
    courier.purpose, courier.max_uses = "courier", 1  # as the PIN service makes a delivery code
    db.session.commit()
    g = gateway.thing_id
    say(messages.refused(g, grandma.ref, messages.OUTSIDE_HOURS))
    say(messages.opened_with(g, courier.ref, left=0))
    closed = say(messages.closed(g))
    assert kit.reload(courier).delivery_state == "delivered"
    # The same signed pack again (copied from the reader), and one under a key of its own.
    kit.device(gateway).publish(closed, mailbox.channel_id)
    kit.device(gateway).publish(messages.signed(messages.closed(g), mailbox.channel_id, 3_000_000, b"x" * 32),
                                mailbox.channel_id)
    kit.poll()
    assert _summaries("box.parcel_delivered") == ["Parcel delivered (“Delivery”)"]
    assert _summaries("box.opened_pin") == ["Courier “Delivery” opened the box"]
    assert _summaries("box.refused")[0].startswith("“Grandma” PIN refused: outside its hours (")
    assert kit.reload(courier).uses == 1
    ignored = db.session.scalars(sa.select(IgnoredDeviceMessage).order_by(IgnoredDeviceMessage.recorded_at)).all()
    assert [(i.name, i.why) for i in ignored][-2:] == [
        ("CLOSED", "a replay: its counter is not newer than the last report's"),
        ("CLOSED", "not authenticated: its MAC is missing or wrong"),
    ]


# --- safe mode --------------------------------------------------------------------------------

def _save(kit, mailbox, **fields):
    settings = {"enabled": True, "attempts": 5, "lockouts": "1, 5, 15", "dual": True, **fields}
    return safe_mode.save(kit.account.id, mailbox.id, kit.user, **settings)


def _sent_settings(kit, mailbox) -> list[dict]:
    """Each SAFE pack the portal published on the box's channel, as {record name: value}."""
    sent = kit.published_by_portal(mailbox.channel_id)
    times = [m["time"] for m in sent if m["name"].endswith("_SAFE")]
    return [{m["name"].rsplit("_", 1)[1]: messages.message_value(m) for m in sent
             if m["time"] == t and m["name"].rsplit("_", 1)[1] not in ("CTR", "MAC")} for t in times]


def test_safe_mode_needs_a_gateway_that_keeps_rules_itself(kit):
    _gateway, mailbox = kit.ready_mailbox()  # a seed gateway
    with pytest.raises(Conflict) as refused:
        _save(kit, mailbox)
    assert refused.value.message == "This box's gateway cannot keep safe-mode rules by itself."
    assert kit.commands(action="SAFE") == [] and kit.reload(mailbox).safe_version == 0


@pytest.mark.parametrize("field, value", [
    ("attempts", 2), ("attempts", 21), ("attempts", "five"),
    ("lockouts", ""), ("lockouts", "0"), ("lockouts", "1441"), ("lockouts", "5, 1"), ("lockouts", "1.5"),
    ("lockouts", ",".join(["1"] * 11)),
])
def test_safe_mode_settings_are_checked_field_by_field(kit, field, value):
    mailbox = kit.add_mailbox(kit.add_gateway(protocol="sealed"))
    with pytest.raises(ValidationFailed) as refused:
        _save(kit, mailbox, **{field: value})
    assert refused.value.field == field
    assert kit.commands(action="SAFE") == [] and kit.reload(mailbox).safe_settings is None


def test_safe_mode_is_queued_sent_and_confirmed_by_the_answer_echoing_its_version(kit, sealed):
    gateway, mailbox, _pin, say = sealed
    mailbox = _save(kit, mailbox, attempts="5", lockouts="1,5, 15", dual=True)
    command = safe_mode.command_of(mailbox)
    assert mailbox.safe_settings == {"attempts": 5, "lockouts": [60, 300, 900], "dual_seconds": 60}
    assert (command.action, command.value, command.state) == ("SAFE", "1", "queued")
    assert safe_mode.shown(mailbox, command).key == "queued"
    assert _summaries("mailbox.safe_mode") == [
        "Safe mode on for “Front box”: 5 wrong PINs lock the keypad for 1, 5, then 15 minutes; two PINs needed"]

    kit.drain()
    assert kit.reload(command).state == "sent"
    assert _sent_settings(kit, mailbox) == [{"SAFE": 1, "ATTEMPTS": 5, "LOCKOUTS": "60,300,900", "DUAL": 60}]
    sent = {"bn": f"{gateway.thing_id}_", "n": "SAFE", "u": "Settings", "v": 1}
    say(messages.reply({**sent, "v": 7}, True))  # another version's answer settles nothing
    assert kit.reload(command).state == "sent"
    say(messages.reply(sent, True))
    command, mailbox = kit.reload(command), kit.reload(mailbox)
    assert command.state == "confirmed"
    assert (safe_mode.shown(mailbox, command).key, safe_mode.shown(mailbox, command).label) == (
        "confirmed", "Confirmed by the device")


def test_a_newer_change_takes_back_the_older_one_that_has_not_left(kit, sealed):
    _gateway, mailbox, _pin, _say = sealed
    first = safe_mode.command_of(_save(kit, mailbox, lockouts="15", dual=False))
    mailbox = safe_mode.save(kit.account.id, mailbox.id, kit.user, enabled=False)
    latest = safe_mode.command_of(mailbox)
    assert kit.reload(first).state == "withdrawn" and safe_mode.shown(mailbox, kit.reload(first)) is None
    assert mailbox.safe_settings is None and latest.value == "2"
    assert _summaries("mailbox.safe_mode") == [
        "Safe mode on for “Front box”: 5 wrong PINs lock the keypad for 15 minutes",
        "Safe mode off for “Front box”",
    ]
    kit.drain()
    assert _sent_settings(kit, mailbox) == [{"SAFE": 2, "ATTEMPTS": 0, "LOCKOUTS": "0", "DUAL": 0}]


def test_a_refused_safe_mode_change_says_so_in_the_log(kit, sealed):
    gateway, mailbox, _pin, say = sealed
    command = safe_mode.command_of(_save(kit, mailbox))
    kit.drain()
    say(messages.reply({"bn": f"{gateway.thing_id}_", "n": "SAFE", "u": "Settings", "v": 1}, False, "no room"))
    assert kit.reload(command).state == "failed"
    assert _summaries("delivery.failed") == [
        "Safe mode for “Front box” was refused by the box: no room"]
    assert db.session.get(Command, command.id).reason == "no room"


def test_a_box_with_a_new_key_pair_gets_its_safe_mode_settings_again(kit, sealed):
    _gateway, mailbox, _pin, _say = sealed
    _save(kit, mailbox)
    kit.drain()
    login = LoginSession(user_id=kit.user.id, token_hash=uuid.uuid4().hex * 2, reauthenticated_at=utcnow())
    db.session.add(login)
    db.session.commit()
    mailboxes.new_key_pair(kit.account.id, mailbox.id, kit.user, login)
    mailbox = kit.reload(mailbox)
    again = safe_mode.command_of(mailbox)
    assert [(c.value, c.state) for c in kit.commands(action="SAFE")] == [("1", "sent"), ("2", "queued")]
    assert again.value == "2" and mailbox.safe_settings["lockouts"] == [60, 300, 900]
    # Behind the box's new registration and its PINs, which the gateway needs first.
    assert [c.action for c in kit.commands(mailbox=mailbox)][-5:] == ["DELETE", "ADD", "Mailbox", "AUTH", "SAFE"]
