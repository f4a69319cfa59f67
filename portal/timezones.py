"""Time zones: the IANA names a household chooses from, and the POSIX TZ rule a box gets.

A box cannot hold the time zone database, so a PIN's weekly windows travel with the POSIX
TZ rule of its zone (e.g. "CET-1CEST,M3.5.0,M10.5.0/3"), which firmware libraries take
as they are (newlib's and ESP-IDF's `setenv("TZ", ...)`). The rule is the footer of the
zone's TZif file (RFC 8536): how the zone behaves after its last listed transition, so
from now on. The pinned `tzdata` package makes the data the same on every machine.
"""
import functools
import importlib.resources
import zoneinfo
from datetime import tzinfo
from typing import TypeGuard

DEFAULT_ZONE = "UTC"


@functools.cache
def zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) | {DEFAULT_ZONE}


def is_zone(name: object) -> TypeGuard[str]:
    return isinstance(name, str) and name in zone_names()


def zone(name: str | None) -> tzinfo:
    """The zone of that name; UTC for a name that is not one (never raises)."""
    return zoneinfo.ZoneInfo(name if is_zone(name) else DEFAULT_ZONE)


def choices() -> list[str]:
    """Every zone name a household can choose, sorted (UTC first)."""
    return [DEFAULT_ZONE, *sorted(n for n in zone_names() if n != DEFAULT_ZONE and "/" in n)]


@functools.cache
def labelled_choices() -> list[tuple[str, str]]:
    """choices() as (name, words) pairs for a select ("America/New York"), made once."""
    return [(name, name.replace("_", " ")) for name in choices()]


@functools.cache
def posix_rule(name: str) -> str:
    """The POSIX TZ rule of an IANA zone (ValueError for a name that is not a zone)."""
    if not is_zone(name):
        raise ValueError(f"{name!r} is not a time zone")
    if name == DEFAULT_ZONE:
        return "UTC0"
    data = importlib.resources.files("tzdata.zoneinfo").joinpath(*name.split("/")).read_bytes()
    if not data.startswith(b"TZif") or data[4:5] < b"2":
        raise ValueError(f"no TZif version 2 data for {name!r}")
    footer = data.rstrip(b"\n").rsplit(b"\n", 1)[-1].decode("ascii")
    if not footer:
        raise ValueError(f"{name!r} has no rule for the future")
    return footer
