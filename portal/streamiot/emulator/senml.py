"""SenML resolution as the platform's message writer does it before storing.

Release 0.13.0 normalizes with the `mainflux/senml` library, then
`pkg/transformers/senml/transformer.go` stamps the time. That is not quite RFC 8428:

- `bn`, `bt`, `bu` and `bs` carry over to later records until given again (a zero or
  empty one changes nothing), but `bv` is added to the `v` of its own record only
  (STREAMIOT_API.md, "bv"; mainflux/senml Normalize).
- time is `bt` + `t` exactly as given: a small or negative `t` is NOT relative to the
  reception (`t: -5` is stored as -5, in 1970). Only a resolved time of exactly 0 (no
  `t` and no `bt`, or they add up to 0) becomes the moment of reception
  (transformer.go: "Use reception timestamp if SenML message Time is missing").

A pack that is not valid SenML raises `InvalidPack`; the HTTP adapter has already
answered 202 by then, so such a pack is silently dropped.
"""
import json
import math
import re

# RFC 8428 section 4.5.1: what a resolved name may contain.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-:./_]*\Z")
_VALUE_FIELDS = {"v": "value", "vs": "string_value", "vb": "bool_value", "vd": "data_value"}


class InvalidPack(ValueError):
    pass


def _is_number(value) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def _typed(record: dict, key: str, check, what: str):
    if key not in record:
        return None
    value = record[key]
    if not check(value):
        raise InvalidPack(f"{key} must be {what}")
    return value


def _number(record, key):
    return _typed(record, key, _is_number, "a number")


def _string(record, key):
    return _typed(record, key, lambda v: isinstance(v, str), "a string")


def resolve(raw: bytes | str, *, now: float) -> list[dict]:
    """The resolved records of a SenML JSON pack; each has `name`, `time`, exactly one
    of `value`/`string_value`/`bool_value`/`data_value` (or only a `sum`), and
    `unit`, `sum`, `update_time` when given."""
    try:
        pack = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidPack(f"not JSON: {exc}") from None
    if not isinstance(pack, list):
        raise InvalidPack("a pack is a JSON array")

    base_name, base_time, base_unit = "", 0.0, None
    base_sum = None
    resolved = []
    for record in pack:
        if not isinstance(record, dict):
            raise InvalidPack("a record is a JSON object")
        # mainflux/senml Normalize: a non-zero `bn`, `bt`, `bu` or `bs` applies to this record
        # and every later one until another non-zero one; `bv` only to its own record.
        base_name = _string(record, "bn") or base_name
        base_time = _number(record, "bt") or base_time
        base_unit = _string(record, "bu") or base_unit
        base_value = _number(record, "bv")
        base_sum = _number(record, "bs") or base_sum
        if "bver" in record:
            _typed(record, "bver", lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer")

        name = base_name + (_string(record, "n") or "")
        if not _NAME.match(name):
            raise InvalidPack(f"invalid name {name!r}")

        values = {}
        if "v" in record:
            values["value"] = _number(record, "v") + (base_value or 0)
        if "vs" in record:
            values["string_value"] = _string(record, "vs")
        if "vb" in record:
            values["bool_value"] = _typed(record, "vb", lambda v: isinstance(v, bool), "a boolean")
        if "vd" in record:
            values["data_value"] = _string(record, "vd")
        total = None
        if "s" in record:
            total = _number(record, "s") + (base_sum or 0)
        if len(values) > 1:
            raise InvalidPack("a record carries one value")
        if not values and total is None:
            raise InvalidPack("a record carries a value or a sum")

        time = base_time + (_number(record, "t") or 0)
        if time == 0:  # no time at all: the moment of reception
            time = now

        out = {"name": name, "time": time}
        unit = _string(record, "u") if "u" in record else base_unit
        if unit:
            out["unit"] = unit
        out.update(values)
        if total is not None:
            out["sum"] = total
        update_time = _number(record, "ut")
        if update_time is not None:
            out["update_time"] = update_time
        resolved.append(out)
    return resolved


def _reject_constant(name):
    raise ValueError(f"{name} is not JSON")


__all__ = ["InvalidPack", "resolve"]
