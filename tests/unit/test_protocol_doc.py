"""docs/device-protocol.md: every example pack is exactly what the portal builds.

A fenced block tagged `senml` carries the call that builds it (`m` is
portal.streamiot.messages); the block's JSON must equal what that call returns."""
import json
import re
from pathlib import Path

import pytest

from portal.streamiot import messages as m

DOC = Path(__file__).resolve().parents[2] / "docs" / "device-protocol.md"
EXAMPLE = re.compile(r"```senml (m\.[^\n]+)\n(.*?)\n```", re.S)
EXAMPLES = EXAMPLE.findall(DOC.read_text())


def test_the_document_has_an_example_for_every_message():
    built = {call.split("(")[0] for call, _pack in EXAMPLES}
    assert built == {
        "m.connect_gateway", "m.register_gateway", "m.add_mailbox", "m.register_mailbox", "m.add_pin",
        "m.remove_pin", "m.unlock", "m.remove_mailbox", "m.remove_gateway", "m.reply", "m.opened_with_pin",
        "m.opened_remote", "m.closed", "m.rejected", "m.battery", "m.heartbeat",
    }


@pytest.mark.parametrize(("call", "pack"), EXAMPLES, ids=[call for call, _ in EXAMPLES])
def test_each_example_is_what_the_portal_builds(call, pack):
    assert json.loads(pack) == eval(call, {"m": m})  # noqa: S307  (our own document's calls)


@pytest.mark.parametrize(("call", "pack"), EXAMPLES, ids=[call for call, _ in EXAMPLES])
def test_each_example_reads_back_as_records_the_portal_understands(call, pack):
    records = m.parse_pack(pack, now=1767225600.0)
    assert records and all(m.split_name(record["name"]) for record in records)
