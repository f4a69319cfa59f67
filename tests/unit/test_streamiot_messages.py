"""The SenML packs of the seed and DEVICE_PROTOCOL.md, byte for byte, and reading them back."""
import json

import pytest

from portal.streamiot import messages as m

# The seed (shared/seeds/000_9a80dbec51e4dd9c.txt), "Integration Messages", verbatim.
SEED = {
    "Connect gateway": '[{"bn": "DEVICE-ID_", "n": "CONNECT", "u": "Requested", "vb": true}]',
    "Register gateway": '[{"bn": "DEVICE-ID_", "n": "REGISTER", "u": "Requested", "vb": true}]',
    "Remove gateway": '[{"bn": "CHANNEL-ID_", "n": "DESTRUCT", "u": "Gateway", "vs": "PUBLIC-KEY"}]',
    "Add mailbox to gateway": '[{"bn": "DEVICE-ID_", "n": "ADD", "u": "PublicKey", "vs": "PUBLIC-KEY"}]',
    "Register mailbox": '[{"bn": "CHANNEL-ID_", "n": "Mailbox", "u": "PublicKey", "vs": "PUBLIC-KEY"}]',
    "Add PIN to mailbox": '[{"bn": "DEVICE-ID_", "n": "AUTH", "u": "PIN", "v": 1234}]',
    "Remove PIN from mailbox": '[{"bn": "DEVICE-ID_", "n": "UNAUTH", "u": "PIN", "v": 1234}]',
    "Remove mailbox": '[{"bn": "DEVICE-ID_", "n": "DELETE", "u": "PublicKey", "vs": "PUBLIC-KEY"}]',
}

BUILT = {
    "Connect gateway": lambda: m.connect_gateway("DEVICE-ID"),
    "Register gateway": lambda: m.register_gateway("DEVICE-ID"),
    "Remove gateway": lambda: m.remove_gateway("CHANNEL-ID", "PUBLIC-KEY"),
    "Add mailbox to gateway": lambda: m.add_mailbox("DEVICE-ID", "PUBLIC-KEY"),
    "Register mailbox": lambda: m.register_mailbox("CHANNEL-ID", "PUBLIC-KEY"),
    "Add PIN to mailbox": lambda: m.add_pin("DEVICE-ID", 1234),
    "Remove PIN from mailbox": lambda: m.remove_pin("DEVICE-ID", 1234),
    "Remove mailbox": lambda: m.remove_mailbox("DEVICE-ID", "PUBLIC-KEY"),
}

G = "6f1c7a4e-2b1d-4c7e-9a55-0d3e8f7b1a20"
MK = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq8w="


def seed_json(pack) -> str:
    return json.dumps(pack, separators=(", ", ": "))


def compact(pack) -> str:
    return json.dumps(pack, separators=(",", ":"))


@pytest.mark.parametrize("title", list(SEED))
def test_portal_message_is_the_seed_text(title):
    assert seed_json(BUILT[title]()) == SEED[title]


def test_unlock_follows_the_protocol_extension_and_carries_its_deadline():
    assert compact(m.unlock("G", 1_700_000_060)) == '[{"bn":"G_","n":"UNLOCK","u":"s","v":1700000060}]'


@pytest.mark.parametrize("deadline", [None, True, 0, -5, 1_700_000_060.5, 1_700_000_060.0, "1700000060"])
def test_an_unlock_without_a_whole_second_deadline_is_never_built(deadline):
    with pytest.raises(ValueError):
        m.unlock("G", deadline)


def test_an_unlock_answer_echoes_the_deadline_and_reads_back_as_it_went_out():
    answer = m.reply(m.unlock("G", 1_700_000_060)[0], False, m.EXPIRED)
    assert compact(answer) == '[{"bn":"G_","n":"UNLOCK","u":"Failed","v":1700000060},{"n":"REASON","vs":"expired"}]'
    [stored, _reason] = m.parse_pack(answer)
    assert m.unlock_deadline(stored["value"]) == 1_700_000_060
    assert m.unlock_deadline(1_700_000_060.0) == 1_700_000_060
    assert [m.unlock_deadline(v) for v in (True, 1.5, "1", None, 0)] == [None] * 5


def test_real_ids_and_keys_are_sent_as_given():
    assert m.add_mailbox(G, MK) == [{"bn": f"{G}_", "n": "ADD", "u": "PublicKey", "vs": MK}]
    assert m.add_pin(G, 48213579) == [{"bn": f"{G}_", "n": "AUTH", "u": "PIN", "v": 48213579}]


@pytest.mark.parametrize(
    "pack, text",
    [
        (m.opened_with_pin("G", 1234), '[{"bn":"G_","n":"OPENED","u":"PIN","v":1234}]'),
        (m.opened_remote("G"), '[{"bn":"G_","n":"OPENED","u":"Remote","vb":true}]'),
        (m.closed("G"), '[{"bn":"G_","n":"CLOSED","vb":true}]'),
        (m.rejected("G", 1), '[{"bn":"G_","n":"REJECTED","u":"Attempts","v":1}]'),
        (m.battery("G", 87), '[{"bn":"G_","n":"BATTERY","u":"%EL","v":87}]'),
        (m.heartbeat("G", 3600), '[{"bn":"G_","n":"HEARTBEAT","u":"s","v":3600}]'),
    ],
)
def test_device_event_is_the_protocol_text(pack, text):
    assert compact(pack) == text


def test_device_answers_done_with_the_same_name_and_value():
    command = m.add_pin("G", 1234)[0]
    assert compact(m.reply(command, True)) == '[{"bn":"G_","n":"AUTH","u":"Done","v":1234}]'


def test_device_answers_failed_with_its_reason():
    command = m.add_mailbox("G", "MK")[0]
    assert compact(m.reply(command, False, "slots full")) == (
        '[{"bn":"G_","n":"ADD","u":"Failed","vs":"MK"},{"n":"REASON","vs":"slots full"}]'
    )


def test_failed_answer_without_reason_is_one_record():
    command = m.connect_gateway("G")[0]
    assert m.reply(command, False) == [{"bn": "G_", "n": "CONNECT", "u": "Failed", "vb": True}]


def test_done_answer_cannot_carry_a_reason():
    with pytest.raises(ValueError):
        m.reply(m.unlock("G", 1_700_000_060)[0], True, "why")


@pytest.mark.parametrize("pin", [1000, 4821, 99999999])
def test_pin_of_4_to_8_digits_is_accepted(pin):
    assert m.add_pin("G", pin)[0]["v"] == pin


@pytest.mark.parametrize("pin", [999, 123, 0, -1234, 100000000, True, "1234", 1234.0, None])
def test_pin_that_cannot_travel_as_a_4_to_8_digit_number_is_refused(pin):
    with pytest.raises(ValueError):
        m.add_pin("G", pin)
    with pytest.raises(ValueError):
        m.remove_pin("G", pin)


@pytest.mark.parametrize("text, pin", [("4821", 4821), (" 12345678 ", 12345678), ("1000", 1000)])
def test_typed_pin_becomes_a_number(text, pin):
    assert m.pin_from_text(text) == pin


@pytest.mark.parametrize("text", ["0123", "123", "123456789", "12a4", "", "١٢٣٤", "12 34"])
def test_typed_pin_that_would_lose_digits_is_refused(text):
    with pytest.raises(ValueError, match="4 to 8 digits"):
        m.pin_from_text(text)


@pytest.mark.parametrize(
    "build",
    [lambda: m.add_mailbox("G", ""), lambda: m.connect_gateway(""), lambda: m.connect_gateway("_G"),
     lambda: m.battery("G", 101), lambda: m.rejected("G", 0), lambda: m.heartbeat("G", -1)],
)
def test_messages_the_platform_would_drop_are_never_built(build):
    with pytest.raises(ValueError):
        build()


def test_every_built_pack_is_senml_the_platform_stores():
    packs = [build() for build in BUILT.values()] + [
        m.unlock(G, 1_700_000_060), m.opened_with_pin(G, 1234), m.opened_remote(G), m.closed(G), m.rejected(G, 3),
        m.battery(G, 12.5), m.heartbeat(G, 7), m.reply(m.add_pin(G, 1234)[0], False, "slots full"),
    ]
    for pack in packs:
        m.validate_pack(pack)


def test_parse_pack_resolves_names_as_the_reader_stores_them():
    raw = compact(m.reply(m.add_pin(G, 1234)[0], False, "slots full")).encode()
    assert m.parse_pack(raw) == [
        {"name": f"{G}_AUTH", "unit": "Failed", "value": 1234},
        {"name": f"{G}_REASON", "string_value": "slots full"},
    ]


def test_parse_pack_maps_every_value_field_and_base_fields():
    pack = [
        {"bn": "G_", "bt": 1700000000, "bu": "s", "n": "A", "v": 1},
        {"n": "B", "t": 5, "vb": False},
        {"n": "C", "u": "x", "vs": "text"},
    ]
    assert m.parse_pack(pack) == [
        {"name": "G_A", "unit": "s", "time": 1700000000, "value": 1},
        {"name": "G_B", "unit": "s", "time": 1700000005, "bool_value": False},
        {"name": "G_C", "unit": "x", "time": 1700000000, "string_value": "text"},
    ]


def test_parse_pack_gives_a_missing_time_the_receive_time_and_keeps_a_relative_one_raw():
    resolved = m.parse_pack([{"bn": "G_", "n": "A", "vb": True}, {"n": "B", "t": -2, "vb": True}], now=1000.0)
    assert [r["time"] for r in resolved] == [1000.0, -2]  # as Mainflux 0.13.0 stores them


def test_parse_pack_applies_bv_to_its_own_record_only_and_ignores_empty_bases():
    resolved = m.parse_pack([{"bn": "G_", "bv": 10, "n": "A", "v": 1}, {"bn": "", "n": "B", "v": 2}])
    assert [(r["name"], r["value"]) for r in resolved] == [("G_A", 11), ("G_B", 2)]


@pytest.mark.parametrize(
    "raw",
    [
        "not json", "{}", "[]", "[1]",
        [{"bn": "G_", "n": "A"}],
        [{"bn": "G_", "n": "A", "v": 1, "vs": "x"}],
        [{"bn": "_G", "n": "A", "v": 1}],
        [{"n": "", "v": 1}],
        [{"bn": "G_", "n": "A B", "v": 1}],
        [{"bn": "G_", "n": "A", "v": "1234"}],
        [{"bn": "G_", "n": "A", "v": True}],
        [{"bn": "G_", "n": "A", "vb": "true"}],
    ],
)
def test_invalid_senml_is_refused(raw):
    with pytest.raises(ValueError):
        m.validate_pack(raw)


def reader_message(name, unit=None, publisher="gw-thing", time=1700000000.0, **value):
    message = {"channel": "ch", "publisher": publisher, "protocol": "http", "name": name, "time": time}
    if unit:
        message["unit"] = unit
    message.update(value)
    return message


def test_classify_reply_reads_action_unit_and_value_of_its_own_base():
    message = reader_message(f"{G}_AUTH", "Done", value=1234)
    assert m.classify_reply(message, G) == ("AUTH", "Done", 1234)
    assert m.classify_reply(reader_message(f"{G}_ADD", "Failed", string_value=MK), [G, "x"]) == (
        "ADD", "Failed", MK,
    )


def test_classify_reply_ignores_other_bases_even_with_a_shared_prefix():
    assert m.classify_reply(reader_message("gw-10_AUTH", "Done", value=1234), "gw-1") is None
    assert m.classify_reply(reader_message("gw-1_", "Done", value=1234), "gw-1") is None


def test_split_name_without_a_base_splits_at_the_last_underscore():
    assert m.split_name(f"{G}_Mailbox") == (G, "Mailbox")
    assert m.split_name("nounderscore") is None


def test_a_command_read_back_from_the_reader_can_be_answered():
    message = reader_message(f"{G}_AUTH", "PIN", publisher="portal-thing", value=4821)
    record = m.record_from_message(message, G)
    assert record == m.add_pin(G, 4821)[0]
    assert m.reply(record, True) == [{"bn": f"{G}_", "n": "AUTH", "u": "Done", "v": 4821}]
    assert m.record_from_message(message, "someone-else") is None


def test_device_replies_pairs_failures_with_reasons_oldest_first_and_trusts_only_the_gateway():
    newest_first = [
        reader_message(f"{G}_REASON", publisher="gw-thing", time=30.0, string_value="slots full"),
        reader_message(f"{G}_ADD", "Failed", publisher="gw-thing", time=30.0, string_value=MK),
        reader_message(f"{G}_AUTH", "Done", publisher="intruder", time=25.0, value=1111),
        reader_message(f"{G}_AUTH", "PIN", publisher="portal-thing", time=21.0, value=1234),
        reader_message(f"{G}_AUTH", "Done", publisher="gw-thing", time=20.0, value=1234),
        reader_message(f"{G}_OPENED", "PIN", publisher="gw-thing", time=10.0, value=1234),
    ]
    replies = m.device_replies(newest_first, G, publisher="gw-thing")
    assert [(r.action, r.done, r.value, r.reason) for r in replies] == [
        ("AUTH", True, 1234, None),
        ("ADD", False, MK, "slots full"),
    ]


def test_message_digest_is_stable_and_distinguishes_messages():
    a = reader_message(f"{G}_AUTH", "Done", value=1234)
    assert m.message_digest(a) == m.message_digest(dict(reversed(list(a.items()))))
    assert m.message_digest(a) != m.message_digest({**a, "value": 1235})
