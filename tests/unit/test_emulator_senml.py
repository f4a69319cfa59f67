"""SenML resolution in the emulator: what a pack is stored as (RFC 8428 basics)."""
import json

import pytest

from portal.streamiot.emulator.senml import InvalidPack, resolve

NOW = 1_800_000_000.0
G = "6f1c3c1e-7d0a-4c55-9a43-2a1f0c6f1d2e"


def _resolve(pack, now=NOW):
    return resolve(json.dumps(pack), now=now)


def test_name_is_base_name_plus_name():
    [record] = _resolve([{"bn": f"{G}_", "n": "AUTH", "u": "PIN", "v": 1234}])

    assert record == {"name": f"{G}_AUTH", "time": NOW, "unit": "PIN", "value": 1234}


def test_base_name_carries_over_to_later_records_until_replaced():
    records = _resolve(
        [
            {"bn": f"{G}_", "n": "AUTH", "u": "Failed", "v": 1234},
            {"n": "REASON", "vs": "slots full"},
            {"bn": "other_", "n": "X", "vb": False},
        ]
    )

    assert [r["name"] for r in records] == [f"{G}_AUTH", f"{G}_REASON", "other_X"]
    assert records[1]["string_value"] == "slots full"
    assert records[2]["bool_value"] is False


def test_absolute_time_is_kept_and_base_time_is_added():
    records = _resolve([{"bt": 1_700_000_000, "n": "a", "v": 1, "t": 5}, {"n": "b", "v": 2}])

    assert [r["time"] for r in records] == [1_700_000_005, 1_700_000_000]


def test_small_and_negative_times_are_kept_as_given_not_relative():
    # Unlike RFC 8428, release 0.13.0 stores t as given: -30 is 1970, not "30 s ago".
    records = _resolve([{"n": "a", "v": 1, "t": -30}, {"n": "c", "v": 1, "t": 10}, {"n": "d", "v": 1, "t": 2**28 - 1}])

    assert [r["time"] for r in records] == [-30, 10, 2**28 - 1]


def test_no_time_or_a_time_of_zero_is_the_moment_of_reception():
    records = _resolve([{"n": "a", "v": 1}, {"n": "b", "v": 1, "t": 0}, {"bt": 5, "n": "c", "v": 1, "t": -5}])

    assert [r["time"] for r in records] == [NOW, NOW, NOW]


def test_base_unit_applies_when_a_record_has_no_unit():
    records = _resolve([{"bu": "%EL", "n": "a", "v": 1}, {"n": "b", "u": "s", "v": 2}, {"n": "c", "vb": True}])

    assert [r.get("unit") for r in records] == ["%EL", "s", "%EL"]


def test_base_value_and_base_sum_are_added():
    [record] = _resolve([{"bv": 100, "bs": 10, "n": "a", "v": 5, "s": 1}])

    assert (record["value"], record["sum"]) == (105, 11)


def test_base_value_applies_to_its_own_record_only_but_base_sum_carries_over():
    records = _resolve([{"bv": 100, "bs": 10, "n": "a", "v": 5, "s": 1}, {"n": "b", "v": 5, "s": 1}])

    assert [(r["value"], r["sum"]) for r in records] == [(105, 11), (5, 11)]


def test_data_value_and_update_time_are_kept():
    [record] = _resolve([{"n": "a", "vd": "AQID", "ut": 60}])

    assert (record["data_value"], record["update_time"]) == ("AQID", 60)


def test_an_empty_pack_stores_nothing():
    assert _resolve([]) == []


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b'{"n": "a", "v": 1}',
        b"[1, 2]",
        b'[{"n": "a", "v": NaN}]',
        json.dumps([{"n": "a"}]).encode(),  # no value
        json.dumps([{"n": "a", "v": 1, "vs": "x"}]).encode(),  # two values
        json.dumps([{"v": 1}]).encode(),  # no name
        json.dumps([{"n": "-dash-first", "v": 1}]).encode(),
        json.dumps([{"n": "has space", "v": 1}]).encode(),
        json.dumps([{"n": "a", "v": "1"}]).encode(),
        json.dumps([{"n": "a", "v": True}]).encode(),
        json.dumps([{"n": "a", "vb": 1}]).encode(),
        json.dumps([{"n": "a", "vs": 5}]).encode(),
        json.dumps([{"bn": 5, "n": "a", "v": 1}]).encode(),
        json.dumps([{"n": "a", "v": 1, "t": "now"}]).encode(),
        json.dumps([{"n": "ok", "v": 1}, {"n": "bad"}]).encode(),  # one bad record spoils the pack
    ],
)
def test_invalid_packs_are_refused_whole(raw):
    with pytest.raises(InvalidPack):
        resolve(raw, now=NOW)


def test_a_zero_or_empty_base_field_does_not_reset_the_carried_one():
    records = _resolve([{"bn": "a_", "bt": 1_700_000_000, "bu": "s", "n": "x", "v": 1},
                        {"bn": "", "bt": 0, "bu": "", "n": "y", "v": 1}])

    assert [(r["name"], r["time"], r["unit"]) for r in records] == [
        ("a_x", 1_700_000_000, "s"), ("a_y", 1_700_000_000, "s")]
