"""Local time under a POSIX TZ rule ("CET-1CEST,M3.5.0,M10.5.0/3"), as a box evaluates it.

A box gets the rule of its household's zone with each PIN that has weekly windows (see
`portal.timezones.posix_rule`). The standard library evaluates such rules only as the
footer of a TZif file, so `zone` builds the smallest TZif version 2 file there is (no
transitions, one local time type, the rule as footer: RFC 8536) in memory and loads it
with `zoneinfo.ZoneInfo.from_file`. With no transitions, every instant follows the rule.
"""
import functools
import io
import struct
import zoneinfo

_HEADER = struct.Struct(">4sc15x6l")  # magic, version, unused, then the six counts
_TTINFO = struct.Struct(">lBB")  # UT offset, is DST, designation index
_DESIGNATION = b"LMT\0"


def _block() -> bytes:
    """One data block: no transitions, one local time type (offset 0, unused), no leap seconds.
    The same bytes serve version 1 (4-byte times) and version 2 (8-byte times): there are no
    times in it."""
    return _TTINFO.pack(0, 0, 0) + _DESIGNATION + b"\0" + b"\0"  # + is-std, is-UT indicators


def tzif(rule: str) -> bytes:
    """A TZif version 2 file whose zone follows `rule` at every instant."""
    if not isinstance(rule, str) or not rule or not rule.isascii() or "\n" in rule:
        raise ValueError("a POSIX TZ rule is one line of ASCII")
    # isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt
    header = _HEADER.pack(b"TZif", b"2", 1, 1, 0, 0, 1, len(_DESIGNATION))
    return header + _block() + header + _block() + b"\n" + rule.encode() + b"\n"


@functools.lru_cache(maxsize=64)
def zone(rule: str) -> zoneinfo.ZoneInfo:
    """The tzinfo of a POSIX TZ rule; ValueError for one the standard library cannot read."""
    try:
        return zoneinfo.ZoneInfo.from_file(io.BytesIO(tzif(rule)), key=rule)
    except (ValueError, IndexError) as exc:
        raise ValueError(f"not a POSIX TZ rule: {rule!r}") from exc
