"""Jinja filters: times shown as people read them, and platform reasons in household words."""
import re
from datetime import UTC, datetime, timedelta

from markupsafe import Markup, escape

from portal import timezones


def timeago(value: datetime | None, now: datetime | None = None) -> str:
    if value is None:
        return "never"
    seconds = int(((now or datetime.now(UTC)) - value).total_seconds())
    if seconds < 0:
        seconds = -seconds
        for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
            if seconds >= size:
                n = seconds // size
                return f"in {n} {unit}{'s' if n != 1 else ''}"
        return "in a few seconds"
    if seconds < 10:
        return "just now"
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"


_AGO_UNITS = (60, 3600, 86400)


def timeago_turns(value: datetime, now: datetime) -> datetime:
    """The moment after `now` from which timeago(value) reads differently (a page's version
    holds until then): "just now" for 10 s, then each second, each minute, hour and day counted
    from `value`, not from the clock's minute. A time still to come ("in 3 minutes": a
    device's clock a little ahead) counts down the same way, to "in a few seconds"."""
    seconds = (now - value).total_seconds()
    if seconds <= -1:  # timeago truncates: under a second ahead already reads "just now"
        ahead = -seconds
        size = max([1] + [unit for unit in _AGO_UNITS if ahead >= unit])
        # Its words hold while the whole seconds ahead stay at or over their count of units.
        step = size * (int(ahead) // size) if size > 1 else 1
        return value - timedelta(seconds=step) + timedelta(microseconds=1)
    if seconds < 10:
        return value + timedelta(seconds=10)
    size = 1
    for unit in _AGO_UNITS:
        if seconds >= unit:
            size = unit
    return value + timedelta(seconds=size * (int(seconds // size) + 1))


def when(value: datetime | None) -> Markup:
    """A <time> element: relative words, with the exact UTC time on hover."""
    if value is None:
        return Markup("never")
    iso = value.astimezone(UTC).isoformat(timespec="seconds")
    exact = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return Markup(f'<time datetime="{iso}" title="{exact}">{escape(timeago(value))}</time>')


def local(value: datetime | None, zone_name: str | None, full: bool = False) -> str:
    """A moment in the household's zone, as short as it can be read: "14:02" today,
    "Mon 14:02" within the week, else "3 Dec 14:02"; `full`: "Fri 11 Dec 18:00"."""
    if value is None:
        return ""
    here = value.astimezone(timezones.zone(zone_name))
    if full:
        return f"{here.strftime('%a')} {here.day} {here.strftime('%b %H:%M')}"
    today = datetime.now(UTC).astimezone(here.tzinfo).date()
    if here.date() == today:
        return here.strftime("%H:%M")
    if abs((here.date() - today).days) < 7:
        return here.strftime("%a %H:%M")
    return f"{here.day} {here.strftime('%b %H:%M')}"


def minutes_list(seconds) -> str:
    """Lockout steps in seconds, as the household entered them: "1, 5, 15"."""
    return ", ".join(f"{s / 60:g}" for s in seconds or [])


# A reason recorded by the worker may carry the platform's own words ("StreamIoT answered
# POST /things with 500"); support reads them as they are, a household in its own words.
_PLATFORM_WORDS = [
    (re.compile(r"\b(?:GET|POST|PUT|PATCH|DELETE) /[^\s),;]+"), "a request"),
    (re.compile(r"^StreamIoT\b"), "The device service"),
    (re.compile(r"\bStreamIoT\b"), "the device service"),
    (re.compile(r"\bthings\b", re.I), "devices"),
    (re.compile(r"\bthing\b", re.I), "device"),
    (re.compile(r"\bchannels\b", re.I), "private lines"),
    (re.compile(r"\bchannel\b", re.I), "private line"),
    (re.compile(r"\b(?:CONNECT|REGISTER|DESTRUCT|DELETE|ADD|AUTH|UNAUTH|UNLOCK|REKEY)\b"), "a message"),
]


def household_words(text: str | None) -> str:
    """A worker's reason as a household reads it: no platform, thing, channel or command names."""
    if not text:
        return ""
    for pattern, words in _PLATFORM_WORDS:
        text = pattern.sub(words, text)
    return text


_CODE_SPAN = re.compile(r"`([^`\n]+)`")


def code_spans(text: str | None) -> Markup:
    """Text with `backticked` words (the API document's descriptions) shown as code."""
    return Markup(_CODE_SPAN.sub(lambda m: f"<code>{m.group(1)}</code>", str(escape(text or ""))))


def register(app) -> None:
    app.jinja_env.filters["timeago"] = timeago
    app.jinja_env.filters["when"] = when
    app.jinja_env.filters["household_words"] = household_words
    app.jinja_env.filters["local"] = local
    app.jinja_env.filters["minutes_list"] = minutes_list
    app.jinja_env.filters["code_spans"] = code_spans
