"""The virtual gateway around its firmware: state file, restarts, paging, StreamIoT failures.

StreamIoT here is a small in-memory fake with the reader's semantics (newest first,
`from` inclusive, `publisher` filter, `total`); the emulator-backed test is in
tests/integration/test_virtual_gateway.py.
"""
import json
import os
import stat

import pytest

from portal.crypto import generate_keypair
from portal.devices.virtual_gateway import InvalidSettings, VirtualGateway, parse_settings
from portal.streamiot import messages
from portal.streamiot.errors import ServerError, Unavailable

G, GC, MC, PORTAL = "gw-thing", "gw-channel", "mb-channel", "portal-thing"
KEYS = {"gw-key": G, "portal-key": PORTAL}
GK = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq8M="
MK = "MkMkMkMkMkMkMkMkMkMkMkMkMkMkMkMkMkMkMkMkMkM="


class Clock:
    def __init__(self, now=1_700_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


class FakeStreamIoT:
    """Publish and read as things, like the HTTP adapter and the reader do."""

    def __init__(self, clock):
        self.clock = clock
        self.stored = {}  # channel -> messages, oldest first
        self.reads_down = False
        self.refused_channels = set()
        self.reads = []

    def publish(self, channel_id, thing_key, pack):
        if self.reads_down:
            raise Unavailable("StreamIoT could not be reached")
        if channel_id in self.refused_channels:
            raise ServerError("StreamIoT failed (500 with an empty body)", status=500)
        for record in messages.parse_pack(pack, now=self.clock()):
            self.stored.setdefault(channel_id, []).append(
                {"channel": channel_id, "publisher": KEYS[thing_key], "protocol": "http", **record}
            )

    def read_messages(self, channel_id, *, thing_key=None, token=None, offset=0, limit=100, **filters):
        if self.reads_down:
            raise Unavailable("StreamIoT could not be reached")
        self.reads.append((channel_id, dict(filters)))
        found = [
            msg for msg in reversed(self.stored.get(channel_id, []))
            if msg["time"] >= filters.get("from", 0)
            and filters.get("publisher") in (None, msg["publisher"])
        ]
        page = {"offset": offset, "limit": limit, "total": len(found), "messages": found[offset:offset + limit]}
        return page

    def by(self, channel_id, publisher):
        return [msg for msg in self.stored.get(channel_id, []) if msg["publisher"] == publisher]


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def streamiot(clock):
    return FakeStreamIoT(clock)


SETTINGS = {
    "streamiot_url": "http://streamiot.example", "streamiot_reader_url": "http://reader.example",
    "thing_id": G, "thing_key": "gw-key", "channel_id": GC, "public_key": GK,
}


@pytest.fixture
def make_gateway(tmp_path, streamiot, clock):
    def make(**options):
        options.setdefault("open_seconds", 5.0)
        return VirtualGateway(SETTINGS, tmp_path / "gw.json", streamiot, clock=clock, **options)

    return make


def portal_sends(streamiot, clock, channel, pack):
    clock.now += 1.0
    streamiot.publish(channel, "portal-key", pack)


def answers(streamiot, channel):
    """(name, unit, value) of what the gateway published, minus heartbeats and batteries."""
    return [
        (msg["name"].rpartition("_")[2], msg.get("unit"), messages.message_value(msg))
        for msg in streamiot.by(channel, G)
        if not msg["name"].endswith(("_HEARTBEAT", "_BATTERY", "_REASON"))
    ]


def set_up_mailbox(streamiot, clock, gateway):
    for pack in (
        messages.connect_gateway(G), messages.register_gateway(G),
        messages.add_mailbox(G, MK), messages.register_mailbox(MC, MK),
    ):
        portal_sends(streamiot, clock, GC, pack)
    gateway.step()


def test_a_restarted_gateway_applies_nothing_twice(make_gateway, streamiot, clock):
    set_up_mailbox(streamiot, clock, make_gateway())
    portal_sends(streamiot, clock, MC, messages.add_pin(G, 4821))
    make_gateway().step()
    before = (answers(streamiot, GC), answers(streamiot, MC))

    restarted = make_gateway()
    clock.now += 1.0
    assert restarted.step() == 0

    assert (answers(streamiot, GC), answers(streamiot, MC)) == before
    assert restarted.snapshot()["mailboxes"][0]["pins"] == 1
    assert restarted.keypad(MK, "4821") == "opened"


def test_it_reads_only_what_is_new_and_only_from_the_portal_once_paired(make_gateway, streamiot, clock):
    gateway = make_gateway()
    set_up_mailbox(streamiot, clock, gateway)
    streamiot.reads.clear()

    gateway.step()

    reads = dict(streamiot.reads)
    assert reads[GC]["publisher"] == PORTAL and reads[GC]["from"] > 0
    assert reads[MC]["publisher"] == PORTAL


def test_a_mailbox_channel_is_read_in_the_step_that_registers_it(make_gateway, streamiot, clock):
    portal_sends(streamiot, clock, GC, messages.connect_gateway(G))
    portal_sends(streamiot, clock, GC, messages.register_mailbox(MC, MK))
    portal_sends(streamiot, clock, MC, messages.add_pin(G, 4821))

    make_gateway().step()

    assert answers(streamiot, MC) == [("AUTH", "Done", 4821)]


def test_the_reader_being_down_is_survived_and_commands_apply_later(make_gateway, streamiot, clock):
    gateway = make_gateway()
    portal_sends(streamiot, clock, GC, messages.connect_gateway(G))
    streamiot.reads_down = True

    assert gateway.step() == 0
    assert gateway.snapshot()["connected"] is False

    streamiot.reads_down = False
    assert gateway.step() == 1
    assert answers(streamiot, GC) == [("CONNECT", "Done", True)]


def test_a_refused_answer_stays_queued_and_goes_out_later_in_order(make_gateway, streamiot, clock):
    gateway = make_gateway()
    set_up_mailbox(streamiot, clock, gateway)
    portal_sends(streamiot, clock, MC, messages.add_pin(G, 1111))
    portal_sends(streamiot, clock, MC, messages.add_pin(G, 2222))
    streamiot.refused_channels.add(MC)

    gateway.step()
    assert answers(streamiot, MC) == []
    assert gateway.snapshot()["unsent"] >= 2
    assert gateway.snapshot()["mailboxes"][0]["pins"] == 2  # applied, only the answer waits

    streamiot.refused_channels.clear()
    clock.now += 1.0
    gateway.step()

    assert answers(streamiot, MC) == [("AUTH", "Done", 1111), ("AUTH", "Done", 2222)]
    assert gateway.snapshot()["unsent"] == 0


def test_a_publication_refused_for_long_is_given_up(make_gateway, streamiot, clock):
    gateway = make_gateway()
    set_up_mailbox(streamiot, clock, gateway)
    streamiot.refused_channels.add(MC)
    for _ in range(12):
        clock.now += 60.0
        gateway.step()

    assert all(item["channel"] != MC for item in json.loads(gateway.state_file.path.read_text())["outbox"])


def test_many_messages_are_read_across_pages_oldest_first(make_gateway, streamiot, clock):
    gateway = make_gateway(pin_slots=1000)
    set_up_mailbox(streamiot, clock, gateway)
    pins = list(range(1000, 1700))
    for pin in pins:
        portal_sends(streamiot, clock, MC, messages.add_pin(G, pin))

    assert gateway.step() == len(pins)

    assert [value for _, _, value in answers(streamiot, MC)] == pins
    assert gateway.snapshot()["mailboxes"][0]["pins"] == len(pins)


def test_heartbeats_go_on_the_gateway_channel_with_the_uptime(make_gateway, streamiot, clock):
    gateway = make_gateway(heartbeat_seconds=30.0)
    gateway.step()
    clock.now += 10
    gateway.step()
    clock.now += 25
    gateway.step()

    beats = [m for m in streamiot.by(GC, G) if m["name"] == f"{G}_HEARTBEAT"]
    assert [(b["unit"], b["value"]) for b in beats] == [("s", 0), ("s", 35)]


def test_an_unlock_read_after_its_deadline_stays_shut(make_gateway, streamiot, clock):
    gateway = make_gateway(open_seconds=0)
    set_up_mailbox(streamiot, clock, gateway)
    deadline = int(clock.now) + 60
    portal_sends(streamiot, clock, MC, messages.unlock(G, deadline))
    clock.now = deadline + 1.0  # the gateway was offline until after the deadline

    gateway.step()
    assert answers(streamiot, MC) == [("UNLOCK", "Failed", deadline)]
    assert [m["string_value"] for m in streamiot.by(MC, G) if m["name"].endswith("_REASON")] == ["expired"]
    assert gateway.snapshot()["mailboxes"][0]["state"] == "closed"


def test_unlock_opens_and_the_box_closes_at_a_later_step(make_gateway, streamiot, clock):
    gateway = make_gateway(open_seconds=0)
    set_up_mailbox(streamiot, clock, gateway)
    deadline = int(clock.now) + 60
    portal_sends(streamiot, clock, MC, messages.unlock(G, deadline))

    gateway.step()
    assert answers(streamiot, MC) == [("UNLOCK", "Done", deadline), ("OPENED", "Remote", True)]
    assert gateway.snapshot()["mailboxes"][0]["state"] == "open"

    gateway.step()
    assert answers(streamiot, MC)[-1] == ("CLOSED", None, True)
    assert gateway.snapshot()["mailboxes"][0]["state"] == "closed"


def test_a_key_press_in_another_process_is_seen_by_the_running_gateway(make_gateway, streamiot, clock):
    running = make_gateway()
    set_up_mailbox(streamiot, clock, running)

    assert make_gateway().keypad(MK, "1234") == "rejected"
    assert make_gateway().keypad(MK, "5678") == "rejected"

    assert running.snapshot()["mailboxes"][0]["wrong_attempts"] == 2
    assert [v for n, _, v in answers(streamiot, MC) if n == "REJECTED"] == [1, 2]


def test_the_state_file_is_owner_only_and_no_temporary_file_is_left(make_gateway, streamiot, clock, tmp_path):
    set_up_mailbox(streamiot, clock, make_gateway())

    path = tmp_path / "gw.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gw.json", "gw.json.lock"]
    assert json.loads(path.read_text())["thing_id"] == G


def test_an_unreadable_state_file_is_set_aside_and_the_channels_replayed(make_gateway, streamiot, clock, tmp_path):
    set_up_mailbox(streamiot, clock, make_gateway())
    (tmp_path / "gw.json").write_text("{ not json")

    gateway = make_gateway()
    gateway.step()

    assert gateway.snapshot()["connected"] and len(gateway.snapshot()["mailboxes"]) == 1
    assert any(p.name.startswith("gw.json.corrupt-") for p in tmp_path.iterdir())


def test_settings_with_only_a_private_key_give_the_public_key():
    public, private = generate_keypair()
    settings = {k: v for k, v in SETTINGS.items() if k != "public_key"} | {"private_key": private}

    assert parse_settings(settings)["public_key"] == public


@pytest.mark.parametrize("missing", ["thing_id", "thing_key", "channel_id", "public_key"])
def test_settings_without_what_a_gateway_needs_are_refused(missing):
    with pytest.raises(InvalidSettings, match=missing):
        parse_settings({k: v for k, v in SETTINGS.items() if k != missing})
