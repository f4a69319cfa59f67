"""The gateway firmware as a pure state machine: commands in, the packs it would publish out."""
import json

import pytest

from portal.devices.firmware import READ_LOOKBACK_SECONDS, Firmware, UnknownMailbox, empty_state
from portal.streamiot import messages
from tests.plugins.text import without_ids

G = "6f1c1bd5-8a57-4a44-9c39-0ad1c3a6b001"  # gateway thing
GC = "7a2d7e10-3b6e-4f57-8d0e-2c4b5a6f0001"  # gateway channel
MC = "8b3e8f21-4c7f-4068-9e1f-3d5c6b7a0002"  # mailbox channel
PORTAL = "9c4f9032-5d80-4179-af20-4e6d7c8b0003"  # the household's portal thing
STRANGER = "ad50a143-6e91-428a-b031-5f7e8d9c0004"
GK = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq8M="
MK = "MkMkMkMkMkMkMkMkMkMkMkMkMkMkMkMkMkMkMkMkMkM="


class Channels:
    """What the reader would hold: packs resolved as the platform stores them."""

    def __init__(self):
        self.stored = {}
        self.clock = 1_700_000_000.0

    def send(self, channel, pack, publisher=PORTAL, at=None):
        if at is None:
            self.clock += 1.0
            at = self.clock
        for record in messages.parse_pack(pack, now=at):
            message = {"channel": channel, "publisher": publisher, "protocol": "http", **record}
            self.stored.setdefault(channel, []).insert(0, message)  # newest first

    def read(self, channel):
        return list(self.stored.get(channel, []))


@pytest.fixture
def chan():
    return Channels()


def make_firmware(state=None, **options):
    return Firmware(state or empty_state(G), thing_id=G, channel_id=GC, public_key=GK, **options)


@pytest.fixture
def gw():
    return make_firmware(open_seconds=5.0, battery_seconds=3600.0)


def published(firmware, channel=None):
    """The packs queued for publication (optionally on one channel), and clear the outbox."""
    packs = [i["pack"] for i in firmware.state["outbox"] if channel in (None, i["channel"])]
    firmware.state["outbox"].clear()
    return packs


def deliver(firmware, chan, channel, now=None):
    return firmware.receive(channel, chan.read(channel), now if now is not None else chan.clock)


def pair(firmware, chan):
    """CONNECT, REGISTER, ADD, Mailbox: a gateway serving one mailbox on MC."""
    chan.send(GC, messages.connect_gateway(G))
    chan.send(GC, messages.register_gateway(G))
    chan.send(GC, messages.add_mailbox(G, MK))
    chan.send(GC, messages.register_mailbox(MC, MK))
    deliver(firmware, chan, GC)
    published(firmware)


def test_connect_and_register_are_answered_done_with_the_same_record(gw, chan):
    chan.send(GC, messages.connect_gateway(G))
    chan.send(GC, messages.register_gateway(G))

    assert deliver(gw, chan, GC) == 2

    assert published(gw, GC) == [
        [{"bn": f"{G}_", "n": "CONNECT", "u": "Done", "vb": True}],
        [{"bn": f"{G}_", "n": "REGISTER", "u": "Done", "vb": True}],
    ]
    assert gw.snapshot()["connected"] and gw.snapshot()["registered"]


def test_add_then_mailbox_registers_the_mailbox_and_its_channel_is_read_next(gw, chan):
    chan.send(GC, messages.connect_gateway(G))
    chan.send(GC, messages.add_mailbox(G, MK))
    deliver(gw, chan, GC)
    assert gw.snapshot()["pending_mailboxes"] == [MK]
    assert gw.channels() == [GC]

    chan.send(GC, messages.register_mailbox(MC, MK))
    deliver(gw, chan, GC)

    assert published(gw, GC)[-1] == [{"bn": f"{MC}_", "n": "Mailbox", "u": "Done", "vs": MK}]
    assert gw.channels() == [GC, MC]
    [box] = gw.snapshot()["mailboxes"]
    assert box == {
        "public_key": MK, "channel_id": MC, "pins": 0, "open": False, "state": "closed",
        "battery": 100, "wrong_attempts": 0, "pins_with_rules": 0, "locked_until": None,
        "waiting_for_second_pin": False, "safe": None,
    }
    assert gw.snapshot()["pending_mailboxes"] == []


def test_auth_adds_a_pin_and_sending_it_again_is_still_done(gw, chan):
    pair(gw, chan)
    chan.send(MC, messages.add_pin(G, 4821))
    chan.send(MC, messages.add_pin(G, 4821))

    deliver(gw, chan, MC)

    done = [{"bn": f"{G}_", "n": "AUTH", "u": "Done", "v": 4821}]
    assert published(gw, MC) == [done, done]
    assert gw.snapshot()["mailboxes"][0]["pins"] == 1


def test_auth_past_the_last_slot_fails_with_the_reason(chan):
    gw = make_firmware(pin_slots=2)
    pair(gw, chan)
    for pin in (1111, 2222, 3333):
        chan.send(MC, messages.add_pin(G, pin))

    deliver(gw, chan, MC)

    assert published(gw, MC)[-1] == [
        {"bn": f"{G}_", "n": "AUTH", "u": "Failed", "v": 3333},
        {"n": "REASON", "vs": "slots full"},
    ]
    assert gw.snapshot()["mailboxes"][0]["pins"] == 2


def test_unauth_removes_a_pin_and_an_absent_pin_is_done_too(gw, chan):
    pair(gw, chan)
    chan.send(MC, messages.add_pin(G, 4821))
    chan.send(MC, messages.remove_pin(G, 4821))
    chan.send(MC, messages.remove_pin(G, 9999))

    deliver(gw, chan, MC)

    assert [p[0]["u"] for p in published(gw, MC)] == ["Done", "Done", "Done"]
    assert gw.snapshot()["mailboxes"][0]["pins"] == 0


def test_a_pin_that_is_not_a_pin_is_refused(gw, chan):
    pair(gw, chan)
    chan.send(MC, [{"bn": f"{G}_", "n": "AUTH", "u": "PIN", "v": 12}])

    deliver(gw, chan, MC)

    assert published(gw, MC) == [[
        {"bn": f"{G}_", "n": "AUTH", "u": "Failed", "v": 12},
        {"n": "REASON", "vs": "invalid PIN"},
    ]]


def test_delete_forgets_the_mailbox_and_stops_reading_its_channel(gw, chan):
    pair(gw, chan)
    chan.send(GC, messages.remove_mailbox(G, MK))
    chan.send(GC, messages.remove_mailbox(G, MK))  # again: still Done

    deliver(gw, chan, GC)

    assert [p[0]["u"] for p in published(gw, GC)] == ["Done", "Done"]
    assert gw.snapshot()["mailboxes"] == []
    assert gw.channels() == [GC]


DEADLINE = 1_700_000_100


def test_unlock_read_by_its_deadline_answers_done_then_opens_and_closes_after_a_while(gw, chan):
    pair(gw, chan)
    chan.send(MC, messages.unlock(G, DEADLINE))
    deliver(gw, chan, MC, now=DEADLINE)  # the last second it may open

    assert published(gw, MC) == [
        [{"bn": f"{G}_", "n": "UNLOCK", "u": "Done", "v": DEADLINE}],
        [{"bn": f"{G}_", "n": "OPENED", "u": "Remote", "vb": True}],
    ]
    assert gw.snapshot()["mailboxes"][0]["state"] == "open"

    gw.tick(DEADLINE + 4.0)
    assert messages.closed(G) not in published(gw, MC)
    gw.tick(DEADLINE + 5.0)
    assert messages.closed(G) in published(gw, MC)
    assert gw.snapshot()["mailboxes"][0]["state"] == "closed"


def test_unlock_read_after_its_deadline_answers_failed_expired_and_never_opens(gw, chan):
    pair(gw, chan)
    chan.send(MC, messages.unlock(G, DEADLINE))
    deliver(gw, chan, MC, now=DEADLINE + 0.5)

    assert published(gw, MC) == [[
        {"bn": f"{G}_", "n": "UNLOCK", "u": "Failed", "v": DEADLINE},
        {"n": "REASON", "vs": "expired"},
    ]]
    assert gw.snapshot()["mailboxes"][0]["state"] == "closed"
    gw.tick(DEADLINE + 60.0)
    assert messages.closed(G) not in published(gw, MC)


def test_unlock_without_a_deadline_is_refused_and_never_opens(gw, chan):
    pair(gw, chan)
    chan.send(MC, [{"bn": f"{G}_", "n": "UNLOCK", "u": "Requested", "vb": True}])  # the old shape
    deliver(gw, chan, MC, now=DEADLINE)

    assert published(gw, MC) == [[
        {"bn": f"{G}_", "n": "UNLOCK", "u": "Failed", "vb": True},
        {"n": "REASON", "vs": "invalid deadline"},
    ]]
    assert gw.snapshot()["mailboxes"][0]["state"] == "closed"


def test_destruct_with_another_key_fails_and_keeps_everything(gw, chan):
    pair(gw, chan)
    chan.send(GC, messages.remove_gateway(GC, MK))

    deliver(gw, chan, GC)

    assert published(gw, GC) == [[
        {"bn": f"{GC}_", "n": "DESTRUCT", "u": "Failed", "vs": MK},
        {"n": "REASON", "vs": "key mismatch"},
    ]]
    assert gw.snapshot()["connected"] and len(gw.snapshot()["mailboxes"]) == 1


def test_destruct_with_its_own_key_wipes_it_but_never_replays_old_commands(gw, chan):
    pair(gw, chan)
    chan.send(GC, messages.remove_gateway(GC, GK))

    deliver(gw, chan, GC)

    assert published(gw, GC) == [[{"bn": f"{GC}_", "n": "DESTRUCT", "u": "Done", "vs": GK}]]
    snap = gw.snapshot()
    assert (snap["connected"], snap["registered"], snap["mailboxes"], snap["paired_with"]) == (
        False, False, [], None,
    )
    # Reading the whole channel again applies nothing: the cursor survived the wipe.
    assert deliver(gw, chan, GC) == 0


def test_a_message_is_applied_once_however_often_the_reader_returns_it(gw, chan):
    pair(gw, chan)
    # Two commands stored at the very same time, read, then read again with a third.
    chan.send(MC, messages.add_pin(G, 1111), at=500.0)
    chan.send(MC, messages.add_pin(G, 2222), at=500.0)
    assert deliver(gw, chan, MC) == 2
    chan.send(MC, messages.add_pin(G, 3333), at=500.0)
    chan.send(MC, messages.remove_pin(G, 1111), at=501.0)

    assert deliver(gw, chan, MC) == 2

    answers = [(p[0]["n"], p[0]["v"]) for p in published(gw, MC) if p[0]["n"] in ("AUTH", "UNAUTH")]
    assert answers == [("AUTH", 1111), ("AUTH", 2222), ("AUTH", 3333), ("UNAUTH", 1111)]
    assert gw.read_filters(MC)["from"] == 501.0 - READ_LOOKBACK_SECONDS


def test_a_message_the_reader_shows_late_is_still_applied_once(gw, chan):
    pair(gw, chan)
    chan.send(MC, messages.add_pin(G, 2222), at=600.0)
    deliver(gw, chan, MC)
    # Stamped before the one already applied, but written to the reader only now.
    chan.send(MC, messages.add_pin(G, 1111), at=598.0)

    assert deliver(gw, chan, MC) == 1
    assert deliver(gw, chan, MC) == 0
    assert gw.snapshot()["mailboxes"][0]["pins"] == 2


def test_state_survives_a_trip_through_json(gw, chan):
    pair(gw, chan)
    chan.send(MC, messages.add_pin(G, 4821))
    deliver(gw, chan, MC)
    published(gw)

    again = make_firmware(json.loads(json.dumps(gw.state)))

    assert deliver(again, chan, GC) == 0 and deliver(again, chan, MC) == 0
    assert again.snapshot() == gw.snapshot()
    assert again.keypad(MK, "4821", 1.0) == "opened"


def test_its_own_answers_are_never_taken_for_commands(gw, chan):
    chan.send(GC, messages.connect_gateway(G))
    deliver(gw, chan, GC)
    for item in gw.state["outbox"]:
        chan.send(item["channel"], item["pack"], publisher=G)
    published(gw)

    assert deliver(gw, chan, GC) == 0
    assert published(gw) == []


def test_only_the_thing_that_sent_connect_is_obeyed(gw, chan):
    chan.send(GC, messages.add_mailbox(G, MK), publisher=STRANGER)  # before pairing: ignored
    chan.send(GC, messages.connect_gateway(G))
    chan.send(GC, messages.register_gateway(G), publisher=STRANGER)

    assert deliver(gw, chan, GC) == 1

    assert gw.snapshot()["paired_with"] == PORTAL
    assert gw.snapshot()["registered"] is False
    assert gw.snapshot()["pending_mailboxes"] == []
    assert gw.read_filters(GC)["publisher"] == PORTAL


def test_a_portal_thing_named_in_the_settings_is_the_only_one_obeyed(chan):
    gw = make_firmware(controller=PORTAL)
    chan.send(GC, messages.connect_gateway(G), publisher=STRANGER)

    assert deliver(gw, chan, GC) == 0
    assert gw.snapshot()["connected"] is False


def test_commands_for_another_gateway_or_channel_are_refused_with_a_reason(gw, chan):
    pair(gw, chan)
    chan.send(GC, messages.register_gateway("someone-else"))
    chan.send(GC, messages.add_pin(G, 4821))
    chan.send(MC, messages.connect_gateway(G))

    deliver(gw, chan, GC)
    deliver(gw, chan, MC)

    reasons = [p[1]["vs"] for p in published(gw)]
    assert reasons == ["not addressed to this gateway", "wrong channel", "wrong channel"]


def test_keypad_opens_with_a_known_pin_and_reports_the_pin(gw, chan):
    pair(gw, chan)
    chan.send(MC, messages.add_pin(G, 4821))
    deliver(gw, chan, MC)
    published(gw)

    assert gw.keypad(MK, "4821", 10.0) == "opened"

    assert published(gw, MC) == [[{"bn": f"{G}_", "n": "OPENED", "u": "PIN", "v": 4821}]]
    assert gw.snapshot()["mailboxes"][0]["state"] == "open"


def test_keypad_rejects_wrong_digits_counting_attempts_without_sending_them(gw, chan):
    pair(gw, chan)
    chan.send(MC, messages.add_pin(G, 4821))
    deliver(gw, chan, MC)
    published(gw)

    results = [gw.keypad(MK, digits, 10.0) for digits in ("1234", "04821", "4821", "9999")]

    assert results == ["rejected", "rejected", "opened", "rejected"]
    packs = published(gw, MC)
    assert [p[0]["n"] for p in packs] == ["REJECTED", "REJECTED", "OPENED", "REJECTED"]
    assert [p[0]["v"] for p in packs if p[0]["n"] == "REJECTED"] == [1, 2, 1]
    assert "1234" not in without_ids(json.dumps(packs)) and "9999" not in without_ids(json.dumps(packs))


def test_keypad_of_a_mailbox_it_does_not_serve_raises(gw):
    with pytest.raises(UnknownMailbox):
        gw.keypad(MK, "4821", 1.0)


def test_battery_is_reported_when_a_mailbox_registers_and_now_and_then(gw, chan):
    pair(gw, chan)

    gw.tick(1000.0)
    assert published(gw, MC) == [messages.battery(G, 100)]
    gw.tick(1000.0 + 3599)
    assert published(gw, MC) == []
    gw.tick(1000.0 + 3600)
    assert published(gw, MC) == [messages.battery(G, 100)]


def test_heartbeat_is_due_every_interval():
    gw = make_firmware(heartbeat_seconds=30.0)
    assert gw.heartbeat_due(100.0)
    gw.heartbeat_sent(100.0)
    assert not gw.heartbeat_due(129.0)
    assert gw.heartbeat_due(130.0)
