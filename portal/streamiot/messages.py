"""The SenML packs of DEVICE_PROTOCOL.md: one pure function per message, plus readers for them.

Packs are lists of dicts whose key order (bn, n, u, then the value) is the seed's, so
`json.dumps(pack)` is byte for byte the seed's text. Ids and keys go in as given;
`G` is the gateway thing id, `GC`/`MC` the gateway/mailbox channel id, `GK`/`MK` the
gateway/mailbox public key.
"""
import hashlib
import json
import math
import re
from collections.abc import Iterable
from typing import NamedTuple

from portal import crypto

# Record names (`n`), as the seed and DEVICE_PROTOCOL.md spell them.
CONNECT = "CONNECT"
REGISTER = "REGISTER"
DESTRUCT = "DESTRUCT"
ADD = "ADD"
MAILBOX = "Mailbox"
AUTH = "AUTH"
UNAUTH = "UNAUTH"
DELETE = "DELETE"
UNLOCK = "UNLOCK"
OPENED = "OPENED"
CLOSED = "CLOSED"
REJECTED = "REJECTED"
BATTERY = "BATTERY"
HEARTBEAT = "HEARTBEAT"
REASON = "REASON"
# The REASON a device gives when an UNLOCK reaches it after its deadline (it stays shut).
EXPIRED = "expired"

# Units (`u`) of a device's answer.
DONE = "Done"
FAILED = "Failed"

PIN_MIN = 1000
PIN_MAX = 99_999_999
PIN_RULE = "A PIN has 4 to 8 digits and does not start with 0."
REASON_MAX_LENGTH = 200

# SenML value field -> the field the reader stores it under.
STORED_FIELDS = {"v": "value", "vs": "string_value", "vb": "bool_value", "vd": "data_value"}

# The platform (Mainflux senml) accepts only these characters in a resolved name.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-:./_]*\Z")


# --- validation -------------------------------------------------------------


def check_pin(pin) -> int:
    """The PIN as an int, or ValueError: it travels as a JSON number, so no leading zero."""
    if isinstance(pin, bool) or not isinstance(pin, int):
        raise ValueError(PIN_RULE)
    if not PIN_MIN <= pin <= PIN_MAX:
        raise ValueError(PIN_RULE)
    return pin


def pin_from_text(text: str) -> int:
    """A PIN typed by a person ("4821") as an int, or ValueError with a message for the form."""
    digits = (text or "").strip()
    if not digits.isascii() or not digits.isdigit() or not 4 <= len(digits) <= 8 or digits[0] == "0":
        raise ValueError(PIN_RULE)
    return int(digits)


def _text(value, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string")
    return value


def _number(value, what: str, minimum: float, maximum: float | None = None):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what} must be a number")
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{what} is out of range")
    return value


def _record(base: str, name: str, unit: str | None, field: str, value) -> dict:
    _text(base, "the base id")
    record = {"bn": f"{base}_", "n": name}
    if unit is not None:
        record["u"] = unit
    record[field] = value
    if not _NAME.match(record["bn"] + name):
        raise ValueError(f"{base!r} cannot start a SenML name")
    return record


# --- portal to device -------------------------------------------------------


def connect_gateway(g: str) -> list[dict]:
    return [_record(g, CONNECT, "Requested", "vb", True)]


def register_gateway(g: str) -> list[dict]:
    return [_record(g, REGISTER, "Requested", "vb", True)]


def remove_gateway(gc: str, gk: str) -> list[dict]:
    return [_record(gc, DESTRUCT, "Gateway", "vs", _text(gk, "the gateway key"))]


def add_mailbox(g: str, mk: str) -> list[dict]:
    return [_record(g, ADD, "PublicKey", "vs", _text(mk, "the mailbox key"))]


def register_mailbox(mc: str, mk: str) -> list[dict]:
    return [_record(mc, MAILBOX, "PublicKey", "vs", _text(mk, "the mailbox key"))]


def add_pin(g: str, pin: int) -> list[dict]:
    return [_record(g, AUTH, "PIN", "v", check_pin(pin))]


def remove_pin(g: str, pin: int) -> list[dict]:
    return [_record(g, UNAUTH, "PIN", "v", check_pin(pin))]


def remove_mailbox(g: str, mk: str) -> list[dict]:
    return [_record(g, DELETE, "PublicKey", "vs", _text(mk, "the mailbox key"))]


def unlock(g: str, deadline: int) -> list[dict]:
    """Open the box now, but only until `deadline` (whole seconds since the epoch, UTC).

    `[{"bn":"G_","n":"UNLOCK","u":"s","v":<deadline>}]`: "s" says the value is a time in
    seconds. A device applies it only while its clock is <= the deadline; later it
    answers Failed with REASON "expired" and stays shut. Its answer echoes the deadline,
    which makes it the answer to this unlock and no other.
    """
    if isinstance(deadline, bool) or not isinstance(deadline, int) or deadline <= 0:
        raise ValueError("an unlock deadline is whole seconds since the epoch")
    return [_record(g, UNLOCK, "s", "v", deadline)]


def unlock_deadline(value) -> int | None:
    """The deadline of an UNLOCK as read back (the platform stores numbers as floats), or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return None
    return int(value) if value > 0 else None


# --- device to portal -------------------------------------------------------


def reply(record: dict, done: bool, reason: str | None = None) -> list[dict]:
    """A device's answer to a command record: same bn, n and value, u Done or Failed.

    A failed answer may carry the reason as a second record; it inherits the base
    name, so the reader stores it as `<id>_REASON` beside the answer.
    """
    if not isinstance(record, dict) or "bn" not in record or "n" not in record:
        raise ValueError("a reply answers a command record with bn and n")
    fields = [f for f in STORED_FIELDS if f in record]
    if len(fields) != 1:
        raise ValueError("a command record has exactly one value")
    answer = {"bn": record["bn"], "n": record["n"], "u": DONE if done else FAILED}
    answer[fields[0]] = record[fields[0]]
    pack = [answer]
    if reason is not None:
        if done:
            raise ValueError("only a failed answer has a reason")
        pack.append({"n": REASON, "vs": _text(reason, "the reason")[:REASON_MAX_LENGTH]})
    validate_pack(pack)
    return pack


def opened_with_pin(g: str, pin: int) -> list[dict]:
    return [_record(g, OPENED, "PIN", "v", check_pin(pin))]


def opened_remote(g: str) -> list[dict]:
    return [_record(g, OPENED, "Remote", "vb", True)]


def closed(g: str) -> list[dict]:
    return [_record(g, CLOSED, None, "vb", True)]


def rejected(g: str, attempts: int) -> list[dict]:
    """A wrong PIN was entered; the digits themselves never leave the box."""
    if isinstance(attempts, bool) or not isinstance(attempts, int):
        raise ValueError("attempts must be a whole number")
    return [_record(g, REJECTED, "Attempts", "v", _number(attempts, "attempts", 1))]


def battery(g: str, pct) -> list[dict]:
    return [_record(g, BATTERY, "%EL", "v", _number(pct, "the battery level", 0, 100))]


def heartbeat(g: str, uptime_s) -> list[dict]:
    return [_record(g, HEARTBEAT, "s", "v", _number(uptime_s, "the uptime", 0))]


# --- reading packs and reader messages ----------------------------------------


def parse_pack(raw, *, now: float | None = None) -> list[dict]:
    """Resolve a SenML pack (RFC 8428) into records shaped like the reader's messages.

    Each record becomes {"name": bn+n, "unit"?, "time"?, "value" | "string_value" |
    "bool_value" | "data_value", "sum"?}, as Mainflux 0.13.0 stores it (mainflux/senml
    Normalize): `bn`, `bt`, `bu` and `bs` carry over to later records (a zero or empty one
    changes nothing), `bv` applies to its own record only. With `now` (the moment the
    platform received the pack), a time that resolves to 0 becomes `now`; any other time
    is kept as given, even a relative one (`t: -5` stays -5, 1970).
    Raises ValueError on anything the platform would drop as invalid SenML.
    """
    if isinstance(raw, (bytes, bytearray, str)):
        try:
            raw = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(raw, list) or not raw:
        raise ValueError("a pack is a non-empty JSON array of records")
    base_name, base_time, base_unit, base_value, base_sum = "", None, None, 0.0, 0.0
    resolved = []
    for record in raw:
        if not isinstance(record, dict):
            raise ValueError("a record is a JSON object")
        if "bn" in record and _field(record, "bn", str):
            base_name = record["bn"]
        if "bt" in record and _field(record, "bt", float):
            base_time = record["bt"]
        if "bu" in record and _field(record, "bu", str):
            base_unit = record["bu"]
        base_value = _field(record, "bv", float) if "bv" in record else 0.0
        if "bs" in record and _field(record, "bs", float):
            base_sum = record["bs"]
        name = base_name + (_field(record, "n", str) if "n" in record else "")
        if not _NAME.match(name):
            raise ValueError(f"invalid record name {name!r}")
        out: dict[str, object] = {"name": name}
        unit = _field(record, "u", str) if "u" in record else base_unit
        if unit:
            out["unit"] = unit
        values = [f for f in STORED_FIELDS if f in record]
        if len(values) > 1:
            raise ValueError(f"record {name!r} has more than one value")
        if not values and "s" not in record:
            raise ValueError(f"record {name!r} has no value")
        if "t" in record or base_time is not None or now is not None:
            time = (base_time or 0.0) + (_field(record, "t", float) if "t" in record else 0.0)
            if now is not None and time == 0:
                time = now
            out["time"] = time
        if values:
            field = values[0]
            kind = {"v": float, "vs": str, "vb": bool, "vd": str}[field]
            value = _field(record, field, kind)
            if field == "v" and base_value:
                value = base_value + value
            out[STORED_FIELDS[field]] = value
        if "s" in record:
            out["sum"] = base_sum + _field(record, "s", float)
        resolved.append(out)
    return resolved


def _field(record: dict, key: str, kind):
    value = record[key]
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise ValueError(f"SenML field {key!r} has the wrong type")
    return value


def validate_pack(pack) -> None:
    """ValueError unless `pack` is SenML that the platform will store (it drops the rest silently)."""
    parse_pack(pack)


def message_value(message: dict):
    """The value of a reader message, whichever field (value, string_value, ...) holds it."""
    for field in STORED_FIELDS.values():
        if field in message:
            return message[field]
    return None


def _bases(expected_base) -> tuple[str, ...]:
    return (expected_base,) if isinstance(expected_base, str) else tuple(expected_base)


def split_name(name: object, expected_base=None) -> tuple[str, str] | None:
    """(base id, record name) of a resolved name `<id>_<N>`, or None.

    `expected_base` (an id or several) makes the split exact; without it the name is
    split at its last "_" (record names never contain one). Anything but a str (a reader
    message without a name, say) is None.
    """
    if not isinstance(name, str):
        return None
    if expected_base is None:
        base, sep, rest = name.rpartition("_")
        return (base, rest) if sep and base and rest else None
    for base in _bases(expected_base):
        prefix = f"{base}_"
        if name.startswith(prefix) and len(name) > len(prefix):
            return base, name[len(prefix):]
    return None


def record_from_message(message: dict, expected_base) -> dict | None:
    """The SenML record behind a reader message (bn, n, u, value), or None if not for this base."""
    parts = split_name(message.get("name"), expected_base)
    if parts is None:
        return None
    base, name = parts
    record = {"bn": f"{base}_", "n": name}
    if message.get("unit"):
        record["u"] = message["unit"]
    for field, stored in STORED_FIELDS.items():
        if stored in message:
            record[field] = message[stored]
            break
    return record


def classify_reply(message: dict, expected_base) -> tuple[str, str | None, object] | None:
    """(action, unit, value) of a reader message named `<expected_base>_<action>`, else None.

    For a device answer the unit is "Done" or "Failed"; for an event it is the event's
    unit ("PIN", "Remote", ...); for the portal's own commands it is theirs.
    """
    parts = split_name(message.get("name"), expected_base)
    if parts is None:
        return None
    return parts[1], message.get("unit"), message_value(message)


class Reply(NamedTuple):
    """A device's Done/Failed answer found in the reader."""

    base: str
    action: str
    done: bool
    value: object
    reason: str | None
    time: float | None
    publisher: str | None
    message: dict


def device_replies(messages: Iterable[dict], expected_base, *, publisher: str | None = None) -> list[Reply]:
    """Every Done/Failed answer among reader messages, oldest first, each with its reason.

    With `publisher`, messages from any other thing are ignored: the reader does not
    keep tenants apart, so only the gateway's own thing id is trusted.
    """
    answers, reasons = [], {}
    for message in messages:
        if publisher is not None and message.get("publisher") != publisher:
            continue
        parts = split_name(message.get("name"), expected_base)
        if parts is None:
            continue
        base, action = parts
        key = (base, message.get("publisher"), message.get("time"))
        if action == REASON:
            if isinstance(message.get("string_value"), str):
                reasons[key] = message["string_value"]
        elif message.get("unit") in (DONE, FAILED):
            answers.append((key, base, action, message))
    replies = [
        Reply(
            base=base,
            action=action,
            done=message["unit"] == DONE,
            value=message_value(message),
            reason=None if message["unit"] == DONE else reasons.get(key),
            time=message.get("time"),
            publisher=message.get("publisher"),
            message=message,
        )
        for key, base, action, message in answers
    ]
    # The reader answers newest first; answers are applied in the order they happened.
    replies.sort(key=lambda r: r.time if isinstance(r.time, (int, float)) else 0.0)
    return replies


def message_digest(message: dict) -> str:
    """A stable fingerprint of a reader message, to recognise one already applied."""
    text = json.dumps(message, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# --- the sealed level (docs/device-protocol.md, "The sealed level") -----------------------
#
# A "sealed" gateway gets the same messages with two changes: PIN digits travel sealed to
# its X25519 key (crypto_box_seal, base64 in `vs`) and the box names a PIN by a reference
# instead of its digits; and every pack, both ways, ends with a counter record and a MAC
# record (HMAC-SHA256 under the link key of its direction, portal/crypto.py link_key).

SEED = "seed"
SEALED = "sealed"
PROTOCOLS = (SEALED, SEED)
CTR = "CTR"
MAC = "MAC"
MAC_LABEL = "iotlock-mac-v1"
REF_MAX_LENGTH = 16
_REF = re.compile(r"[A-Za-z0-9]{4,16}\Z")


def check_ref(ref) -> str:
    if not isinstance(ref, str) or not _REF.match(ref):
        raise ValueError("a PIN reference is 4 to 16 letters and digits")
    return ref


def sealed_pin(gk: str, pin: int, ref: str) -> str:
    """The PIN and its reference, sealed to the gateway's public key: `{"pin":"4821","ref":"…"}`."""
    plain = json.dumps({"pin": str(check_pin(pin)), "ref": check_ref(ref)}, separators=(",", ":"))
    return crypto.seal(_text(gk, "the gateway key"), plain.encode())


def open_pin(private_key: str, sealed: str) -> tuple[int, str]:
    """(PIN, reference) of a sealed PIN; ValueError when it cannot be opened or read."""
    try:
        content = json.loads(crypto.open_sealed(private_key, sealed))
    except (crypto.DecryptionError, ValueError, UnicodeDecodeError) as exc:
        raise ValueError("the PIN is not sealed to this gateway") from exc
    if not isinstance(content, dict) or not isinstance(content.get("pin"), str):
        raise ValueError("a sealed PIN holds pin and ref")
    return pin_from_text(content["pin"]), check_ref(content.get("ref"))


def add_pin_sealed(g: str, sealed: str) -> list[dict]:
    return [_record(g, AUTH, "PIN", "vs", _text(sealed, "the sealed PIN"))]


def remove_pin_sealed(g: str, sealed: str) -> list[dict]:
    return [_record(g, UNAUTH, "PIN", "vs", _text(sealed, "the sealed PIN"))]


def opened_with_ref(g: str, ref: str) -> list[dict]:
    """A sealed box opened with a PIN: named by the reference it was given with it."""
    return [_record(g, OPENED, "PIN", "vs", check_ref(ref))]


def _mac_value(item: dict) -> tuple[str, str]:
    """(field, text) of a resolved record or reader message, as the MAC covers it."""
    if "value" in item:
        value = item["value"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
            raise ValueError("an authenticated number is a whole number")
        return "v", str(int(value))
    if "string_value" in item:
        return "vs", str(item["string_value"])
    if "bool_value" in item:
        return "vb", "true" if item["bool_value"] else "false"
    raise ValueError("an authenticated record has a value, a string or a boolean")


def _netstring(text: str) -> bytes:
    raw = text.encode()
    return str(len(raw)).encode() + b":" + raw + b","


def mac_input(channel_id: str, items: Iterable[dict]) -> bytes:
    """The bytes a MAC covers: netstrings of the label, the channel id, then per record,
    sorted by name (then unit, field and value), its resolved name, unit ("" if none), value field and value text.
    `items` are resolved records (parse_pack) or reader messages of one pack, without
    the MAC record itself."""
    parts = [MAC_LABEL, _text(channel_id, "the channel id")]
    # Sorted by name, then unit, field and value: records that share a name (the WINDOW
    # records of a PIN's rules) have one order whatever order the reader returns them in.
    for record in sorted((str(i.get("name")), str(i.get("unit") or ""), *_mac_value(i)) for i in items):
        parts += list(record)
    return b"".join(_netstring(p) for p in parts)


def signed(pack: list[dict], channel_id: str, counter: int, key: bytes) -> list[dict]:
    """The pack with its counter and MAC records appended (both inherit the pack's bn)."""
    if isinstance(counter, bool) or not isinstance(counter, int) or counter < 1:
        raise ValueError("a counter is a whole number from 1 up")
    counted = [*pack, {"n": CTR, "v": counter}]
    tag = crypto.mac(key, mac_input(channel_id, parse_pack(counted)))
    signed_pack = [*counted, {"n": MAC, "vs": tag}]
    validate_pack(signed_pack)
    return signed_pack


def verify(channel_id: str, items: list[dict], key: bytes) -> int | None:
    """The counter of one pack read back (its reader messages: same time and publisher),
    or None unless it carries a counter and a MAC that checks out under `key`."""
    macs = [i for i in items if (split_name(i.get("name")) or ("", ""))[1] == MAC]
    counters = [i for i in items if (split_name(i.get("name")) or ("", ""))[1] == CTR]
    if len(macs) != 1 or len(counters) != 1:
        return None
    counter = counters[0].get("value")
    if isinstance(counter, bool) or not isinstance(counter, (int, float)) or not float(counter).is_integer():
        return None
    covered = [i for i in items if i is not macs[0]]
    try:
        message = mac_input(channel_id, covered)
    except ValueError:
        return None
    return int(counter) if crypto.mac_ok(key, message, macs[0].get("string_value")) else None


REKEY = "REKEY"


def sealed_identity(gk: str, thing_id: str, thing_key: str) -> str:
    """A gateway's new thing id and key, sealed to its public key."""
    plain = json.dumps({"thing_id": _text(thing_id, "the thing id"), "thing_key": _text(thing_key, "the thing key")},
                       separators=(",", ":"))
    return crypto.seal(_text(gk, "the gateway key"), plain.encode())


def open_identity(private_key: str, sealed: str) -> tuple[str, str]:
    """(thing id, thing key) of a sealed REKEY; ValueError when it cannot be opened or read."""
    try:
        content = json.loads(crypto.open_sealed(private_key, sealed))
    except (crypto.DecryptionError, ValueError, UnicodeDecodeError) as exc:
        raise ValueError("the new keys are not sealed to this gateway") from exc
    if not isinstance(content, dict):
        raise ValueError("a sealed REKEY holds thing_id and thing_key")
    return _text(content.get("thing_id"), "the thing id"), _text(content.get("thing_key"), "the thing key")


def rekey(g: str, sealed: str) -> list[dict]:
    """Sealed level, on GC: take these new platform keys. The gateway answers Done through
    its NEW thing, echoing the new thing id, and uses only the new keys from then on."""
    return [_record(g, REKEY, "Thing", "vs", _text(sealed, "the sealed keys"))]


# --- rules a box enforces (docs/device-protocol.md, "Rules the box enforces") -------------
#
# Extra records after the PIN record of an AUTH, each inheriting its base name. A seed
# gateway ignores record names it does not know; a sealed one keeps them with the PIN and
# applies them with its own clock and counters.
FROM = "FROM"  # u "s": works from then on (whole seconds since the epoch, UTC)
UNTIL = "UNTIL"  # u "s": works until just before then
ZONE = "ZONE"  # vs: POSIX TZ rule (e.g. "CET-1CEST,M3.5.0,M10.5.0/3") the windows are in
WINDOW = "WINDOW"  # vs: "1111100 08:00-18:00": weekdays Mon..Sun, local from-until (until may be 24:00)
USES = "USES"  # v: how many opens it gives (1-1000)
ROLE = "ROLE"  # vs: "courier" (a delivery code) or "duress" (opens and raises the alarm)
ROLE_COURIER = "courier"
ROLE_DURESS = "duress"
ROLES = (ROLE_COURIER, ROLE_DURESS)
MAX_WINDOWS = 16
MAX_USES = 1000
_WINDOW = re.compile(r"[01]{7} (?:[01]\d|2[0-3]):[0-5]\d-(?:(?:[01]\d|2[0-3]):[0-5]\d|24:00)\Z")

# Safe mode, its own command on the box's channel: the value is the settings' version,
# which the answer echoes; the settings follow as records.
SAFE = "SAFE"
ATTEMPTS = "ATTEMPTS"  # v: wrong PINs in a row before a lockout (0: never locks out)
LOCKOUTS = "LOCKOUTS"  # vs: "60,300,900": seconds of each lockout in turn; the last repeats
DUAL = "DUAL"  # u "s", v: two different PINs within this many seconds open it (0: off)

# Events of a box that keeps rules.
REFUSED = "REFUSED"  # a PIN it holds, refused now (its value names the PIN), with a REASON
LOCKOUT = "LOCKOUT"  # u "s", v: locked out until then after too many wrong PINs
FIRST = "FIRST"  # dual control: the first PIN (its value names it); waiting for a second
LEFT = "LEFT"  # in an OPENED pack: opens the PIN has left
DURESS = "DURESS"  # in an OPENED pack, vb true: opened with a duress PIN
SECOND = "SECOND"  # in an OPENED pack (dual control): the other PIN of the two

# Why a box refused a PIN it holds (REFUSED), or any entry (REJECTED) while locked out.
NOT_YET = "not yet"
OUTSIDE_HOURS = "outside hours"
ENDED = "expired"
USED_UP = "used up"
LOCKED_OUT = "locked out"
REFUSAL_REASONS = (NOT_YET, OUTSIDE_HOURS, ENDED, USED_UP, LOCKED_OUT)


class BoxRules(NamedTuple):
    """A PIN's rules as the box gets them (all optional: none at all is "always")."""

    starts: int | None = None  # epoch seconds, UTC
    ends: int | None = None
    zone: str | None = None  # POSIX TZ rule; required with windows
    windows: tuple[str, ...] = ()  # "1111100 08:00-18:00"
    uses: int | None = None
    role: str | None = None


def _whole_time(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{what} is whole seconds since the epoch")
    return value


def check_window(text) -> str:
    if not isinstance(text, str) or not _WINDOW.match(text) or "1" not in text[:7]:
        raise ValueError('a window is "<7 weekday flags Mon..Sun> HH:MM-HH:MM"')
    start, end = text[8:].split("-")
    if start >= end:
        raise ValueError("a window ends after it starts, on the same day")
    return text


def rule_records(rules: BoxRules | None) -> list[dict]:
    """The records a PIN's rules add to its AUTH pack (none for a PIN that always works)."""
    if rules is None:
        return []
    records: list[dict] = []
    if rules.starts is not None:
        records.append({"n": FROM, "u": "s", "v": _whole_time(rules.starts, "FROM")})
    if rules.ends is not None:
        records.append({"n": UNTIL, "u": "s", "v": _whole_time(rules.ends, "UNTIL")})
    if rules.starts is not None and rules.ends is not None and rules.ends <= rules.starts:
        raise ValueError("UNTIL comes after FROM")
    if rules.windows:
        if len(rules.windows) > MAX_WINDOWS:
            raise ValueError(f"at most {MAX_WINDOWS} windows")
        records.append({"n": ZONE, "vs": _text(rules.zone, "the zone of the windows")})
        records.extend({"n": WINDOW, "vs": check_window(w)} for w in rules.windows)
    if rules.uses is not None:
        uses = rules.uses
        if isinstance(uses, bool) or not isinstance(uses, int) or not 1 <= uses <= MAX_USES:
            raise ValueError(f"USES is 1 to {MAX_USES}")
        records.append({"n": USES, "v": uses})
    if rules.role is not None:
        if rules.role not in ROLES:
            raise ValueError(f"ROLE is one of {ROLES}")
        records.append({"n": ROLE, "vs": rules.role})
    return records


def add_pin_with_rules(g: str, pin: int, rules: BoxRules | None) -> list[dict]:
    pack = add_pin(g, pin) + rule_records(rules)
    validate_pack(pack)
    return pack


def add_pin_sealed_with_rules(g: str, sealed: str, rules: BoxRules | None) -> list[dict]:
    pack = add_pin_sealed(g, sealed) + rule_records(rules)
    validate_pack(pack)
    return pack


def safe_settings(g: str, version: int, *, attempts: int, lockouts: Iterable[int], dual_seconds: int) -> list[dict]:
    """Safe mode's settings, version `version` (the answer echoes it)."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError("a settings version is a whole number from 1")
    steps = [int(_number(s, "a lockout", 1, 86_400)) for s in lockouts]
    pack = [
        _record(g, SAFE, "Settings", "v", version),
        {"n": ATTEMPTS, "v": int(_number(attempts, "attempts", 0, 100))},
        {"n": LOCKOUTS, "vs": ",".join(str(s) for s in steps) or "0"},
        {"n": DUAL, "u": "s", "v": int(_number(dual_seconds, "the dual-control time", 0, 600))},
    ]
    validate_pack(pack)
    return pack


def _pin_named(g: str, name: str, pin_or_ref) -> dict:
    """A record naming a PIN: by its digits (seed) or its reference (sealed)."""
    if isinstance(pin_or_ref, str):
        return _record(g, name, "PIN", "vs", check_ref(pin_or_ref))
    return _record(g, name, "PIN", "v", check_pin(pin_or_ref))


def refused(g: str, pin_or_ref, reason: str) -> list[dict]:
    """A PIN the box holds, refused now, with the reason (REFUSAL_REASONS)."""
    return [_pin_named(g, REFUSED, pin_or_ref), {"n": REASON, "vs": _text(reason, "the reason")}]


def locked_out(g: str, until: int) -> list[dict]:
    """Too many wrong PINs: the keypad takes nothing until `until` (epoch seconds)."""
    return [_record(g, LOCKOUT, "s", "v", _whole_time(until, "the lockout's end"))]


def rejected_locked_out(g: str, attempts: int) -> list[dict]:
    """An entry while locked out: refused without looking at the digits."""
    return rejected(g, attempts) + [{"n": REASON, "vs": LOCKED_OUT}]


def first_of_two(g: str, pin_or_ref) -> list[dict]:
    """Dual control: a first PIN accepted; the box waits for a second, different one."""
    return [_pin_named(g, FIRST, pin_or_ref)]


def opened_with(g: str, pin_or_ref, *, left: int | None = None, duress: bool = False,
                second=None) -> list[dict]:
    """OPENED with a PIN, and what a box that keeps rules adds: opens left, duress, and
    the other PIN of a dual-control opening."""
    pack = [_pin_named(g, OPENED, pin_or_ref)]
    if second is not None:
        record = _pin_named(g, SECOND, second)
        del record["bn"]
        pack.append(record)
    if left is not None:
        pack.append({"n": LEFT, "v": int(_number(left, "opens left", 0, MAX_USES))})
    if duress:
        pack.append({"n": DURESS, "vb": True})
    validate_pack(pack)
    return pack


# --- reading rules and safe settings back (what a box that keeps rules does) ---------------

RULE_NAMES = (FROM, UNTIL, ZONE, WINDOW, USES, ROLE)
SAFE_NAMES = (ATTEMPTS, LOCKOUTS, DUAL)
_LATEST_TIME = 2**40  # far beyond any real time, and exact as a float


class SafeSettings(NamedTuple):
    """Safe mode as a box keeps it."""

    attempts: int  # wrong PINs in a row before a lockout; 0: never
    lockouts: tuple[int, ...]  # seconds of each lockout in turn; the last repeats
    dual_seconds: int  # 0: one PIN opens


def record_name(item: dict) -> str:
    """`n` of a reader message or resolved record (`<id>_<n>`); "" when it has none."""
    return (split_name(item.get("name")) or ("", ""))[1]


def _whole(value, what: str, minimum: int, maximum: int) -> int:
    """A whole number read back (the platform stores numbers as floats) within the range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what} must be a number")
    if not float(value).is_integer() or not minimum <= value <= maximum:
        raise ValueError(f"{what} must be a whole number from {minimum} to {maximum}")
    return int(value)


def _values_by_name(items: Iterable[dict], names: tuple[str, ...]) -> dict[str, list]:
    found: dict[str, list] = {}
    for item in items:
        name = record_name(item)
        if name in names:
            found.setdefault(name, []).append(message_value(item))
    for name, values in found.items():
        if name != WINDOW and len(values) > 1:
            raise ValueError(f"more than one {name} record")
    return found


def read_rules(items: Iterable[dict]) -> BoxRules | None:
    """The rules an AUTH pack carries, from its records as read back (reader messages or
    resolved records of that one pack); None when it carries none (a PIN that always works).
    Records of other names (the AUTH itself, CTR, MAC, names not known yet) are passed over.
    ValueError for rules a box cannot keep."""
    found = _values_by_name(items, RULE_NAMES)
    if not found:
        return None
    starts = _whole(found[FROM][0], FROM, 1, _LATEST_TIME) if FROM in found else None
    ends = _whole(found[UNTIL][0], UNTIL, 1, _LATEST_TIME) if UNTIL in found else None
    if starts is not None and ends is not None and ends <= starts:
        raise ValueError("UNTIL comes after FROM")
    windows = tuple(sorted({check_window(w) for w in found.get(WINDOW, [])}))
    if len(windows) > MAX_WINDOWS:
        raise ValueError(f"at most {MAX_WINDOWS} windows")
    zone = _text(found[ZONE][0], "the zone of the windows") if ZONE in found else None
    if windows and zone is None:
        raise ValueError("windows need a ZONE")
    uses = _whole(found[USES][0], USES, 1, MAX_USES) if USES in found else None
    role = found[ROLE][0] if ROLE in found else None
    if role is not None and role not in ROLES:
        raise ValueError(f"ROLE is one of {ROLES}")
    return BoxRules(starts=starts, ends=ends, zone=zone, windows=windows, uses=uses, role=role)


def settings_version(value) -> int | None:
    """The version of a SAFE as read back (a whole number from 1, like an UNLOCK's deadline), or None."""
    return unlock_deadline(value)


def read_safe_settings(items: Iterable[dict]) -> SafeSettings:
    """Safe mode's settings from the records of a SAFE pack as read back; ValueError unless
    all three are there and in range (the ranges `safe_settings` builds)."""
    found = _values_by_name(items, SAFE_NAMES)
    missing = [name for name in SAFE_NAMES if name not in found]
    if missing:
        raise ValueError("no " + ", ".join(missing))
    text = found[LOCKOUTS][0]
    if not isinstance(text, str) or not re.fullmatch(r"\d{1,5}(?:,\d{1,5})*", text):
        raise ValueError('LOCKOUTS is seconds separated by commas ("60,300,900")')
    steps = tuple(int(step) for step in text.split(","))
    if any(step > 86_400 for step in steps):
        raise ValueError("a lockout is at most a day")
    return SafeSettings(attempts=_whole(found[ATTEMPTS][0], ATTEMPTS, 0, 100), lockouts=steps,
                        dual_seconds=_whole(found[DUAL][0], DUAL, 0, 600))
