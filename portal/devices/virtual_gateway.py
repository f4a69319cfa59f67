"""A virtual gateway: the firmware of DEVICE_PROTOCOL.md talking plain StreamIoT HTTP.

It uses nothing but its own thing key: it reads its gateway channel and the channels
of the mailboxes it was told about, applies what the portal thing sent, publishes its
answers and events, and keeps everything in a state file (see `firmware` and `store`).
Every operation reloads that file under its lock, so a running gateway and a one-off
`keypad` command (another process) can share it.
"""
import contextlib
import logging
import threading
import time
from typing import TypedDict

from portal.crypto import public_from_private
from portal.devices import firmware as fw
from portal.devices.firmware import UnknownMailbox  # noqa: F401  (part of this module's API)
from portal.devices.store import StateFile
from portal.streamiot import messages
from portal.streamiot.errors import StreamIoTError, Unavailable

log = logging.getLogger(__name__)

READ_PAGE = 500  # the reader allows up to 1000 per page
MAX_READ_PAGES = 200
# A publication the platform keeps refusing (say, the channel was deleted) is given up
# after this many attempts spread over at least this long.
GIVE_UP_ATTEMPTS = 10
GIVE_UP_SECONDS = 600.0

SETTINGS_REQUIRED = ("thing_id", "thing_key", "channel_id")


class _FirmwareOptions(TypedDict):
    """What every Firmware this gateway builds is given besides its state and identity."""

    controller: str | None
    protocol: str
    private_key: str | None
    portal_public_key: str | None
    pin_slots: int
    open_seconds: float
    battery_seconds: float
    heartbeat_seconds: float


class InvalidSettings(ValueError):
    """A device settings file without what a gateway needs to talk to StreamIoT."""


def parse_settings(settings: dict) -> dict:
    """The settings with `public_key` always present (derived from `private_key` if need be)."""
    if not isinstance(settings, dict):
        raise InvalidSettings("the settings must be a JSON object")
    missing = [k for k in SETTINGS_REQUIRED if not isinstance(settings.get(k), str) or not settings[k]]
    if missing:
        raise InvalidSettings("the settings lack " + ", ".join(missing))
    parsed = dict(settings)
    public_key = settings.get("public_key")
    if not public_key and settings.get("private_key"):
        try:
            public_key = public_from_private(settings["private_key"])
        except ValueError as exc:
            raise InvalidSettings("the private_key is not an X25519 private key") from exc
    if not isinstance(public_key, str) or not public_key.strip():
        raise InvalidSettings("the settings lack public_key")
    parsed["public_key"] = public_key.strip()
    return parsed


class VirtualGateway:
    """One gateway. Thread-safe; several processes may share its state file."""

    def __init__(
        self,
        settings: dict,
        state_path,
        streamiot,
        *,
        heartbeat_seconds: float = fw.HEARTBEAT_SECONDS,
        open_seconds: float = fw.OPEN_SECONDS,
        battery_seconds: float = fw.BATTERY_SECONDS,
        pin_slots: int = fw.PIN_SLOTS,
        clock=time.time,
    ):
        self.settings = parse_settings(settings)
        self.thing_id = self.settings["thing_id"]
        self.channel_id = self.settings["channel_id"]
        self.public_key = self.settings["public_key"]
        self.state_file = StateFile(state_path)
        self.streamiot = streamiot
        self._key = self.settings["thing_key"]
        self._options = _FirmwareOptions(
            controller=self.settings.get("portal_thing_id") or None,
            # Settings files from before the sealed level name no protocol: the seed's.
            protocol=self.settings.get("protocol") or messages.SEED,
            private_key=self.settings.get("private_key") or None,
            portal_public_key=self.settings.get("portal_public_key") or None,
            pin_slots=pin_slots,
            open_seconds=open_seconds,
            battery_seconds=battery_seconds,
            heartbeat_seconds=heartbeat_seconds,
        )
        self._clock = clock
        self._booted = clock()
        self._lock = threading.RLock()
        self._problems: list[str] = []
        self._reported: list[str] = []

    def __repr__(self) -> str:
        return f"<VirtualGateway {self.thing_id}>"

    # --- the public operations ------------------------------------------------------

    def step(self) -> int:
        """One round: close boxes, read every channel, apply, answer, heartbeat.

        Returns how many commands were applied. StreamIoT failures are logged and the
        work they blocked is done by a later step; nothing is lost in between.
        """
        with self._firmware() as (firmware, save):
            firmware.tick(self._clock())
            save()
            applied = self._read_and_apply(firmware, save)
            self._flush(firmware, save)
            self._heartbeat(firmware, save)
            self._report_problems()
            return applied

    def keypad(self, mailbox_public_key: str, digits, *, publish_now: bool = True) -> str:
        """Digits typed on a mailbox's keypad: "opened", "rejected", or on the sealed level also
        "refused: <reason>", "rejected: locked out" or "first of two" (see `Firmware.keypad`;
        UnknownMailbox if none). The box enforces a PIN's rules with its own clock, so they hold
        while StreamIoT is out of reach. The box's report is queued in the state file; with
        publish_now=False it goes out at the next step() instead (the portal's keypad, so a web
        request never waits on StreamIoT)."""
        with self._firmware() as (firmware, save):
            result = firmware.keypad(mailbox_public_key, digits, self._clock())
            save()
            if publish_now:
                self._flush(firmware, save)
                self._report_problems()
            return result

    def snapshot(self) -> dict:
        """What the gateway holds: flags, and per mailbox its channel, PIN count, open or closed,
        and (sealed) how many PINs have rules, safe mode's settings and any lockout; no digits."""
        with self._firmware() as (firmware, _save):
            return firmware.snapshot()

    def forget(self) -> None:
        """Delete the state file (the gateway itself is gone)."""
        with self._lock:
            self.state_file.delete()

    # --- plumbing --------------------------------------------------------------------

    @contextlib.contextmanager
    def _firmware(self):
        with self._lock, self.state_file.locked():
            state = self.state_file.load()
            if state is None or state.get("thing_id") != self.thing_id:
                state = fw.empty_state(self.thing_id)
            firmware = fw.Firmware(
                state,
                thing_id=self.thing_id,
                channel_id=self.channel_id,
                public_key=self.public_key,
                **self._options,
            )
            yield firmware, lambda: self.state_file.save(state)

    def _read_and_apply(self, firmware: fw.Firmware, save) -> int:
        applied, done = 0, []
        while True:
            # A Mailbox command adds a channel: read it in the same round.
            todo = [c for c in firmware.channels() if c not in done]
            if not todo:
                return applied
            channel = todo[0]
            done.append(channel)
            try:
                found = self._read_new(channel, firmware.read_filters(channel), firmware.thing_key(self._key))
            except Unavailable as exc:
                self._problem(f"StreamIoT unavailable: {exc}")
                return applied
            except StreamIoTError as exc:
                self._problem(f"reading channel {channel} failed: {exc}")
                continue
            applied += firmware.receive(channel, found, self._clock())
            save()

    def _read_new(self, channel: str, filters: dict, key: str) -> list[dict]:
        """Every message the reader holds for the filters, newest first, paging to the end.

        Messages arriving meanwhile push older ones to later pages, so a page may repeat
        some of the previous one but never skips any; the firmware drops the repeats.
        """
        found, offset = [], 0
        for _ in range(MAX_READ_PAGES):
            page = self.streamiot.read_messages(
                channel, thing_key=key, offset=offset, limit=READ_PAGE, **filters
            )
            batch = page["messages"]
            found.extend(batch)
            offset += len(batch)
            total = page.get("total")
            if not batch or not isinstance(total, int) or offset >= total:
                break
        return found

    def _flush(self, firmware: fw.Firmware, save) -> None:
        """Publish the outbox in order; a refused channel waits, the others go on."""
        outbox = firmware.state["outbox"]
        blocked = set()
        for item in list(outbox):
            if item["channel"] in blocked:
                continue
            try:
                self.streamiot.publish(item["channel"], firmware.thing_key(self._key), item["pack"])
            except Unavailable as exc:
                self._problem(f"StreamIoT unavailable: {exc}")
                return
            except (StreamIoTError, ValueError) as exc:
                item["attempts"] += 1
                blocked.add(item["channel"])
                age = self._clock() - item["queued_at"]
                if isinstance(exc, ValueError) or (
                    item["attempts"] >= GIVE_UP_ATTEMPTS and age >= GIVE_UP_SECONDS
                ):
                    outbox.remove(item)
                    log.error("virtual gateway %s: gave up publishing on %s: %s",
                              self.thing_id, item["channel"], exc)
                else:
                    self._problem(f"publishing on {item['channel']} failed: {exc}")
                save()
                continue
            outbox.remove(item)
            save()

    def _heartbeat(self, firmware: fw.Firmware, save) -> None:
        now = self._clock()
        if not firmware.heartbeat_due(now):
            return
        uptime = max(0, int(now - self._booted))
        try:
            pack = firmware.sign(self.channel_id, messages.heartbeat(firmware.thing_id, uptime))
            save()  # a counter is used once, even if this publish fails
            self.streamiot.publish(self.channel_id, firmware.thing_key(self._key), pack)
        except StreamIoTError as exc:
            self._problem(f"heartbeat failed: {exc}")
            return
        firmware.heartbeat_sent(now)
        save()

    def _problem(self, problem: str) -> None:
        self._problems.append(problem)

    def _report_problems(self) -> None:
        """Log StreamIoT problems when they start and when they clear, not at every step."""
        problems, self._problems = self._problems, []
        for problem in problems:
            if problem not in self._reported:
                log.warning("virtual gateway %s: %s", self.thing_id, problem)
        if self._reported and not problems:
            log.info("virtual gateway %s: StreamIoT answers again", self.thing_id)
        self._reported = problems
