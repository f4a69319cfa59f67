"""The rules a sealed box enforces itself, with its own clock and counters (docs/device-protocol.md,
"Rules the box enforces" and "Safe mode"): windows, from-until, uses, roles, lockout, dual
control; and a seed box, which ignores them all. The clock is whatever `now` the test says."""
import json
import zoneinfo
from datetime import datetime

import pytest

from portal import crypto
from portal.devices import firmware as fw
from portal.devices.virtual_gateway import VirtualGateway
from portal.streamiot import messages as m
from tests.unit.test_virtual_gateway import GC, MC, MK, PORTAL, Clock, FakeStreamIoT
from tests.unit.test_virtual_gateway_firmware import Channels

G = "gw-thing"  # the thing FakeStreamIoT knows by the key "gw-key" (as PORTAL by "portal-key")
# The key pairs of the protocol document's test vectors.
GW_PRIVATE = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="
GW_PUBLIC = crypto.public_from_private(GW_PRIVATE)
PORTAL_PRIVATE = "ISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0A="
PORTAL_PUBLIC = crypto.public_from_private(PORTAL_PRIVATE)
COMMAND_KEY = crypto.link_key(PORTAL_PRIVATE, GW_PUBLIC, "command")
REPORT_KEY = crypto.link_key(PORTAL_PRIVATE, GW_PUBLIC, "report")

BERLIN = "CET-1CEST,M3.5.0,M10.5.0/3"  # timezones.posix_rule("Europe/Berlin")
WORKDAYS = "1111100 08:00-18:00"


def berlin(*fields) -> float:
    """Epoch seconds of a wall-clock time in Berlin."""
    return datetime(*fields, tzinfo=zoneinfo.ZoneInfo("Europe/Berlin")).timestamp()


class Portal:
    """The household's portal: each command signed with the next counter of its channel
    (sealed), or as the seed has it; `post(channel, pack)` puts it where the box reads."""

    def __init__(self, post, protocol=m.SEALED):
        self.post, self.protocol, self.counters = post, protocol, {}

    def send(self, channel, pack):
        if self.protocol == m.SEALED:
            self.counters[channel] = self.counters.get(channel, 0) + 1
            pack = m.signed(pack, channel, self.counters[channel], COMMAND_KEY)
        self.post(channel, pack)

    def pair(self):
        for pack in (m.connect_gateway(G), m.register_gateway(G), m.add_mailbox(G, MK), m.register_mailbox(MC, MK)):
            self.send(GC, pack)

    def auth(self, pin, ref, rules=None):
        if self.protocol == m.SEALED:
            self.send(MC, m.add_pin_sealed_with_rules(G, m.sealed_pin(GW_PUBLIC, pin, ref), rules))
        else:
            self.send(MC, m.add_pin_with_rules(G, pin, rules))

    def unauth(self, pin, ref):
        self.send(MC, m.remove_pin_sealed(G, m.sealed_pin(GW_PUBLIC, pin, ref)))

    def safe(self, version=1, attempts=5, lockouts=(60, 300, 900), dual_seconds=0):
        self.send(MC, m.safe_settings(G, version, attempts=attempts, lockouts=lockouts, dual_seconds=dual_seconds))


class Box:
    """A gateway's firmware serving one box on MC, the portal feeding it, the reader between."""

    def __init__(self, protocol=m.SEALED):
        self.chan = Channels()
        self.portal = Portal(lambda channel, pack: self.chan.send(channel, pack, publisher=PORTAL), protocol)
        self.firmware = fw.Firmware(
            fw.empty_state(G), thing_id=G, channel_id=GC, public_key=GW_PUBLIC, controller=PORTAL,
            protocol=protocol, private_key=GW_PRIVATE, portal_public_key=PORTAL_PUBLIC)
        self.portal.pair()
        self.read()
        self.events()

    def read(self, now=None):
        for channel in (GC, MC):
            self.firmware.receive(channel, self.chan.read(channel), now or self.chan.clock)

    def command(self, send, *args, **kwargs):
        """Send a command, let the box read it, return the box's answer (without CTR and MAC)."""
        send(*args, **kwargs)
        self.read()
        [answer] = self.events()
        return answer

    def press(self, digits, now):
        return self.firmware.keypad(MK, digits, now)

    def events(self):
        """What the box published since last asked: each pack checked and shown without CTR and MAC."""
        outbox = self.firmware.state["outbox"]
        packs = [(i["channel"], i["pack"]) for i in outbox]
        outbox.clear()
        if self.firmware.protocol != m.SEALED:
            return [pack for _channel, pack in packs]
        for channel, pack in packs:
            assert m.verify(channel, m.parse_pack(pack), REPORT_KEY) is not None
        return [pack[:-2] for _channel, pack in packs]

    def box(self):
        [box] = self.firmware.snapshot()["mailboxes"]
        return box


@pytest.fixture
def box():
    return Box()


def refused(ref, reason):
    return m.refused(G, ref, reason)


def test_rules_and_safe_settings_read_back_as_they_were_built():
    rules = m.BoxRules(starts=1_767_225_600, ends=1_767_312_000, zone=BERLIN,
                       windows=("0000011 10:00-12:00", WORKDAYS), uses=3, role=m.ROLE_COURIER)
    stored = m.parse_pack(m.add_pin_with_rules(G, 4821, rules), now=1_767_225_600.0)  # numbers as floats
    assert m.read_rules(reversed(stored)) == rules._replace(windows=tuple(sorted(rules.windows)))
    assert m.read_rules(m.parse_pack(m.add_pin(G, 4821))) is None
    safe = m.parse_pack(m.safe_settings(G, 2, attempts=5, lockouts=[60, 300], dual_seconds=30), now=1.0)
    assert m.read_safe_settings(safe) == m.SafeSettings(attempts=5, lockouts=(60, 300), dual_seconds=30)
    assert m.settings_version(2.0) == 2 and m.settings_version(2.5) is None


def test_a_pin_with_rules_is_confirmed_like_any_other(box):
    rules = m.BoxRules(zone=BERLIN, windows=(WORKDAYS, "0000011 10:00-12:00"), uses=3)
    assert box.command(box.portal.auth, 4821, "cleaner1", rules) == m.reply(
        {"bn": f"{G}_", "n": "AUTH", "u": "PIN", "vs": "cleaner1"}, True)
    assert box.box()["pins"] == box.box()["pins_with_rules"] == 1


def test_a_window_pin_opens_inside_its_window_and_is_refused_outside_with_the_reason(box):
    box.portal.auth(4821, "cleaner1", m.BoxRules(zone=BERLIN, windows=(WORKDAYS,)))
    box.read()
    box.events()

    inside = [berlin(2026, 7, 1, 8, 0), berlin(2026, 7, 3, 17, 59, 59), berlin(2026, 1, 7, 8, 30)]
    outside = [berlin(2026, 7, 1, 7, 59, 59), berlin(2026, 7, 1, 18, 0), berlin(2026, 7, 4, 10, 0),
               berlin(2026, 1, 7, 7, 30)]  # 08:30 UTC in winter is 07:30 in Berlin

    for now in inside:
        assert box.press("4821", now) == "opened"
        assert box.events() == [m.opened_with(G, "cleaner1")]
    for now in outside:
        assert box.press("4821", now) == "refused: outside hours" == fw.refused(m.OUTSIDE_HOURS)
        assert box.events() == [refused("cleaner1", "outside hours")]
    assert box.box()["wrong_attempts"] == 0  # a PIN it holds is not a wrong PIN


def test_a_window_follows_the_clock_change(box):
    box.portal.auth(4821, "night123", m.BoxRules(zone=BERLIN, windows=("0000001 02:30-03:30",)))
    box.read()
    # 29 March 2026: at 02:00 CET the clocks go to 03:00 CEST, so only 03:00-03:30 exists.
    assert box.press("4821", berlin(2026, 3, 29, 3, 15)) == "opened"
    assert box.press("4821", berlin(2026, 3, 29, 3, 30)) == "refused: outside hours"
    assert box.press("4821", berlin(2026, 3, 29, 1, 59)) == "refused: outside hours"


def test_from_until_refuses_before_as_not_yet_and_after_as_expired(box):
    starts, ends = 1_767_225_600, 1_767_312_000
    box.portal.auth(4821, "guest123", m.BoxRules(starts=starts, ends=ends))
    box.read()
    box.events()

    assert box.press("4821", starts - 1) == "refused: not yet"
    assert box.press("4821", starts) == "opened"
    assert box.press("4821", ends - 0.5) == "opened"
    assert box.press("4821", ends) == "refused: expired"
    assert box.events() == [refused("guest123", m.NOT_YET), m.opened_with(G, "guest123"),
                            m.opened_with(G, "guest123"), refused("guest123", m.ENDED)]


def test_a_three_use_pin_opens_three_times_telling_what_is_left_then_is_used_up(box):
    box.portal.auth(4821, "three123", m.BoxRules(uses=3))
    box.read()
    box.events()

    assert [box.press("4821", 1_767_225_600 + i) for i in range(4)] == ["opened"] * 3 + ["refused: used up"]
    assert box.events() == [m.opened_with(G, "three123", left=2), m.opened_with(G, "three123", left=1),
                            m.opened_with(G, "three123", left=0), refused("three123", m.USED_UP)]


def test_a_one_time_courier_code_opens_once(box):
    box.portal.auth(73910264, "parcel01", m.BoxRules(ends=1_767_830_400, uses=1, role=m.ROLE_COURIER))
    box.read()
    box.events()

    assert box.press("73910264", 1_767_225_600) == "opened"
    assert box.press("73910264", 1_767_225_700) == "refused: used up"
    assert box.events() == [m.opened_with(G, "parcel01", left=0), refused("parcel01", m.USED_UP)]


def test_a_new_auth_replaces_the_rules_and_keeps_the_count_while_uses_is_unchanged(box):
    now = 1_767_225_600
    box.portal.auth(4821, "three123", m.BoxRules(uses=3))
    box.read()
    box.press("4821", now)
    box.press("4821", now)

    box.portal.auth(4821, "three123", m.BoxRules(uses=3, ends=now + 3600))  # same USES: 1 left
    box.read()
    assert [box.press("4821", now), box.press("4821", now)] == ["opened", "refused: used up"]

    box.portal.auth(4821, "three123", m.BoxRules(uses=2))  # other USES: counted afresh
    box.read()
    assert [box.press("4821", now + 7200) for _ in range(3)] == ["opened", "opened", "refused: used up"]

    box.portal.auth(4821, "three123")  # no rules: it always works
    box.read()
    assert box.press("4821", now) == "opened"
    assert box.box()["pins_with_rules"] == 0


def test_unauth_forgets_the_rules_and_the_count(box):
    box.portal.auth(4821, "once1234", m.BoxRules(uses=1))
    box.read()
    box.press("4821", 1_767_225_600)
    box.portal.unauth(4821, "once1234")
    box.read()
    assert box.box()["pins"] == box.box()["pins_with_rules"] == 0
    assert box.firmware.state["mailboxes"][MK]["used"] == {}

    box.portal.auth(4821, "once1234", m.BoxRules(uses=1))
    box.read()
    assert box.press("4821", 1_767_225_600) == "opened"


@pytest.mark.parametrize("bad", [
    [{"n": "ZONE", "vs": "Europe/Berlin"}, {"n": "WINDOW", "vs": WORKDAYS}],  # not a POSIX rule
    [{"n": "WINDOW", "vs": WORKDAYS}],  # windows without a zone
    [{"n": "ZONE", "vs": BERLIN}, {"n": "WINDOW", "vs": "1111100 18:00-08:00"}],
    [{"n": "USES", "v": 0}],
    [{"n": "ROLE", "vs": "boss"}],
    [{"n": "FROM", "u": "s", "v": 1_767_312_000}, {"n": "UNTIL", "u": "s", "v": 1_767_225_600}],
])
def test_rules_a_box_cannot_keep_are_refused_and_the_pin_is_not_added(box, bad):
    pack = m.add_pin_sealed(G, m.sealed_pin(GW_PUBLIC, 4821, "k3Xq9TzB")) + bad
    assert box.command(box.portal.send, MC, pack) == m.reply(
        {"bn": f"{G}_", "n": "AUTH", "u": "PIN", "vs": "k3Xq9TzB"}, False, fw.INVALID_RULES)
    assert box.box()["pins"] == 0


# --- safe mode ---------------------------------------------------------------------------------


def test_safe_settings_are_answered_with_their_version_and_bad_ones_fail(box):
    assert box.command(box.portal.safe, 3, attempts=5, lockouts=(60, 300, 900), dual_seconds=60) == [
        {"bn": f"{G}_", "n": "SAFE", "u": "Done", "v": 3}]
    assert box.box()["safe"] == {"version": 3, "attempts": 5, "lockouts": [60, 300, 900], "dual_seconds": 60}

    without_dual = m.safe_settings(G, 4, attempts=5, lockouts=[60], dual_seconds=0)[:-1]
    assert box.command(box.portal.send, MC, without_dual) == m.reply(without_dual[0], False, fw.INVALID_SAFE)
    too_long = [*without_dual[:2], {"n": "LOCKOUTS", "vs": "60,100000"}, {"n": "DUAL", "u": "s", "v": 0}]
    assert box.command(box.portal.send, MC, too_long) == m.reply(too_long[0], False, fw.INVALID_SAFE)
    assert box.box()["safe"]["version"] == 3


def test_wrong_pins_lock_the_keypad_longer_each_time_until_a_pin_opens_it(box):
    box.portal.auth(4821, "home1234")
    box.portal.safe(attempts=5, lockouts=(60, 300, 900))
    box.read()
    box.events()
    now = 1_767_225_600

    def five_wrong(start):
        return [box.press("9999", start + i) for i in range(5)]

    assert five_wrong(now) == ["rejected"] * 5
    assert box.events() == [m.rejected(G, n) for n in range(1, 6)] + [m.locked_out(G, now + 4 + 60)]
    assert box.box()["locked_until"] == now + 64

    # Locked out: nothing is looked at, not even the right PIN.
    assert box.press("4821", now + 63) == fw.LOCKED_OUT == "rejected: locked out"
    assert box.events() == [m.rejected_locked_out(G, 6)]

    # The lockout ends by itself; five more wrong ones lock it for the next step, and so on,
    # the last step repeating.
    steps = []
    for _ in range(3):
        now = box.box()["locked_until"]
        box.firmware.tick(now)
        assert box.box()["locked_until"] is None
        five_wrong(now)
        steps.append(box.box()["locked_until"] - (now + 4))
    assert steps == [300, 900, 900]
    box.events()

    # A PIN that opens the box resets the count and the escalation.
    now = box.box()["locked_until"]
    assert box.press("4821", now) == "opened"
    assert box.events()[0] == m.opened_with(G, "home1234")
    five_wrong(now + 10)
    assert box.events()[-1] == m.locked_out(G, now + 14 + 60)


def test_a_refused_pin_neither_counts_as_wrong_nor_resets_the_count(box):
    box.portal.auth(4821, "cleaner1", m.BoxRules(zone=BERLIN, windows=(WORKDAYS,)))
    box.portal.safe(attempts=3, lockouts=(60,))
    box.read()
    saturday = berlin(2026, 7, 4, 10, 0)
    assert [box.press(d, saturday) for d in ("1111", "2222", "4821", "3333")] == [
        "rejected", "rejected", "refused: outside hours", "rejected"]
    assert box.box()["locked_until"] == saturday + 60


def test_attempts_zero_never_locks_out(box):
    box.portal.safe(attempts=0, lockouts=(60,))
    box.read()
    assert [box.press("9999", 1_767_225_600) for _ in range(20)] == ["rejected"] * 20
    assert box.box()["locked_until"] is None


def test_the_duress_pin_opens_and_raises_duress_even_under_dual_control(box):
    box.portal.auth(5927, "duress01", m.BoxRules(role=m.ROLE_DURESS))
    box.portal.safe(attempts=5, lockouts=(60,), dual_seconds=60)
    box.read()
    box.events()

    assert box.press("5927", 1_767_225_600) == "opened"
    assert box.events() == [m.opened_with(G, "duress01", duress=True)]
    assert m.opened_with(G, "duress01", duress=True)[-1] == {"n": "DURESS", "vb": True}


def test_dual_control_needs_two_different_pins_within_the_time(box):
    box.portal.auth(4821, "alice123")
    box.portal.auth(7305, "bob12345")
    box.portal.safe(attempts=5, lockouts=(60,), dual_seconds=60)
    box.read()
    box.events()
    now = 1_767_225_600

    assert box.press("4821", now) == fw.FIRST_OF_TWO
    assert box.press("4821", now + 10) == fw.FIRST_OF_TWO  # the same PIN twice does not count
    assert box.press("7305", now + 70) == "opened"  # within 60 s of the last first
    assert box.events() == [m.first_of_two(G, "alice123"), m.first_of_two(G, "alice123"),
                            m.opened_with(G, "bob12345", second="alice123")]
    assert box.box()["waiting_for_second_pin"] is False

    # Too late: the first is forgotten, and the second is a first in its turn.
    assert box.press("7305", now + 100) == fw.FIRST_OF_TWO
    assert box.press("4821", now + 161) == fw.FIRST_OF_TWO
    assert box.events() == [m.first_of_two(G, "bob12345"), m.first_of_two(G, "alice123")]
    box.firmware.tick(now + 222)
    assert box.box()["waiting_for_second_pin"] is False


def test_dual_control_and_uses_count_both_pins(box):
    box.portal.auth(4821, "alice123", m.BoxRules(uses=2))
    box.portal.auth(7305, "bob12345", m.BoxRules(uses=5))
    box.portal.safe(attempts=5, lockouts=(60,), dual_seconds=60)
    box.read()
    box.events()
    now = 1_767_225_600
    box.press("4821", now)
    box.press("7305", now + 1)
    assert box.events()[-1] == m.opened_with(G, "bob12345", left=4, second="alice123")
    assert box.firmware.state["mailboxes"][MK]["used"] == {"4821": 1, "7305": 1}


def test_remote_unlock_is_not_affected_by_dual_control_or_a_lockout(box):
    box.portal.safe(attempts=1, lockouts=(600,), dual_seconds=60)
    box.read()
    box.press("9999", box.chan.clock)
    assert box.box()["locked_until"] is not None
    box.events()

    deadline = int(box.chan.clock) + 60
    box.portal.send(MC, m.unlock(G, deadline))
    box.read()
    assert box.events() == [m.reply(m.unlock(G, deadline)[0], True), m.opened_remote(G)]


# --- state --------------------------------------------------------------------------------------


def test_rules_and_safe_mode_survive_a_restart(box):
    box.portal.auth(4821, "three123", m.BoxRules(uses=3, zone=BERLIN, windows=(WORKDAYS,)))
    box.portal.safe(attempts=2, lockouts=(60,))
    box.read()
    inside = berlin(2026, 7, 1, 9, 0)
    box.press("4821", inside)
    box.press("1111", inside)
    box.press("1111", inside)

    again = fw.Firmware(json.loads(json.dumps(box.firmware.state)), thing_id=G, channel_id=GC,
                        public_key=GW_PUBLIC, controller=PORTAL, protocol=m.SEALED, private_key=GW_PRIVATE,
                        portal_public_key=PORTAL_PUBLIC)

    assert again.keypad(MK, "4821", inside + 30) == fw.LOCKED_OUT
    assert [again.keypad(MK, "4821", inside + 60 + i) for i in range(3)] == ["opened", "opened", "refused: used up"]


def test_a_version_1_state_loads_with_no_rules_and_no_safe_mode(box):
    state = box.firmware.state
    for key in fw._BOX_RULE_STATE:
        del state["mailboxes"][MK][key]
    state["mailboxes"][MK]["pins"] = [4821]
    state["version"] = 1

    loaded = fw.Firmware(state, thing_id=G, channel_id=GC, public_key=GW_PUBLIC, protocol=m.SEALED,
                         private_key=GW_PRIVATE, portal_public_key=PORTAL_PUBLIC)

    assert loaded.state["version"] == fw.STATE_VERSION == 2
    assert loaded.keypad(MK, "4821", 1_767_225_600) == "opened"
    assert loaded.state["outbox"][-1]["pack"][0] == m.opened_with(G, fw.UNKNOWN_REF)[0]


# --- a seed box ----------------------------------------------------------------------------------


def test_a_seed_box_ignores_the_rule_records_and_safe_mode():
    box = Box(protocol=m.SEED)
    rules = m.BoxRules(starts=1_767_225_600, ends=1_767_312_000, zone=BERLIN, windows=(WORKDAYS,), uses=1)
    assert box.command(box.portal.auth, 4821, None, rules) == m.reply(m.add_pin(G, 4821)[0], True)
    box.portal.safe(attempts=1, lockouts=(600,), dual_seconds=60)
    box.read()
    assert box.events() == []  # SAFE is a name the seed does not know: no answer

    saturday_after_the_end = berlin(2027, 1, 2, 23, 0)
    assert box.press("1111", saturday_after_the_end) == "rejected"
    assert [box.press("4821", saturday_after_the_end + i) for i in range(3)] == ["opened"] * 3
    assert box.events()[1:] == [m.opened_with_pin(G, 4821)] * 3
    snapshot = box.box()
    assert (snapshot["pins_with_rules"], snapshot["safe"], snapshot["locked_until"]) == (0, None, None)


# --- the same rules with the portal out of reach ------------------------------------------------


SEALED_SETTINGS = {
    "streamiot_url": "http://streamiot.example", "streamiot_reader_url": "http://reader.example",
    "thing_id": G, "thing_key": "gw-key", "channel_id": GC, "public_key": GW_PUBLIC,
    "private_key": GW_PRIVATE, "protocol": m.SEALED, "portal_thing_id": PORTAL,
    "portal_public_key": PORTAL_PUBLIC,
}


def test_the_same_rules_hold_with_the_portal_unreachable(tmp_path):
    clock = Clock(berlin(2026, 7, 1, 9, 0))
    streamiot = FakeStreamIoT(clock)
    gateway = VirtualGateway(SEALED_SETTINGS, tmp_path / "gw.json", streamiot, clock=clock)

    def post(channel, pack):
        clock.now += 1.0
        streamiot.publish(channel, "portal-key", pack)

    portal = Portal(post)
    portal.pair()
    portal.auth(4821, "cleaner1", m.BoxRules(zone=BERLIN, windows=(WORKDAYS,), uses=2))
    portal.auth(7305, "courier1", m.BoxRules(ends=int(clock.now) + 3600, uses=1, role=m.ROLE_COURIER))
    portal.safe(attempts=3, lockouts=(60, 300))
    gateway.step()
    assert [msg["unit"] for msg in streamiot.by(MC, G) if msg["name"] in (f"{G}_AUTH", f"{G}_SAFE")] == ["Done"] * 3

    published_before = len(streamiot.by(MC, G))
    streamiot.reads_down = True  # from here on no read and no publish gets through
    results = [gateway.keypad(MK, "4821"), gateway.keypad(MK, "7305"), gateway.keypad(MK, "7305")]
    clock.now = berlin(2026, 7, 1, 19, 0)
    results.append(gateway.keypad(MK, "4821"))
    results += [gateway.keypad(MK, "1111") for _ in range(3)] + [gateway.keypad(MK, "4821")]
    clock.now += 60
    gateway.step()
    results.append(gateway.keypad(MK, "7305"))
    clock.now = berlin(2026, 7, 2, 8, 0)
    results += [gateway.keypad(MK, "4821"), gateway.keypad(MK, "4821")]

    assert results == ["opened", "opened", "refused: used up", "refused: outside hours",
                       "rejected", "rejected", "rejected", "rejected: locked out",
                       "refused: expired", "opened", "refused: used up"]
    assert len(streamiot.by(MC, G)) == published_before  # nothing went out

    streamiot.reads_down = False
    gateway.step()
    names = [msg["name"].rpartition("_")[2] for msg in streamiot.by(MC, G)
             if msg["name"].rpartition("_")[2] in ("OPENED", "REFUSED", "LOCKOUT", "REJECTED")]
    assert names == ["OPENED", "OPENED", "REFUSED", "REFUSED", "REJECTED", "REJECTED", "REJECTED", "LOCKOUT",
                     "REJECTED", "REFUSED", "OPENED", "REFUSED"]
