"""The emulator's list filters behave like the platform's PostgreSQL queries."""
import pytest

from portal.streamiot.emulator.filters import contains, name_matches


@pytest.mark.parametrize(
    "name, expected",
    [
        ("iotlock-gw_1", True),
        ("iotlock-gw-1", True),  # `_` matches the dash
        ("iotlock-gw-10", True),  # substring: the trailing 0 does not matter
        ("IOTLOCK-GWX1", True),  # case-insensitive
        ("iotlock-gw1", False),  # `_` needs exactly one character
        ("prefix-iotlock-gw_1-suffix", True),
        ("iotlock-mb_1", False),
    ],
)
def test_underscore_is_a_one_character_wildcard_inside_a_substring_match(name, expected):
    assert name_matches(name, "iotlock-gw_1") is expected


def test_percent_matches_any_run_of_characters():
    assert name_matches("iotlock-gw-1234-ch", "gw%ch")
    assert name_matches("gwch", "gw%ch")
    assert not name_matches("gw-c", "gw%ch")


def test_backslash_escapes_a_wildcard():
    assert name_matches("gw_1", r"gw\_1")
    assert not name_matches("gw-1", r"gw\_1")
    assert name_matches("50%", r"50\%")
    assert not name_matches("500", r"50\%")


def test_a_trailing_backslash_escapes_the_wrapping_percent():
    # PostgreSQL sees `%gw\%`: names that END with "gw%".
    assert name_matches("my-gw%", "gw\\")
    assert not name_matches("my-gw%-x", "gw\\")
    assert not name_matches("my-gw", "gw\\")


def test_regex_characters_in_a_name_are_plain_text():
    assert name_matches("a.b(c)*", "a.b(c)*")
    assert not name_matches("axb(c)", "a.b(c)")


def test_an_empty_filter_matches_every_name_even_an_empty_one():
    assert name_matches("", "")
    assert name_matches(None, "")


def test_metadata_containment_is_jsonb_at_arrow():
    document = {"role": "gateway", "tags": ["a", "b"], "nested": {"x": 1, "y": 2}, "flag": True}

    assert contains(document, {})
    assert contains(document, {"role": "gateway"})
    assert contains(document, {"nested": {"x": 1}})
    assert contains(document, {"tags": ["b"]})
    assert contains(document, {"tags": "a"})  # an array contains its primitive elements
    assert contains(document, {"nested": {"x": 1.0}})  # numbers compare by value
    assert not contains(document, {"role": "portal"})
    assert not contains(document, {"missing": None})
    assert not contains(document, {"tags": ["c"]})
    assert not contains(document, {"flag": 1})  # true is not 1 in JSON
