"""Jinja filters: times shown as people read them."""
from datetime import UTC, datetime

from markupsafe import Markup, escape


def timeago(value: datetime | None) -> str:
    if value is None:
        return "never"
    seconds = int((datetime.now(UTC) - value).total_seconds())
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


def when(value: datetime | None) -> Markup:
    """A <time> element: relative words, with the exact UTC time on hover."""
    if value is None:
        return Markup("never")
    iso = value.astimezone(UTC).isoformat(timespec="seconds")
    exact = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return Markup(f'<time datetime="{iso}" title="{exact}">{escape(timeago(value))}</time>')


def register(app) -> None:
    app.jinja_env.filters["timeago"] = timeago
    app.jinja_env.filters["when"] = when
