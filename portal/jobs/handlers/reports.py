"""Reading what the devices said: reader pages in, plain `DeviceReport` values out.

The only place that parses device SenML (through portal.streamiot.messages); the
service (portal/services/device_reports.py) applies the reports.
"""
import logging
import time as time_module
from typing import Any

from portal.extensions import db
from portal.jobs.context import get_streamiot
from portal.jobs.registry import periodic, stop_requested
from portal.models import utcnow
from portal.services import deliveries, device_reports
from portal.services.device_reports import ChannelToRead, DeviceReport, ReportKind
from portal.streamiot import errors as sie
from portal.streamiot import messages as m

log = logging.getLogger(__name__)

READ_PAGE = 200
READ_MAX_PAGES = 20

_EVENT_KINDS = {
    m.OPENED: ReportKind.OPENED,
    m.CLOSED: ReportKind.CLOSED,
    m.REJECTED: ReportKind.REJECTED,
    m.BATTERY: ReportKind.BATTERY,
    m.HEARTBEAT: ReportKind.HEARTBEAT,
    m.REFUSED: ReportKind.REFUSED,
    m.LOCKOUT: ReportKind.LOCKOUT,
    m.FIRST: ReportKind.FIRST,
}
# Records that only say more about another record of their pack: never reports of their own.
_PACK_EXTRAS = (m.REASON, m.CTR, m.MAC, m.LEFT, m.DURESS, m.SECOND)


def read_channel(client, target: ChannelToRead) -> list[dict]:
    """The gateway's messages on this channel from the cursor's look-back on, newest first.

    Pages shift while new messages arrive (newest first), which only repeats messages;
    the cursor's digests make repeats harmless.
    """
    # Never below 2024: what lies there is the sweep's (sweep_undated), read once, not twice.
    since = max(target.since or 0.0, device_reports.EARLIEST_REAL_TIME)
    return _read_pages(client, target, {"publisher": target.publisher, "from": since})[0]


def sweep_undated(client, target: ChannelToRead) -> tuple[list[dict], int] | None:
    """The gateway's messages the platform stored with a device time before any real one
    (a relative `t`, a clock never set): no `from` cursor reaches them. One cheap call
    learns how many there are; they are read only when that number changed. Returns
    (messages, total), or None when nothing changed."""
    filters = {"publisher": target.publisher, "to": device_reports.EARLIEST_REAL_TIME}
    page = client.read_messages(target.channel_id, thing_key=target.thing_key, offset=0, limit=1, **filters)
    total = int(page.get("total") or 0)
    if total == target.undated_total:
        return None
    return _read_pages(client, target, filters)


def _read_pages(client, target: ChannelToRead, filters: dict) -> tuple[list[dict], int]:
    found: list[dict] = []
    offset = total = 0
    for _ in range(READ_MAX_PAGES):
        page = client.read_messages(target.channel_id, thing_key=target.thing_key, offset=offset,
                                    limit=READ_PAGE, **filters)
        batch = page["messages"]
        total = int(page.get("total") or 0)
        found.extend(batch)
        offset += len(batch)
        if not batch or offset >= total:
            break
    return found, total


def _whole(value) -> int | None:
    """A number the device meant as a whole number (the platform stores floats)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value) if float(value).is_integer() else None


def to_reports(reader_messages: list[dict], read_at: float | None = None, *, channel_id: str | None = None,
               report_key: bytes | None = None) -> list[DeviceReport]:
    """The reports among reader messages; the records that explain another record of their
    pack join it: a REASON the Failed or REFUSED (or REJECTED) it explains; LEFT, DURESS and
    SECOND the OPENED they belong to.

    `read_at` (epoch seconds, default now): when the reader was asked. A message whose
    platform time cannot be a receive time (a device clock: before 2024, or ahead of the
    read) is dated by the read instead, the best estimate of when it was received.

    `report_key` (a sealed gateway's): each pack (its messages share time and publisher)
    is checked against its MAC; its reports carry the pack's counter, or None when the
    MAC is missing or wrong (the service then ignores them).
    """
    read_at = time_module.time() if read_at is None else read_at
    packs: dict[tuple[object, object], list[dict]] = {}
    parsed = []
    for message in reader_messages:
        time = message.get("time")
        parts = m.split_name(message.get("name"))
        if isinstance(time, bool) or not isinstance(time, (int, float)) or parts is None:
            continue
        packs.setdefault((time, message.get("publisher")), []).append(message)
        base, name = parts
        if name not in _PACK_EXTRAS:
            parsed.append((float(time), base, name, message))
    counters: dict[tuple[object, object], int | None] = {}
    if report_key is not None and channel_id:
        counters = {key: m.verify(channel_id, items, report_key) for key, items in packs.items()}
    reports = []
    for time, base, name, message in parsed:
        pack_key = (message.get("time"), message.get("publisher"))
        unit = message.get("unit")
        value = m.message_value(message)
        common: dict[str, Any] = dict(
            at=time, received=device_reports.received_time(time, read_at), digest=m.message_digest(message),
            publisher=message.get("publisher"), subject=base, name=name, unit=unit, counter=counters.get(pack_key),
        )
        if unit in (m.DONE, m.FAILED):
            if name == m.UNLOCK:
                value = m.unlock_deadline(value)
            elif name in (m.AUTH, m.UNAUTH):
                value = _pin_named(value)  # a sealed box echoes the reference
            elif name == m.SAFE:
                value = _whole(value)  # the settings' version
            reports.append(DeviceReport(ReportKind.ANSWER, value=value, done=unit == m.DONE,
                                        reason=None if unit == m.DONE else _reason(packs[pack_key]), **common))
            continue
        kind = _EVENT_KINDS.get(name, ReportKind.UNKNOWN)
        extras: dict[str, Any] = {}
        if kind == ReportKind.BATTERY and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = int(round(value))
        elif kind in (ReportKind.OPENED, ReportKind.REFUSED, ReportKind.FIRST):
            value = _pin_named(value)
        elif kind in (ReportKind.REJECTED, ReportKind.LOCKOUT):
            value = _whole(value)
        if kind in (ReportKind.REFUSED, ReportKind.REJECTED):
            extras["reason"] = _reason(packs[pack_key])
        elif kind == ReportKind.OPENED:
            pack = packs[pack_key]
            left = _extra(pack, m.LEFT)
            second = _extra(pack, m.SECOND)
            duress = _extra(pack, m.DURESS)
            extras.update(
                left=_whole(m.message_value(left)) if left else None,
                second=_pin_named(m.message_value(second)) if second else None,
                duress=bool(duress and duress.get("bool_value") is True),
            )
        reports.append(DeviceReport(kind, value=value, remote=kind == ReportKind.OPENED and unit == "Remote",
                                    **extras, **common))
    return reports


def _pin_named(value) -> str | int | None:
    """A PIN as a box names it: a sealed box's reference, or a seed box's digits."""
    return value if isinstance(value, str) else _whole(value)


def _extra(pack: list[dict], name: str) -> dict | None:
    """The pack's record of that name (LEFT, SECOND, ...), if it has one."""
    for message in pack:
        parts = m.split_name(message.get("name"))
        if parts and parts[1] == name:
            return message
    return None


def _reason(pack: list[dict]) -> str | None:
    reason = _extra(pack, m.REASON)
    return reason["string_value"] if reason and isinstance(reason.get("string_value"), str) else None


def poll(app, targets: list[ChannelToRead], *, woken: bool = False) -> int:
    """One batched pass: read and apply each channel in turn (one keep-alive connection, no
    thread per channel); one unreadable channel does not stop the others.

    `woken` (an MQTT message named the channels): the sweep below 2024 runs only when the
    read found nothing newer than the cursor, i.e. when what woke us can only be a
    device-dated message; a heartbeat or an event costs one request, not two."""
    client = get_streamiot(app)
    applied = 0
    quiet: list[str] = []  # channels whose read found nothing
    for target in targets:
        if stop_requested():
            break  # the worker is stopping: the rest are read when next due
        try:
            read_at = time_module.time()
            found = read_channel(client, target)
            undated = sweep_undated(client, target) if not woken or not _newer(found, target) else None
        except sie.StreamIoTError as exc:
            log.warning("reading channel %s failed: %s", target.channel_id, exc)
            continue
        reports = to_reports(found, read_at, channel_id=target.channel_id, report_key=target.report_key)
        undated_total = None
        if undated is not None:
            reports += to_reports(undated[0], read_at, channel_id=target.channel_id, report_key=target.report_key)
            undated_total = undated[1]
        if not reports and undated_total is None:
            quiet.append(target.channel_id)
            continue
        try:
            applied += device_reports.apply_reports(target, reports, undated_total=undated_total)
        except Exception:  # noqa: BLE001  (one bad channel must not stop the rest)
            db.session.rollback()
            log.exception("applying the messages of channel %s failed", target.channel_id)
    device_reports.note_read(quiet)
    return applied


def _newer(found: list[dict], target: ChannelToRead) -> bool:
    """Whether the read holds a message received after the cursor's newest."""
    if target.since is None:
        return False
    newest = target.since + device_reports.LOOKBACK_SECONDS
    return any(isinstance(m.get("time"), (int, float)) and m["time"] > newest for m in found)


@periodic("REPLY_POLL_SECONDS")
def poll_active_channels(app) -> None:
    """Every second or so: the channels with a command waiting for its answer, and every
    channel of a household a member is looking at (events show within seconds)."""
    targets = device_reports.channels_to_read_fast()
    db.session.commit()  # no transaction stays open while the reader is asked
    # Read first, then expire: an answer already in the reader is the box's word.
    poll(app, targets)
    deliveries.expire_overdue_unlocks()


@periodic("IDLE_POLL_SECONDS")
def poll_all_channels(app) -> None:
    """Every channel of every linked household no MQTT subscriber holds, now and then: events
    and heartbeats of the households nobody is looking at."""
    _sweep_idle(app, app.config["IDLE_POLL_SECONDS"], mqtt=False)


@periodic("IDLE_POLL_SECONDS_WITH_MQTT")
def poll_mqtt_channels(app) -> None:
    """The households an MQTT subscriber holds, seldom: a message the subscription missed
    (the broker lost it, the subscriber was between two connections) still arrives."""
    _sweep_idle(app, app.config["IDLE_POLL_SECONDS_WITH_MQTT"], mqtt=True)


def _sweep_idle(app, interval: float, *, mqtt: bool) -> None:
    """Read the households due, batch after batch, until none is: each worker process runs
    this, and each batch is claimed for all of them (device_reports.claim_idle_households),
    so a second worker shares the sweep instead of repeating it. Only the households due
    when the sweep started: the ones it read come due again the next time."""
    swept_at = utcnow()
    while not stop_requested():
        households = device_reports.claim_idle_households(interval, mqtt=mqtt, swept_at=swept_at)
        if not households:
            return
        targets = device_reports.channels_of_linked_households(mqtt=mqtt, households=households)
        db.session.commit()  # no transaction stays open while the reader is asked
        poll(app, targets)
