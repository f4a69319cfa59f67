"""The gateway firmware as a pure state machine: reader messages in, packs to publish out.

No I/O and no clock here: the caller passes `now`, reads the channels and publishes
the outbox (see `portal.devices.virtual_gateway`). Everything the firmware knows lives
in one JSON-able dict, so a restart that reloads it loses nothing:

    {"version", "thing_id", "controller", "connected", "registered",
     "pending": [MK, ...],                       # ADDed, not yet bound to a channel
     "mailboxes": {MK: {"channel", "pins": [1234, ...], "refs": {"1234": ref},  # sealed
                        "open", "close_at", "wrong_attempts", "battery", "battery_reported_at",
                        # since version 2, kept by a sealed box only ("Rules the box enforces"):
                        "rules": {"1234": {"starts", "ends", "zone", "windows", "uses", "role"}},
                        "used": {"1234": opens used},
                        "safe": {"version", "attempts", "lockouts", "dual"} | None,
                        "strikes", "lockouts", "locked_until", "first": {"pin", "at"} | None}},
     "cursors": {channel: {"time": float, "seen": {digest: time, ...}}},
     "outbox": [{"channel", "pack", "queued_at", "attempts"}],
     "last_heartbeat_at": float | None,
     "counters": {"in": {channel: int}, "out": {channel: int}}}   # sealed level

A "sealed" gateway (docs/device-protocol.md) opens sealed PINs with its private key,
remembers each PIN's reference and names PINs only by it, accepts a command only with a
MAC under the portal's command key and a counter above the last one on its channel, and
adds a counter and a MAC to everything it publishes. It also keeps the rules an AUTH
carries (from-until, weekly windows in the zone's POSIX TZ rule, a number of uses, a role)
and safe mode (lockout after wrong PINs, dual control) and enforces them with its own clock
and counters, so they hold while the portal is out of reach. A seed gateway ignores them.
"""
import copy
import logging
import math
from datetime import datetime

from portal import crypto
from portal.devices import posix_tz
from portal.streamiot import messages as m

log = logging.getLogger(__name__)

# 2: per box "rules", "used", "safe", "strikes", "lockouts", "locked_until", "first" (a
# version-1 state loads with none of them: no rules, no safe mode).
STATE_VERSION = 2
PIN_SLOTS = 32
MAILBOX_SLOTS = 16
OPEN_SECONDS = 5.0
BATTERY_SECONDS = 3600.0
HEARTBEAT_SECONDS = 30.0
# Each read starts this long before the newest message applied: the platform writes
# messages to the reader's database asynchronously, so one stamped a little earlier
# may show up after a later one. Digests of what was applied stop any repeat.
READ_LOOKBACK_SECONDS = 10.0

GATEWAY_CHANNEL_COMMANDS = (m.CONNECT, m.REGISTER, m.ADD, m.MAILBOX, m.DELETE, m.DESTRUCT, m.REKEY)
MAILBOX_CHANNEL_COMMANDS = (m.AUTH, m.UNAUTH, m.UNLOCK, m.SAFE)
# Commands only a sealed gateway knows; a seed gateway ignores them like any unknown name.
SEALED_ONLY_COMMANDS = (m.SAFE,)

# Reasons a device gives in a Failed answer (the portal shows them to the household).
SLOTS_FULL = "slots full"
MAILBOX_SLOTS_FULL = "mailbox slots full"
KEY_MISMATCH = "key mismatch"
INVALID_PIN = "invalid PIN"
INVALID_KEY = "invalid public key"
NOT_ADDRESSED = "not addressed to this gateway"
WRONG_CHANNEL = "wrong channel"
CHANNEL_IN_USE = "channel serves another mailbox"
EXPIRED = m.EXPIRED  # an UNLOCK read after its deadline: the box stays shut
INVALID_DEADLINE = "invalid deadline"
SEALED_PIN_UNREADABLE = "cannot open the sealed PIN"
SEALED_KEYS_UNREADABLE = "cannot open the sealed keys"
UNKNOWN_REF = "unknown"  # an OPENED of a PIN whose reference this box never got
INVALID_RULES = "invalid rules"
INVALID_SAFE = "invalid safe settings"
INVALID_VERSION = "invalid version"

# What `keypad` returns besides "opened" and "rejected".
LOCKED_OUT = f"rejected: {m.LOCKED_OUT}"  # typed while locked out: the digits were not looked at
FIRST_OF_TWO = "first of two"  # dual control: a valid first PIN; a second, different one opens


def refused(reason: str) -> str:
    """What `keypad` returns for a PIN the box holds but refuses now ("refused: outside hours")."""
    return f"refused: {reason}"


# What each box keeps for rules and safe mode, as it starts (and as a version-1 state gets it).
_BOX_RULE_STATE: dict = {"refs": {}, "rules": {}, "used": {}, "safe": None, "strikes": 0, "lockouts": 0,
                         "locked_until": None, "first": None}


class UnknownMailbox(LookupError):
    """A keypad of a mailbox this gateway does not serve (never registered, or deleted)."""


def empty_state(thing_id: str) -> dict:
    return {
        "version": STATE_VERSION,
        "thing_id": thing_id,
        "controller": None,
        "connected": False,
        "registered": False,
        "pending": [],
        "mailboxes": {},
        "cursors": {},
        "outbox": [],
        "last_heartbeat_at": None,
        "counters": {"in": {}, "out": {}},
    }


def upgrade_state(state: dict) -> dict:
    """A state saved by an earlier firmware, in this one's shape (in place)."""
    state.setdefault("counters", {"in": {}, "out": {}})
    for box in state.get("mailboxes", {}).values():
        for key, value in _BOX_RULE_STATE.items():
            box.setdefault(key, copy.deepcopy(value))
    state["version"] = STATE_VERSION
    return state


def in_windows(windows, zone_rule: str, now: float) -> bool:
    """Whether `now` falls in one of the weekly windows ("1111100 08:00-18:00", local time
    under the POSIX TZ rule `zone_rule`): from inclusive, until exclusive."""
    local = datetime.fromtimestamp(now, posix_tz.zone(zone_rule))
    minute = local.hour * 60 + local.minute
    for window in windows:
        days, span = window.split(" ")
        start, end = (int(t[:2]) * 60 + int(t[3:]) for t in span.split("-"))
        if days[local.weekday()] == "1" and start <= minute < end:
            return True
    return False


def _pin_value(value) -> int | None:
    """A PIN from a reader value (stored as a float by the platform), or None if invalid."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        return None
    try:
        return m.check_pin(value)
    except ValueError:
        return None


def _packs(fresh: list) -> dict[tuple, list]:
    """The messages of a read grouped into packs: records of one pack share the time the
    platform received it and its publisher. Values: [(digest, message), ...]."""
    packs: dict[tuple, list] = {}
    for time, digest, message in fresh:
        packs.setdefault((time, message.get("publisher")), []).append((digest, message))
    return packs


def _key_value(value) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


class Firmware:
    """What a gateway does with each message and key press; it only ever changes `state`."""

    def __init__(
        self,
        state: dict,
        *,
        thing_id: str,
        channel_id: str,
        public_key: str,
        controller: str | None = None,
        pin_slots: int = PIN_SLOTS,
        mailbox_slots: int = MAILBOX_SLOTS,
        open_seconds: float = OPEN_SECONDS,
        battery_seconds: float = BATTERY_SECONDS,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
        protocol: str = m.SEED,
        private_key: str | None = None,
        portal_public_key: str | None = None,
    ):
        self.state = upgrade_state(state)
        self._settings_thing_id = thing_id
        self.protocol = protocol
        self.private_key = private_key
        # The link keys (sealed): None when this gateway lacks its private key or the
        # portal's public key, and then it can neither trust nor be trusted.
        self.command_key = self.report_key = None
        if protocol == m.SEALED and private_key and portal_public_key:
            self.command_key = crypto.link_key(private_key, portal_public_key, "command")
            self.report_key = crypto.link_key(private_key, portal_public_key, "report")
        self.channel_id = channel_id
        self.public_key = public_key.strip()
        # The portal thing, when the settings name it; else learnt from the first CONNECT.
        self.fixed_controller = controller
        self.pin_slots = pin_slots
        self.mailbox_slots = mailbox_slots
        self.open_seconds = open_seconds
        self.battery_seconds = battery_seconds
        self.heartbeat_seconds = heartbeat_seconds

    # --- who it is ------------------------------------------------------------------

    @property
    def thing_id(self) -> str:
        """Its platform thing: the one in its settings, or the one a REKEY gave it since."""
        identity = self.state.get("identity") or {}
        return identity.get("thing_id") or self._settings_thing_id

    def thing_key(self, settings_key: str) -> str:
        """The key to publish and read with: the REKEY's once one was applied."""
        identity = self.state.get("identity") or {}
        return identity.get("thing_key") or settings_key

    # --- what to read ----------------------------------------------------------

    @property
    def controller(self) -> str | None:
        return self.fixed_controller or self.state["controller"]

    def channels(self) -> list[str]:
        """The gateway channel first, then the channel of every registered mailbox."""
        found = [self.channel_id]
        for box in self.state["mailboxes"].values():
            if box["channel"] not in found:
                found.append(box["channel"])
        return found

    def read_filters(self, channel: str) -> dict:
        """Reader query for what is new on a channel: from the cursor, from the portal only."""
        filters = {}
        cursor = self.state["cursors"].get(channel)
        if cursor and cursor["time"] is not None:
            filters["from"] = max(0.0, cursor["time"] - READ_LOOKBACK_SECONDS)
        if self.controller:
            filters["publisher"] = self.controller
        return filters

    # --- messages in -------------------------------------------------------------

    def receive(self, channel: str, reader_messages: list[dict], now: float) -> int:
        """Apply the messages not applied before, oldest first; return how many were applied.

        `reader_messages` may overlap earlier reads and repeat itself (reads look back a
        little, and pages shift while new messages arrive): the cursor, the newest time
        applied plus the digests of what was applied since shortly before it, makes
        every message count once.
        """
        cursor = self.state["cursors"].setdefault(channel, {"time": None, "seen": {}})
        seen = cursor["seen"]
        fresh, batch = [], set()
        # The reader answers newest first; ties keep the platform's order, reversed.
        for message in reversed(reader_messages):
            time = message.get("time") if isinstance(message, dict) else None
            if isinstance(time, bool) or not isinstance(time, (int, float)):
                log.warning("virtual gateway %s: skipping a message without a time", self.thing_id)
                continue
            digest = m.message_digest(message)
            if digest in batch or digest in seen:
                continue
            batch.add(digest)
            if cursor["time"] is not None and time < cursor["time"] - READ_LOOKBACK_SECONDS:
                continue  # older than anything still remembered: applied long ago
            fresh.append((float(time), digest, message))
        fresh.sort(key=lambda item: item[0])  # stable: ties stay in platform order

        packs = _packs(fresh)
        accepted = self._authentic(channel, packs) if self.protocol == m.SEALED else None
        applied = 0
        for time, digest, message in fresh:
            seen[digest] = time
            if cursor["time"] is None or time > cursor["time"]:
                cursor["time"] = time
            if accepted is not None and digest not in accepted:
                continue
            # Sealed: the other records of its pack (an AUTH's rules, SAFE's settings).
            pack = ([msg for d, msg in packs[(time, message.get("publisher"))] if d in accepted]
                    if accepted is not None else [])
            try:
                if self._apply(channel, message, now, pack):
                    applied += 1
            except Exception:  # noqa: BLE001  (a message it cannot handle must not block the rest)
                log.exception("virtual gateway %s: could not apply %r", self.thing_id, message.get("name"))
        if cursor["time"] is not None:
            horizon = cursor["time"] - READ_LOOKBACK_SECONDS
            cursor["seen"] = {d: t for d, t in seen.items() if t >= horizon}
        return applied

    def _authentic(self, channel: str, packs: dict[tuple, list]) -> set[str]:
        """Sealed: the digests of the messages whose pack (same time and publisher) has a MAC
        under the command key and a counter above the last accepted on this channel; packs
        are taken in the order received, each counter once."""
        accepted: set[str] = set()
        last = self.state["counters"]["in"]
        for _key, items in sorted(packs.items(), key=lambda kv: kv[0][0]):
            counter = (m.verify(channel, [msg for _d, msg in items], self.command_key)
                       if self.command_key is not None else None)
            if counter is None or counter <= last.get(channel, 0):
                log.warning("virtual gateway %s: ignored a command on %s that is not authentic (%s)",
                            self.thing_id, channel, "no valid MAC" if counter is None else "replayed counter")
                continue
            last[channel] = counter
            accepted.update(d for d, msg in items
                            if (m.split_name(msg.get("name")) or ("", ""))[1] not in (m.CTR, m.MAC))
        return accepted

    def _trusted(self, channel: str, publisher, base: str, name: str) -> bool:
        if publisher == self.thing_id:
            return False  # our own answers and events
        if self.controller:
            return publisher == self.controller
        # Pairing: the first CONNECT on the gateway channel names the portal thing.
        if (
            channel == self.channel_id
            and name == m.CONNECT
            and base == self.thing_id
            and isinstance(publisher, str)
        ):
            self.state["controller"] = publisher
            log.info("virtual gateway %s: paired with portal thing %s", self.thing_id, publisher)
            return True
        return False

    def _apply(self, channel: str, message: dict, now: float, pack: list[dict]) -> bool:
        parts = m.split_name(message.get("name"))
        if parts is None:
            return False
        base, name = parts
        if message.get("unit") in (m.DONE, m.FAILED) or name == m.REASON:
            return False  # answers are for the portal, never commands
        if name not in GATEWAY_CHANNEL_COMMANDS + MAILBOX_CHANNEL_COMMANDS:
            return False
        if name in SEALED_ONLY_COMMANDS and self.protocol != m.SEALED:
            return False  # a name the seed does not know
        if not self._trusted(channel, message.get("publisher"), base, name):
            return False
        record = m.record_from_message(message, base)
        if record is None or not any(f in record for f in m.STORED_FIELDS):
            return False
        if (name == m.AUTH or name == m.UNAUTH) and "v" in record:
            pin = _pin_value(record.get("v"))
            if pin is not None:
                record["v"] = pin  # the platform stores numbers as floats; answer the PIN as sent
        if name in (m.UNLOCK, m.SAFE):
            number = (m.unlock_deadline if name == m.UNLOCK else m.settings_version)(record.get("v"))
            if number is not None:
                record["v"] = number  # answer the deadline or version as sent

        on_gateway_channel = channel == self.channel_id
        if (name in GATEWAY_CHANNEL_COMMANDS) != on_gateway_channel:
            self._answer(channel, record, now, WRONG_CHANNEL)
            return True
        expected_base = {m.DESTRUCT: self.channel_id, m.MAILBOX: base}.get(name, self.thing_id)
        if base != expected_base:
            self._answer(channel, record, now, NOT_ADDRESSED)
            return True
        handler = getattr(self, f"_on_{name.lower()}")
        failure = handler(channel, base, record, now, pack)
        self._answer(channel, record, now, failure)
        if name == m.UNLOCK and failure is None:
            # Done first (the command was applied), then the box reports that it opened.
            self._open(self._box_on(channel), m.opened_remote(self.thing_id), now)
        return True

    def _answer(self, channel: str, record: dict, now: float, failure: str | None) -> None:
        self._publish(channel, m.reply(record, failure is None, failure), now)
        log.info(
            "virtual gateway %s: %s on %s -> %s",
            self.thing_id,
            record["n"],
            "gateway channel" if channel == self.channel_id else f"mailbox channel {channel}",
            f"Failed ({failure})" if failure else "Done",
        )

    # Each handler applies one command and returns None (Done) or the reason it failed.

    def _on_connect(self, channel, base, record, now, pack):
        self.state["connected"] = True

    def _on_register(self, channel, base, record, now, pack):
        self.state["registered"] = True

    def _on_add(self, channel, base, record, now, pack):
        key = _key_value(record.get("vs"))
        if key is None:
            return INVALID_KEY
        if key in self.state["mailboxes"] or key in self.state["pending"]:
            return None
        if self._mailbox_count() >= self.mailbox_slots:
            return MAILBOX_SLOTS_FULL
        self.state["pending"].append(key)

    def _on_mailbox(self, channel, base, record, now, pack):
        key = _key_value(record.get("vs"))
        if key is None:
            return INVALID_KEY
        mailbox_channel = base
        if mailbox_channel == self.channel_id:
            return WRONG_CHANNEL
        for other_key, box in self.state["mailboxes"].items():
            if box["channel"] == mailbox_channel and other_key != key:
                return CHANNEL_IN_USE
        boxes = self.state["mailboxes"]
        if key in boxes:
            boxes[key]["channel"] = mailbox_channel
            return None
        # Registering a key that was never ADDed is accepted: ADD and Mailbox may share a
        # timestamp in the reader, and the portal always sends both.
        if key in self.state["pending"]:
            self.state["pending"].remove(key)
        elif self._mailbox_count() >= self.mailbox_slots:
            return MAILBOX_SLOTS_FULL
        boxes[key] = {
            "channel": mailbox_channel,
            "pins": [],
            "open": False,
            "close_at": None,
            "wrong_attempts": 0,
            "battery": 100,
            "battery_reported_at": None,
            **copy.deepcopy(_BOX_RULE_STATE),
        }

    def _on_delete(self, channel, base, record, now, pack):
        key = _key_value(record.get("vs"))
        if key is None:
            return INVALID_KEY
        if key in self.state["pending"]:
            self.state["pending"].remove(key)
        self.state["mailboxes"].pop(key, None)

    def _on_destruct(self, channel, base, record, now, pack):
        if _key_value(record.get("vs")) != self.public_key:
            return KEY_MISMATCH
        # A factory reset: forget everything, but keep the cursors and counters (so nothing
        # is applied twice) and the outbox (so this very answer still goes out).
        kept = {"cursors": self.state["cursors"], "outbox": self.state["outbox"],
                "counters": self.state.get("counters", {"in": {}, "out": {}}),
                "identity": self.state.get("identity")}
        self.state.clear()
        self.state.update(empty_state(self.thing_id), **kept)
        log.info("virtual gateway %s: destructed, state wiped", self.thing_id)

    def _pin_of(self, record) -> tuple[int | None, str | None, str | None]:
        """(PIN, reference, failure) of an AUTH/UNAUTH: sealed in `vs` (then the answer
        echoes the reference, never the sealed blob), or the seed's digits in `v`."""
        if "vs" in record:
            if self.private_key is None:
                return None, None, SEALED_PIN_UNREADABLE
            try:
                sealed_pin, ref = m.open_pin(self.private_key, record["vs"])
            except ValueError:
                return None, None, SEALED_PIN_UNREADABLE
            record["vs"] = ref
            return sealed_pin, ref, None
        pin = _pin_value(record.get("v"))
        return pin, None, None if pin is not None else INVALID_PIN

    def _on_rekey(self, channel, base, record, now, pack):
        """New platform keys (sealed level): from now on it publishes and reads as the new
        thing; its answer already goes out through it, echoing the new thing id."""
        if self.private_key is None:
            return SEALED_KEYS_UNREADABLE
        try:
            thing_id, thing_key = m.open_identity(self.private_key, record.get("vs"))
        except ValueError:
            return SEALED_KEYS_UNREADABLE
        self.state["identity"] = {"thing_id": thing_id, "thing_key": thing_key}
        record["vs"] = thing_id
        log.info("virtual gateway %s: new platform keys, now thing %s", self._settings_thing_id, thing_id)

    def _on_auth(self, channel, base, record, now, pack):
        pin, ref, failure = self._pin_of(record)
        if pin is None:
            return failure
        rules = None
        if self.protocol == m.SEALED:  # a seed box ignores the rule records
            try:
                rules = m.read_rules(pack)
                if rules is not None and rules.zone is not None:
                    posix_tz.zone(rules.zone)  # a zone it cannot evaluate is refused now, not at the keypad
            except ValueError:
                return INVALID_RULES
        box = self._box_on(channel)
        pins = box["pins"]
        if pin not in pins and len(pins) >= self.pin_slots:
            return SLOTS_FULL
        if ref is not None:
            box.setdefault("refs", {})[str(pin)] = ref
        if pin not in pins:
            pins.append(pin)
        if self.protocol == m.SEALED:
            self._keep_rules(box, pin, rules)

    def _keep_rules(self, box: dict, pin: int, rules: m.BoxRules | None) -> None:
        """A PIN's rules replace those it had; its count of opens stays while USES does."""
        key = str(pin)
        before = box["rules"].pop(key, None) or {}
        if rules is not None:
            box["rules"][key] = {**rules._asdict(), "windows": list(rules.windows)}
        if rules is None or rules.uses is None or rules.uses != before.get("uses"):
            box["used"].pop(key, None)

    def _on_unauth(self, channel, base, record, now, pack):
        pin, _ref, failure = self._pin_of(record)
        if pin is None:
            return failure
        box = self._box_on(channel)
        if pin in box["pins"]:
            box["pins"].remove(pin)
        for table in ("refs", "rules", "used"):
            box.get(table, {}).pop(str(pin), None)
        if (box.get("first") or {}).get("pin") == pin:
            box["first"] = None

    def _on_safe(self, channel, base, record, now, pack):
        """Safe mode's settings for this box (sealed only); the answer echoes the version."""
        if m.settings_version(record.get("v")) is None:
            return INVALID_VERSION
        try:
            settings = m.read_safe_settings(pack)
        except ValueError:
            return INVALID_SAFE
        box = self._box_on(channel)
        box["safe"] = {"version": record["v"], "attempts": settings.attempts,
                       "lockouts": list(settings.lockouts), "dual": settings.dual_seconds}
        if not settings.attempts:
            box["locked_until"], box["strikes"] = None, 0
        if not settings.dual_seconds:
            box["first"] = None

    def _on_unlock(self, channel, base, record, now, pack):
        # Only until its deadline: an unlock read late never opens the box by surprise.
        deadline = m.unlock_deadline(record.get("v"))
        if deadline is None:
            return INVALID_DEADLINE
        if now > deadline:
            return EXPIRED
        return None  # opening happens after the answer is queued (see _apply)

    # --- the keypad and the clock -------------------------------------------------

    def keypad(self, mailbox_public_key: str, digits, now: float) -> str:
        """A person types digits on a mailbox (the digits stay here). Returns "opened",
        "rejected" (not a PIN it holds), `LOCKED_OUT` (typed while locked out),
        `refused(reason)` (a PIN it holds, refused now by its rules) or `FIRST_OF_TWO`."""
        box = self.state["mailboxes"].get(_key_value(mailbox_public_key) or "")
        if box is None:
            raise UnknownMailbox("this gateway serves no mailbox with that public key")
        if box["locked_until"] is not None and now < box["locked_until"]:
            box["wrong_attempts"] += 1  # counted, but the digits are not even looked at
            self._publish(box["channel"], m.rejected_locked_out(self.thing_id, box["wrong_attempts"]), now)
            return LOCKED_OUT
        text = str(digits).strip()
        if not (text.isascii() and text.isdigit() and text[0] != "0" and int(text) in box["pins"]):
            return self._wrong_pin(box, now)
        pin = int(text)
        if self.protocol != m.SEALED:
            box["wrong_attempts"] = 0
            self._open(box, m.opened_with_pin(self.thing_id, pin), now)
            return "opened"
        reason = self._refusal(box, pin, now)
        if reason is not None:
            self._publish(box["channel"], m.refused(self.thing_id, self._ref(box, pin), reason), now)
            return refused(reason)
        duress = (box["rules"].get(text) or {}).get("role") == m.ROLE_DURESS
        dual = (box["safe"] or {}).get("dual") or 0
        first = box["first"]
        if first is not None and (now - first["at"] > dual or first["pin"] not in box["pins"]):
            first = box["first"] = None  # too late, or taken off the box since: forgotten
        if dual and not duress and (first is None or first["pin"] == pin):
            box["first"] = {"pin": pin, "at": now}  # the same PIN again only starts the wait again
            self._publish(box["channel"], m.first_of_two(self.thing_id, self._ref(box, pin)), now)
            return FIRST_OF_TWO
        second = first["pin"] if dual and not duress and first is not None else None
        self._open_with_pin(box, pin, second, duress, now)
        return "opened"

    def _wrong_pin(self, box: dict, now: float) -> str:
        """Digits it does not hold: REJECTED with the count in a row, and with safe mode,
        after ATTEMPTS of them a lockout, longer each time until a PIN opens the box."""
        box["wrong_attempts"] += 1
        self._publish(box["channel"], m.rejected(self.thing_id, box["wrong_attempts"]), now)
        safe = box["safe"]
        if self.protocol != m.SEALED or not safe or not safe["attempts"]:
            return "rejected"
        box["strikes"] += 1
        if box["strikes"] >= safe["attempts"]:
            steps = safe["lockouts"]
            seconds = steps[min(box["lockouts"], len(steps) - 1)]
            box["strikes"] = 0
            box["lockouts"] += 1
            if seconds > 0:
                box["locked_until"] = math.ceil(now) + seconds
                self._publish(box["channel"], m.locked_out(self.thing_id, box["locked_until"]), now)
        return "rejected"

    def _refusal(self, box: dict, pin: int, now: float) -> str | None:
        """Why a PIN the box holds may not open it now (m.REFUSAL_REASONS), or None."""
        rules = box["rules"].get(str(pin))
        if not rules:
            return None
        if rules["ends"] is not None and now >= rules["ends"]:
            return m.ENDED
        if rules["starts"] is not None and now < rules["starts"]:
            return m.NOT_YET
        if rules["uses"] is not None and box["used"].get(str(pin), 0) >= rules["uses"]:
            return m.USED_UP
        if rules["windows"] and not in_windows(rules["windows"], rules["zone"], now):
            return m.OUTSIDE_HOURS
        return None

    def _open_with_pin(self, box: dict, pin: int, second: int | None, duress: bool, now: float) -> None:
        """Sealed: OPENED naming the PIN, with the other PIN of a dual-control opening, the
        opens it has left and the duress flag. Every PIN that took part uses one open."""
        box["wrong_attempts"] = box["strikes"] = box["lockouts"] = 0
        box["first"] = None
        for used in (pin, second):
            if used is not None and (box["rules"].get(str(used)) or {}).get("uses") is not None:
                box["used"][str(used)] = box["used"].get(str(used), 0) + 1
        uses = (box["rules"].get(str(pin)) or {}).get("uses")
        left = None if uses is None else max(0, uses - box["used"][str(pin)])
        pack = m.opened_with(self.thing_id, self._ref(box, pin), left=left, duress=duress,
                             second=None if second is None else self._ref(box, second))
        self._open(box, pack, now)

    def _ref(self, box: dict, pin: int) -> str:
        """How a sealed box names a PIN: by the reference it came with."""
        return box.get("refs", {}).get(str(pin), UNKNOWN_REF)

    def tick(self, now: float) -> None:
        """Time passing: boxes close after `open_seconds`, batteries report now and then."""
        for box in self.state["mailboxes"].values():
            if box["locked_until"] is not None and now >= box["locked_until"]:
                box["locked_until"] = None  # a lockout ends by itself
            first, dual = box["first"], (box["safe"] or {}).get("dual") or 0
            if first is not None and now - first["at"] > dual:
                box["first"] = None  # no second PIN in time: the first is forgotten
            if box["open"] and box["close_at"] is not None and now >= box["close_at"]:
                box["open"], box["close_at"] = False, None
                self._publish(box["channel"], m.closed(self.thing_id), now)
            reported = box["battery_reported_at"]
            if reported is None or now - reported >= self.battery_seconds:
                box["battery_reported_at"] = now
                self._publish(box["channel"], m.battery(self.thing_id, box["battery"]), now)

    def heartbeat_due(self, now: float) -> bool:
        last = self.state["last_heartbeat_at"]
        return last is None or now - last >= self.heartbeat_seconds or now < last

    def heartbeat_sent(self, now: float) -> None:
        self.state["last_heartbeat_at"] = now

    # --- helpers -------------------------------------------------------------------

    def _open(self, box: dict, pack: list[dict], now: float) -> None:
        box["open"] = True
        box["close_at"] = now + self.open_seconds
        box["battery"] = max(1, box["battery"] - 1)  # every opening drains the battery a little
        self._publish(box["channel"], pack, now)

    def sign(self, channel: str, pack: list[dict]) -> list[dict]:
        """A pack ready to go out on `channel`: sealed, with the channel's next counter and
        its MAC; as it is on the seed level (or without the keys to sign with)."""
        if self.protocol != m.SEALED or self.report_key is None:
            return pack
        out = self.state["counters"]["out"]
        out[channel] = out.get(channel, 0) + 1
        return m.signed(pack, channel, out[channel], self.report_key)

    def _publish(self, channel: str, pack: list[dict], now: float) -> None:
        pack = self.sign(channel, pack)
        self.state["outbox"].append({"channel": channel, "pack": pack, "queued_at": now, "attempts": 0})

    def _box_on(self, channel: str) -> dict:
        for box in self.state["mailboxes"].values():
            if box["channel"] == channel:
                return box
        raise UnknownMailbox(channel)  # not reached: only registered channels are read

    def _mailbox_count(self) -> int:
        return len(self.state["mailboxes"]) + len(self.state["pending"])

    def snapshot(self) -> dict:
        """What the box holds, without PIN digits."""
        return {
            "thing_id": self.thing_id,
            "channel_id": self.channel_id,
            "connected": self.state["connected"],
            "registered": self.state["registered"],
            "paired_with": self.controller,
            "pending_mailboxes": list(self.state["pending"]),
            "mailboxes": [
                {
                    "public_key": key,
                    "channel_id": box["channel"],
                    "pins": len(box["pins"]),
                    "open": box["open"],
                    "state": "open" if box["open"] else "closed",
                    "battery": box["battery"],
                    "wrong_attempts": box["wrong_attempts"],
                    "pins_with_rules": len(box["rules"]),
                    "locked_until": box["locked_until"],
                    "waiting_for_second_pin": box["first"] is not None,
                    "safe": None if box["safe"] is None else {
                        "version": box["safe"]["version"], "attempts": box["safe"]["attempts"],
                        "lockouts": list(box["safe"]["lockouts"]), "dual_seconds": box["safe"]["dual"]},
                }
                for key, box in self.state["mailboxes"].items()
            ],
            "unsent": len(self.state["outbox"]),
            "last_heartbeat_at": self.state["last_heartbeat_at"],
        }
