"""A POSIX TZ rule, read the way a box reads it, gives the same local time as the IANA zone
it came from, for the zone's current rules (the rule is the zone's future)."""
import zoneinfo
from datetime import UTC, datetime, timedelta

import pytest

from portal import timezones
from portal.devices import posix_tz


def _instants(start: datetime, stop: datetime, step: timedelta):
    while start < stop:
        yield start
        start += step


def _same_local_times(name: str, instants) -> None:
    rule_zone = posix_tz.zone(timezones.posix_rule(name))
    iana = zoneinfo.ZoneInfo(name)
    for instant in instants:
        by_rule, by_name = instant.astimezone(rule_zone), instant.astimezone(iana)
        assert (by_rule.replace(tzinfo=None), by_rule.utcoffset(), by_rule.dst()) == (
            by_name.replace(tzinfo=None), by_name.utcoffset(), by_name.dst()), (name, instant)


@pytest.mark.parametrize("name", ["Europe/Berlin", "America/New_York", "Asia/Kolkata", "UTC"])
def test_every_hour_of_two_years_has_the_local_time_of_the_named_zone(name):
    start = datetime(2026, 1, 1, 0, 30, tzinfo=UTC)
    _same_local_times(name, _instants(start, start + timedelta(days=731), timedelta(hours=1)))


@pytest.mark.parametrize(("name", "edge"), [
    ("Europe/Berlin", datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),  # 02:00 CET -> 03:00 CEST
    ("Europe/Berlin", datetime(2026, 10, 25, 1, 0, tzinfo=UTC)),  # 03:00 CEST -> 02:00 CET
    ("America/New_York", datetime(2026, 3, 8, 7, 0, tzinfo=UTC)),  # 02:00 EST -> 03:00 EDT
    ("America/New_York", datetime(2026, 11, 1, 6, 0, tzinfo=UTC)),  # 02:00 EDT -> 01:00 EST
])
def test_each_second_around_a_change_of_summer_time_matches(name, edge):
    _same_local_times(name, _instants(edge - timedelta(minutes=2), edge + timedelta(minutes=2),
                                      timedelta(seconds=1)))


def test_the_edges_fall_where_the_law_puts_them():
    berlin = posix_tz.zone("CET-1CEST,M3.5.0,M10.5.0/3")
    spring = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert (spring - timedelta(seconds=1)).astimezone(berlin).strftime("%H:%M:%S %Z") == "01:59:59 CET"
    assert spring.astimezone(berlin).strftime("%H:%M:%S %Z") == "03:00:00 CEST"
    autumn = datetime(2026, 10, 25, 1, 0, tzinfo=UTC)
    assert (autumn - timedelta(seconds=1)).astimezone(berlin).strftime("%H:%M:%S %Z") == "02:59:59 CEST"
    assert autumn.astimezone(berlin).strftime("%H:%M:%S %Z") == "02:00:00 CET"


def test_half_hour_offsets_and_utc():
    noon = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    assert noon.astimezone(posix_tz.zone("IST-5:30")).strftime("%H:%M %z") == "17:30 +0530"
    assert noon.astimezone(posix_tz.zone("UTC0")).strftime("%H:%M %z") == "12:00 +0000"


def test_a_rule_is_loaded_once():
    assert posix_tz.zone("EST5EDT,M3.2.0,M11.1.0") is posix_tz.zone("EST5EDT,M3.2.0,M11.1.0")


@pytest.mark.parametrize("rule", ["", "Berlin", "CET-1CEST,M3", "CET-1\nCEST", "ÄST-1", None, 5])
def test_what_is_not_a_rule_is_a_value_error(rule):
    with pytest.raises(ValueError):
        posix_tz.zone(rule)
