"""The sealed protocol level against the real firmware (the portal's virtual gateways):
PIN digits never travel readable, reports are authenticated, forgeries and replays change
nothing."""
import json
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from portal.devices.firmware import UnknownMailbox
from portal.extensions import db
from portal.jobs import virtual_gateways
from portal.models import ActivityEvent, IgnoredDeviceMessage, KeyOffer, LoginSession, Membership, utcnow
from portal.services import gateway_keys, mailboxes, pins
from portal.services.deliveries import PinState
from portal.streamiot import errors as sie
from portal.streamiot import messages
from tests.plugins.devices import FakeGateway


@pytest.fixture
def app_overrides():
    return {"VIRTUAL_GATEWAYS": True}



def test_a_sealed_gateway_comes_online_and_confirms_a_pin(kit):
    gateway = kit.add_gateway(protocol="sealed")
    assert gateway.protocol == "sealed"
    mailbox = kit.add_mailbox(gateway)
    kit.settle()
    pin = kit.add_pin(mailbox, "Grandma", "4821")
    kit.settle()
    gateway = kit.reload(gateway)
    ignored = db.session.scalars(sa.select(IgnoredDeviceMessage)).all()
    assert [(i.name, i.why) for i in ignored] == []
    assert gateway.last_heartbeat_at is not None
    assert kit.reload(pin).status == PinState.ACTIVE



def _sealed_box(kit, digits="4821"):
    gateway = kit.add_gateway(protocol="sealed")
    mailbox = kit.add_mailbox(gateway)
    kit.settle()
    pin = kit.add_pin(mailbox, "Grandma", digits)
    kit.settle()
    assert kit.reload(pin).status == PinState.ACTIVE
    return kit.reload(gateway), kit.reload(mailbox), kit.reload(pin)


def _everything_readable_with(kit, thing_key, channel_ids) -> str:
    """What a holder of a thing key connected to these channels can read: all of it."""
    found = []
    for channel_id in channel_ids:
        page = kit.streamiot.read_messages(channel_id, thing_key=thing_key, limit=1000)
        assert page["total"] == len(page["messages"]) > 0
        found += page["messages"]
    return json.dumps(found)


def _box_events():
    db.session.expire_all()
    return db.session.scalars(
        sa.select(ActivityEvent).where(ActivityEvent.kind.startswith("box.")).order_by(ActivityEvent.id)
    ).all()


def _ignored():
    db.session.expire_all()
    return [(i.name, i.why) for i in db.session.scalars(sa.select(IgnoredDeviceMessage)
                                                         .order_by(IgnoredDeviceMessage.recorded_at))]


def test_a_gateway_key_holder_reads_no_pin_digits_in_any_form(kit):
    gateway, mailbox, pin = _sealed_box(kit, "43920640")
    vg = virtual_gateways.virtual_gateway_for(kit.app, gateway)
    assert vg.keypad(mailbox.public_key, "43920640") == "opened"
    kit.settle()
    pins.remove_pin(kit.account.id, pin.id, kit.user)
    kit.settle()
    assert kit.reload(pin).status == PinState.REMOVED
    assert [e.summary for e in _box_events() if e.kind == "box.opened_pin"] == ["Opened with PIN “Grandma”"]

    stolen = FakeGateway(kit, gateway).key  # what a member who downloaded the settings holds
    everything = _everything_readable_with(kit, stolen, [gateway.channel_id, mailbox.channel_id])
    for form in ("43920640", "4392 0640", "43920640.0", "4.392064e+07", "4.392064E7"):
        assert form not in everything
    assert '"name": "' in everything and "_AUTH" in everything and "_UNAUTH" in everything


def test_forged_and_replayed_reports_change_nothing_and_show_as_ignored(kit):
    gateway, mailbox, _pin = _sealed_box(kit)
    g = gateway.thing_id
    attacker = FakeGateway(kit, gateway)
    before = len(_box_events())
    # Unsigned, as the seed would have them.
    attacker.publish(messages.opened_with_pin(g, 4821), mailbox.channel_id)
    attacker.publish(messages.battery(g, 3), mailbox.channel_id)
    # Signed with a key of the attacker's own (a MAC, but not under the link key).
    attacker.publish(messages.signed(messages.battery(g, 3), mailbox.channel_id, 10_000, b"k" * 32),
                     mailbox.channel_id)
    kit.poll()
    assert len(_box_events()) == before
    assert kit.reload(mailbox).battery_percent != 3
    assert _ignored() == [("OPENED", "not authenticated: its MAC is missing or wrong"),
                          ("BATTERY", "not authenticated: its MAC is missing or wrong"),
                          ("BATTERY", "not authenticated: its MAC is missing or wrong")]

    # A real report, then the same pack again (the attacker copied it from the reader).
    vg = virtual_gateways.virtual_gateway_for(kit.app, gateway)
    assert vg.keypad(mailbox.public_key, "4821") == "opened"
    kit.settle()
    opened = [e for e in _box_events() if e.kind == "box.opened_pin"]
    assert len(opened) == 1
    [real] = [m for m in kit.read(mailbox.channel_id, publisher=g)
              if m["name"].endswith("_OPENED") and "string_value" in m]
    pack = [m for m in kit.read(mailbox.channel_id, publisher=g) if m["time"] == real["time"]]
    replay = [{"bn": f"{g}_", "n": "OPENED", "u": "PIN", "vs": real["string_value"]}]
    replay += [{"n": m["name"].rsplit("_", 1)[1], **({"v": m["value"]} if "value" in m else {"vs": m["string_value"]})}
               for m in pack if m["name"].rsplit("_", 1)[1] in ("CTR", "MAC")]
    attacker.publish(sorted(replay, key=lambda r: r.get("n") == "MAC"), mailbox.channel_id)
    kit.settle(2)
    assert len([e for e in _box_events() if e.kind == "box.opened_pin"]) == 1
    assert _ignored()[-1] == ("OPENED", "a replay: its counter is not newer than the last report's")


def test_the_firmware_ignores_a_command_without_a_valid_mac_or_with_an_old_counter(kit):
    gateway, mailbox, pin = _sealed_box(kit)
    portal_key = kit.portal_key()
    g = gateway.thing_id
    sealed = messages.sealed_pin(gateway.public_key, 9999, "evil1234")
    # Someone holding the portal's thing key (not the household's link key) sends an AUTH.
    kit.streamiot.publish(mailbox.channel_id, portal_key, messages.add_pin_sealed(g, sealed))
    kit.streamiot.publish(mailbox.channel_id, portal_key,
                          messages.signed(messages.add_pin_sealed(g, sealed), mailbox.channel_id, 99, b"x" * 32))
    kit.settle(2)
    vg = virtual_gateways.virtual_gateway_for(kit.app, gateway)

    def pins_on_box():
        [box] = [b for b in vg.snapshot()["mailboxes"] if b["public_key"] == mailbox.public_key]
        return box["pins"]

    assert pins_on_box() == 1  # only Grandma's
    assert vg.keypad(mailbox.public_key, "9999") == "rejected"

    # Grandma's PIN is removed; then the portal's own AUTH pack for it is replayed, counter
    # and MAC included (copied from the reader): the box does not take it back.
    pins.remove_pin(kit.account.id, pin.id, kit.user)
    kit.settle()
    assert pins_on_box() == 0
    sent = kit.published_by_portal(mailbox.channel_id)
    counters = {m["time"]: m["value"] for m in sent if m["name"].endswith("_CTR")}
    [auth] = [m for m in sent if m["name"].endswith("_AUTH") and counters.get(m["time"]) not in (None, 99)]
    replay = [{"bn": f"{g}_", "n": "AUTH", "u": "PIN", "vs": auth["string_value"]}]
    replay += [{"n": m["name"].rsplit("_", 1)[1], **({"v": m["value"]} if "value" in m else {"vs": m["string_value"]})}
               for m in sent if m["time"] == auth["time"] and m["name"].rsplit("_", 1)[1] in ("CTR", "MAC")]
    kit.streamiot.publish(mailbox.channel_id, portal_key, sorted(replay, key=lambda r: r.get("n") == "MAC"))
    kit.settle(2)
    assert pins_on_box() == 0
    assert vg.keypad(mailbox.public_key, "4821") == "rejected"


def test_replacing_a_sealed_gateways_keys_needs_no_visit_and_kills_the_old_key(app, kit, time_machine):
    gateway, mailbox, first = _sealed_box(kit)
    old_thing, old_key = gateway.thing_id, FakeGateway(kit, gateway).key
    login = LoginSession(user_id=kit.user.id, token_hash=uuid.uuid4().hex * 2, reauthenticated_at=utcnow())
    db.session.add(login)
    db.session.commit()
    membership = db.session.scalars(sa.select(Membership).where(Membership.user_id == kit.user.id)).one()
    gateway_keys.start_replacement(membership, kit.user, login, gateway.id, None)

    clock = utcnow()
    for _ in range(8):  # the job sends REKEY, the gateway answers through its new thing
        kit.settle(1)
        if kit.reload(gateway).key_state == "current":
            break
        clock += timedelta(seconds=3)  # the job looks again a moment later
        time_machine.move_to(clock)  # time flows: each pack gets its own receive time
    gateway = kit.reload(gateway)
    assert gateway.key_state == "current", gateway.key_error
    assert gateway.key_progress["rekey_sent"] is True and gateway.key_progress["rekey_confirmed"] is True
    assert gateway.thing_id != old_thing

    # The old key is dead on every channel; the new one was never readable anywhere.
    for channel in (gateway.channel_id, mailbox.channel_id):
        with pytest.raises(sie.ServerError):
            kit.streamiot.publish(channel, old_key, messages.heartbeat(old_thing, 1))
        with pytest.raises(sie.ServerError):
            kit.streamiot.read_messages(channel, thing_key=old_key)
    new_key = FakeGateway(kit, gateway).key
    assert new_key not in json.dumps(kit.read(gateway.channel_id))

    # The gateway keeps working: a PIN added after the swap is confirmed, the old one opens.
    second = kit.add_pin(mailbox, "After", "7364")
    kit.settle()
    assert kit.reload(second).status == PinState.ACTIVE
    vg = virtual_gateways.virtual_gateway_for(kit.app, gateway)
    assert vg.keypad(mailbox.public_key, "4821") == "opened"
    kit.settle()
    assert [e.summary for e in _box_events() if e.kind == "box.opened_pin"] == ["Opened with PIN “Grandma”"]
    assert kit.reload(first).status == PinState.ACTIVE
    assert all("REKEY" not in name for name, _why in _ignored())


def test_a_box_gets_a_new_key_pair_its_gateway_forgets_the_old_one_and_keeps_its_pins(app, kit):
    gateway, mailbox, pin = _sealed_box(kit)
    old_key = mailbox.public_key
    login = LoginSession(user_id=kit.user.id, token_hash=uuid.uuid4().hex * 2, reauthenticated_at=utcnow())
    db.session.add(login)
    db.session.commit()
    mailboxes.new_key_pair(kit.account.id, mailbox.id, kit.user, login)
    mailbox = kit.reload(mailbox)
    assert mailbox.public_key != old_key and mailbox.status == "provisioning"
    assert kit.reload(pin).status == PinState.ADDING  # until the box confirms it again
    # The new private key is offered once, to the member who made it.
    offer = db.session.scalars(sa.select(KeyOffer).where(KeyOffer.device_id == mailbox.id)).one()
    assert offer.user_id == kit.user.id

    kit.settle(8)
    mailbox = kit.reload(mailbox)
    assert mailbox.status == "active" and kit.reload(pin).status == PinState.ACTIVE
    deletes = kit.commands(gateway, action="DELETE", mailbox=mailbox)
    assert [(c.value, c.state) for c in deletes] == [(old_key, "confirmed")]
    vg = virtual_gateways.virtual_gateway_for(kit.app, gateway)
    assert [b["public_key"] for b in vg.snapshot()["mailboxes"]] == [mailbox.public_key]
    assert vg.keypad(mailbox.public_key, "4821") == "opened"
    with pytest.raises(UnknownMailbox):
        vg.keypad(old_key, "4821")
    assert _ignored() == []
