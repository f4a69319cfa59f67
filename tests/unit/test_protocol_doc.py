"""docs/device-protocol.md: every example pack is exactly what the portal builds.

A fenced block tagged `senml` carries the call that builds it (`m` is
portal.streamiot.messages); the block's JSON must equal what that call returns. The
`vectors` block of the sealed level is checked against portal/crypto.py."""
import json
import re
from pathlib import Path

import pytest

from portal import crypto
from portal.streamiot import messages as m

DOC = Path(__file__).resolve().parents[2] / "docs" / "device-protocol.md"
EXAMPLE = re.compile(r"```senml (m\.[^\n]+)\n(.*?)\n```", re.S)
EXAMPLES = EXAMPLE.findall(DOC.read_text())
VECTORS = dict(
    line.split(" = ", 1)
    for line in re.search(r"```vectors\n(.*?)\n```", DOC.read_text(), re.S).group(1).splitlines()
)
MAC_INPUTS = re.findall(r"```text\n(14:iotlock-mac-v1,[^\n]*)\n```", DOC.read_text())
MAC_INPUT = MAC_INPUTS[0]


def test_the_document_has_an_example_for_every_message():
    built = {call.split("(")[0] for call, _pack in EXAMPLES}
    assert built == {
        "m.connect_gateway", "m.register_gateway", "m.add_mailbox", "m.register_mailbox", "m.add_pin",
        "m.remove_pin", "m.unlock", "m.remove_mailbox", "m.remove_gateway", "m.reply", "m.opened_with_pin",
        "m.opened_remote", "m.closed", "m.rejected", "m.battery", "m.heartbeat",
        # the sealed level
        "m.add_pin_sealed", "m.remove_pin_sealed", "m.opened_with_ref", "m.rekey", "m.signed",
        # rules the box enforces, and safe mode
        "m.add_pin_sealed_with_rules", "m.add_pin_with_rules", "m.refused", "m.opened_with", "m.safe_settings",
        "m.locked_out", "m.rejected_locked_out", "m.first_of_two",
    }


@pytest.mark.parametrize(("call", "pack"), EXAMPLES, ids=[call for call, _ in EXAMPLES])
def test_each_example_is_what_the_portal_builds(call, pack):
    assert json.loads(pack) == eval(call, {"m": m})  # noqa: S307  (our own document's calls)


@pytest.mark.parametrize(("call", "pack"), EXAMPLES, ids=[call for call, _ in EXAMPLES])
def test_each_example_reads_back_as_records_the_portal_understands(call, pack):
    records = m.parse_pack(pack, now=1767225600.0)
    assert records and all(m.split_name(record["name"]) for record in records)


def test_the_test_vectors_are_what_the_portal_computes():
    v = VECTORS
    assert crypto.public_from_private(v["gateway_private_key"]) == v["gateway_public_key"]
    assert crypto.public_from_private(v["portal_private_key"]) == v["portal_public_key"]
    for direction in ("command", "report"):
        # Both ends derive the same key, each from its own private key and the other's public one.
        portal_side = crypto.link_key(v["portal_private_key"], v["gateway_public_key"], direction)
        gateway_side = crypto.link_key(v["gateway_private_key"], v["portal_public_key"], direction)
        assert portal_side.hex() == gateway_side.hex() == v[f"{direction}_key"]
    assert json.loads(crypto.open_sealed(v["gateway_private_key"], v["sealed_pin"])) == json.loads(
        v["sealed_pin_opens_to"])
    assert m.open_pin(v["gateway_private_key"], v["sealed_pin"]) == (4821, "k3Xq9TzB")
    with pytest.raises(ValueError):
        m.open_pin(v["portal_private_key"], v["sealed_pin"])  # sealed to the gateway only


def test_the_mac_input_shown_is_the_one_the_portal_covers():
    pack = m.opened_with_ref("G", "k3Xq9TzB") + [{"n": "CTR", "v": 7}]
    assert m.mac_input("MC", m.parse_pack(pack)).decode() == MAC_INPUT


def test_the_mac_input_shown_for_an_auth_with_rules_is_the_one_the_portal_covers():
    rules = m.BoxRules(zone="CET-1CEST,M3.5.0,M10.5.0/3", windows=("1111100 08:00-18:00", "0000011 10:00-12:00"),
                       uses=3)
    pack = m.add_pin_sealed_with_rules("G", VECTORS["sealed_pin"], rules) + [{"n": "CTR", "v": 4}]
    assert m.mac_input("MC", m.parse_pack(pack)).decode() == MAC_INPUTS[1]
    # The reader may hand the WINDOW records back in either order: the MAC is the same.
    assert m.mac_input("MC", reversed(m.parse_pack(pack))).decode() == MAC_INPUTS[1]


def test_a_signed_example_verifies_and_a_changed_one_does_not():
    key = bytes.fromhex(VECTORS["report_key"])
    pack = m.signed(m.opened_with_ref("G", "k3Xq9TzB"), "MC", 7, key)
    stored = m.parse_pack(pack)  # as the reader hands the records back
    assert m.verify("MC", stored, key) == 7
    assert m.verify("GC", stored, key) is None  # replayed on another channel
    stored[0]["string_value"] = "other123"
    assert m.verify("MC", stored, key) is None
