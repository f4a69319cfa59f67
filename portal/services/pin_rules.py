"""A PIN's rules: the form's input checked into rule columns, said in plain words, judged
at a moment, and handed to the box. Pure: no database, no clock of its own.

Times are stored in UTC; weekly windows are wall-clock times in the PIN's zone (the
household's when the PIN was made), so "08:00-18:00" stays 08:00-18:00 across a change
to or from summer time.
"""
import re
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import TypedDict

from portal import timezones
from portal.models import Pin
from portal.models.devices import PIN_COURIER, PIN_DURESS
from portal.services.deliveries import PinState
from portal.services.errors import ValidationFailed

KINDS = ("always", "range", "weekly", "uses", "once")
# What the box takes (docs/device-protocol.md, "Rules the box enforces").
MAX_WINDOWS = 16
MAX_USES = 1000
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

# What rule_state says, in the words a page shows.
SCHEDULED = "scheduled"
ACTIVE = "active"
OUTSIDE_HOURS = "outside its hours"
USED_UP = "used up"
EXPIRED = "expired"
REMOVED = "removed"
ENDED = (EXPIRED, USED_UP)

_CLOCK = re.compile(r"(?:[01]\d|2[0-3]):[0-5]\d\Z")
_LOCAL_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M")


@dataclass(frozen=True)
class Rules:
    """Checked rules, as the PIN's columns hold them (None: no such rule)."""

    starts_at: datetime | None = None
    ends_at: datetime | None = None
    # [{"days": "1111100", "from": "08:00", "until": "18:00"}], days Mon..Sun
    windows: list[dict] | None = None
    max_uses: int | None = None

    @property
    def always(self) -> bool:
        return self.starts_at is None and self.ends_at is None and not self.windows and self.max_uses is None


class BoxRuleValues(TypedDict):
    """The fields of streamiot.messages.BoxRules (services never import the wire format)."""

    starts: int | None
    ends: int | None
    zone: str | None
    windows: tuple[str, ...]
    uses: int | None
    role: str | None


# --- checking the form's input ------------------------------------------------------------

def check_rules(*, kind: str = "always", starts=None, ends=None, windows=None, uses=None,
                time_zone: str = timezones.DEFAULT_ZONE, now: datetime) -> Rules:
    """The rules of a new PIN, or ValidationFailed on the field at fault.

    `kind` says what the form asked for and which field it needs: "range" a start or an
    end, "weekly" a window, "uses" a count, "once" nothing (one use). Every kind but
    "always" also takes whatever else is filled in (an end with a count, windows with an
    end). `starts`/`ends` are "YYYY-MM-DDTHH:MM" (datetime-local) or naive datetimes, in
    `time_zone`; `windows` a list of {"days": [0..6] (Mon=0), "from": "HH:MM", "until":
    "HH:MM"} ("24:00" allowed as until); `uses` 1..1000."""
    if kind not in KINDS:
        raise ValidationFailed("Choose when this PIN works.", field="kind")
    if kind == "always":
        return Rules()
    zone = timezones.zone(time_zone)
    starts_at = _local_time(starts, zone, "starts")
    ends_at = _local_time(ends, zone, "ends")
    if starts_at is not None and ends_at is not None and ends_at <= starts_at:
        raise ValidationFailed("The end must come after the start.", field="ends")
    if ends_at is not None and ends_at <= now:
        raise ValidationFailed("This end has passed already: choose a later one.", field="ends")
    checked_windows = check_windows(windows)
    max_uses = 1 if kind == "once" else check_uses(uses)
    if kind == "range" and starts_at is None and ends_at is None:
        raise ValidationFailed("Enter when the PIN starts or ends working (or both).", field="ends")
    if kind == "weekly" and not checked_windows:
        raise ValidationFailed("Add at least one time window.", field="windows")
    if kind == "uses" and max_uses is None:
        raise ValidationFailed("Enter how many times the PIN opens the box.", field="uses")
    return Rules(starts_at, ends_at, checked_windows or None, max_uses)


def _blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _local_time(value, zone: tzinfo, field: str) -> datetime | None:
    """A wall-clock time in `zone` as UTC (to the minute, as the form gives it)."""
    if _blank(value):
        return None
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=zone)
        return moment.astimezone(UTC).replace(second=0, microsecond=0)
    if isinstance(value, str):
        for layout in _LOCAL_FORMATS:
            try:
                local = datetime.strptime(value.strip(), layout)
            except ValueError:
                continue
            return local.replace(tzinfo=zone).astimezone(UTC).replace(second=0, microsecond=0)
    raise ValidationFailed("Enter a date and a time, like 2026-12-31 18:00.", field=field)


def check_windows(windows) -> list[dict]:
    """Weekly windows as stored ([] for none), or ValidationFailed on "windows"."""
    if _blank(windows):
        return []
    if not isinstance(windows, (list, tuple)):
        raise ValidationFailed("Add the time windows as days and hours.", field="windows")
    if len(windows) > MAX_WINDOWS:
        raise ValidationFailed(f"A PIN has at most {MAX_WINDOWS} time windows; this one has {len(windows)}.",
                               field="windows")
    return [_check_window(window) for window in windows]


def _check_window(window) -> dict:
    if not isinstance(window, dict):
        raise ValidationFailed("Add the time windows as days and hours.", field="windows")
    days = window.get("days") or []
    try:
        picked = {int(day) for day in days}
    except (TypeError, ValueError):
        picked = {-1}
    if not picked <= set(range(7)):
        raise ValidationFailed("Choose the days from Monday to Sunday.", field="windows")
    start, end = str(window.get("from") or "").strip(), str(window.get("until") or "").strip()
    if not _CLOCK.match(start) or not (_CLOCK.match(end) or end == "24:00"):
        raise ValidationFailed("Enter the hours as HH:MM, like 08:00 or 18:30.", field="windows")
    if not picked:
        raise ValidationFailed("A time window is empty: choose at least one day.", field="windows")
    if start >= end:
        raise ValidationFailed(f"A time window is empty: {start}-{end} must end after it starts (same day).",
                               field="windows")
    return {"days": "".join("1" if day in picked else "0" for day in range(7)), "from": start, "until": end}


def check_uses(uses) -> int | None:
    """How many opens (1..1000), None when not given, or ValidationFailed on "uses"."""
    if _blank(uses):
        return None
    if isinstance(uses, bool):
        uses = None
    try:
        count = int(str(uses).strip())
    except ValueError:
        raise ValidationFailed("Enter how many times, as a number like 3.", field="uses") from None
    if count < 1:
        raise ValidationFailed("A PIN opens the box at least once.", field="uses")
    if count > MAX_USES:
        raise ValidationFailed(f"A PIN can count at most {MAX_USES} opens.", field="uses")
    return count


# --- judging a moment -------------------------------------------------------------------------

def rules_of(pin: Pin) -> Rules:
    return Rules(pin.starts_at, pin.ends_at, pin.windows or None, pin.max_uses)


def in_windows(windows: list[dict] | None, time_zone: str | None, now: datetime) -> bool:
    """Whether `now` falls in one of the weekly windows (True when there are none)."""
    if not windows:
        return True
    local = now.astimezone(timezones.zone(time_zone))
    clock = local.strftime("%H:%M")
    return any(w["days"][local.weekday()] == "1" and w["from"] <= clock < w["until"] for w in windows)


def rule_state(pin: Pin, now: datetime) -> str:
    """"scheduled", "active", "outside its hours", "used up", "expired" or "removed"."""
    if pin.ended in ENDED:
        return pin.ended
    if pin.status in (PinState.REMOVED, PinState.REMOVING):
        return REMOVED
    if pin.max_uses is not None and (pin.uses or 0) >= pin.max_uses:
        return USED_UP
    return _time_state(rules_of(pin), pin.time_zone, now)


def _time_state(rules: Rules, time_zone: str | None, now: datetime) -> str:
    if rules.ends_at is not None and now >= rules.ends_at:
        return EXPIRED
    if rules.starts_at is not None and now < rules.starts_at:
        return SCHEDULED
    if not in_windows(rules.windows, time_zone, now):
        return OUTSIDE_HOURS
    return ACTIVE


def rules_allow(rules: Rules, time_zone: str | None, now: datetime) -> bool:
    """Whether the times of these rules let a PIN open now (uses are counted elsewhere)."""
    return _time_state(rules, time_zone, now) == ACTIVE


def allowed_now(pin: Pin, now: datetime) -> bool:
    return rule_state(pin, now) == ACTIVE


# --- words -----------------------------------------------------------------------------------

def preview(*, kind: str = "always", starts=None, ends=None, windows=None, uses=None,
            time_zone: str = timezones.DEFAULT_ZONE, now: datetime) -> str:
    """What the form's input would make, in words (ValidationFailed as check_rules)."""
    rules = check_rules(kind=kind, starts=starts, ends=ends, windows=windows, uses=uses, time_zone=time_zone,
                        now=now)
    return describe_rules(rules, time_zone, now)


def describe(pin: Pin, now: datetime) -> str:
    """"Works Mon-Fri 08:00-18:00, until Thu 31 Dec 00:00", in the PIN's zone."""
    return describe_rules(rules_of(pin), pin.time_zone, now)


def describe_rules(rules: Rules, time_zone: str | None, now: datetime) -> str:
    if rules.always:
        return "Works always"
    zone = timezones.zone(time_zone)
    parts = []
    if rules.max_uses is not None:
        parts.append("once" if rules.max_uses == 1 else f"{rules.max_uses} times")
    if rules.windows:
        parts.append(", ".join(window_words(w) for w in rules.windows))
    dates = []
    if rules.starts_at is not None:
        dates.append(f"from {_when(rules.starts_at, zone, now)}")
    if rules.ends_at is not None:
        dates.append(f"until {_when(rules.ends_at, zone, now)}")
    if dates:
        parts.append(" ".join(dates))
    return "Works " + ", ".join(parts)


def window_words(window: dict) -> str:
    """{"days": "1111100", "from": "08:00", "until": "18:00"} -> "Mon-Fri 08:00-18:00"."""
    return f"{days_words(window['days'])} {window['from']}-{window['until']}"


def days_words(days: str) -> str:
    """"1111100" -> "Mon-Fri"; "1010100" -> "Mon, Wed, Fri"; "1111111" -> "every day"."""
    if days == "1111111":
        return "every day"
    runs: list[list[int]] = []
    for day in (d for d in range(7) if days[d] == "1"):
        if runs and runs[-1][-1] == day - 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    words = []
    for run in runs:
        if len(run) >= 3:
            words.append(f"{DAY_NAMES[run[0]]}-{DAY_NAMES[run[-1]]}")
        else:
            words.extend(DAY_NAMES[d] for d in run)
    return ", ".join(words)


def _when(moment: datetime, zone: tzinfo, now: datetime) -> str:
    """"Fri 11 Dec 18:00" in the zone; the year too when it is not this year."""
    local = moment.astimezone(zone)
    year = f" {local.year}" if local.year != now.astimezone(zone).year else ""
    return f"{DAY_NAMES[local.weekday()]} {local.day} {local:%b}{year} {local:%H:%M}"


def local_input(moment: datetime | None, time_zone: str | None) -> str:
    """A stored time as the form's datetime-local value ("2026-12-31T18:00") in the zone."""
    if moment is None:
        return ""
    return moment.astimezone(timezones.zone(time_zone)).strftime("%Y-%m-%dT%H:%M")


# --- what the box gets --------------------------------------------------------------------------

def box_rules(pin: Pin) -> BoxRuleValues:
    """The rules an AUTH carries, as streamiot.messages.BoxRules takes them. A seed gateway
    ignores them (the portal's schedule keeps them); a sealed box keeps them itself."""
    windows = tuple(f"{w['days']} {w['from']}-{w['until']}" for w in pin.windows or ())
    role = pin.purpose if pin.purpose in (PIN_COURIER, PIN_DURESS) else None
    zone = pin.time_zone if timezones.is_zone(pin.time_zone) else timezones.DEFAULT_ZONE
    return BoxRuleValues(
        starts=int(pin.starts_at.timestamp()) if pin.starts_at is not None else None,
        ends=int(pin.ends_at.timestamp()) if pin.ends_at is not None else None,
        zone=timezones.posix_rule(zone) if windows else None,
        windows=windows,
        uses=pin.max_uses,
        role=role,
    )
