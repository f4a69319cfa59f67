"""The page-or-partial helpers: htmx requests get the partial, others the full page; a
polled part that still holds its version gets a 304 (services/versions.py), and a part
drawn while its version holds is drawn once (DrawnParts)."""
import threading
from collections import OrderedDict
from typing import Any, NamedTuple

from flask import Flask, Response, current_app, g, make_response, render_template, request, session
from flask_wtf.csrf import generate_csrf

from portal.services import versions


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true" and not request.headers.get("HX-Boosted")


def render(page: str, partial: str | None = None, status: int = 200, **context) -> tuple[str, int]:
    """Render `partial` for an htmx request when given, else the full `page`."""
    template = partial if (partial and is_htmx()) else page
    return render_template(template, **context), status


def household_mark(account_id) -> versions.Mark | None:
    """Where the household stands: as read with the login when the request only reads and
    looks at this household (visitors.AtStart: read before anything else, so never later
    than the rows a part shows), else read now."""
    membership = g.get("membership")
    if membership is not None and membership.account_id == account_id and membership.at_start is not None:
        return membership.at_start.mark
    return versions.mark(account_id)


def part_mark(account_id) -> versions.Mark | None:
    """Where the household stands, for a part that shows flashes, on a full page as on a
    poll: None while a flash waits (the part must be drawn to show it, and not kept)."""
    return None if session.get("_flashes") else household_mark(account_id)


def poll_mark(account_id, *, shows_flashes: bool = False) -> versions.Mark | None:
    """Where the household stands, for a polled part's version: read for htmx requests only
    (a full page that versions the part it holds reads household_mark: it shows its flashes
    above its parts), and not while a flash waits in a part that shows flashes (it must be
    drawn to show it). None: draw."""
    if not is_htmx():
        return None
    return part_mark(account_id) if shows_flashes else household_mark(account_id)


def asked_version() -> str:
    """The version the poll says its part shows (If-None-Match, unquoted), or ""."""
    return request.headers.get("If-None-Match", "").strip('"')


def not_modified(version: str) -> Response:
    """A bodiless 304 (htmx does not swap it: base.html's htmx-config)."""
    return make_response("", 304, {"ETag": f'"{version}"'})


def unchanged(part: versions.Part, mark: versions.Mark | None) -> Response | None:
    """A 304 when the poll's If-None-Match is a version of `part` that still holds at `mark`,
    else None: draw the part."""
    asked = asked_version()
    if asked and versions.holds(part, asked, mark):
        return not_modified(asked)
    return None


def versioned(body: str, status: int, version: str | None) -> Response:
    """The part drawn, with the version it shows as its ETag (the part also carries it in
    its own hx-headers, which is what the next poll sends)."""
    return make_response(body, status, {"ETag": f'"{version}"'} if version else {})


# Where a kept part carried the CSRF token of the session that drew it. Never in a template,
# and no text a person types is drawn with a NUL in it.
_TOKEN = "\x00csrf\x00"


class Drawn(NamedTuple):
    """A part as drawn: its HTML, its version (None: not to be kept) and facts about it that
    the page around it needs (e.g. whether the dashboard lists any gateway)."""

    html: str
    version: str | None
    facts: dict[str, Any]


class DrawnParts:
    """The parts this process drew, kept by part and person while their version holds
    (the very test an unchanged poll's 304 passes): a page asked again with nothing changed
    takes its part from here instead of reading its rows and drawing it. Each person has their
    own (a part may say "you"); the CSRF tokens it carries are the asking session's, put in
    at each use. Least recently used out past `size` parts."""

    def __init__(self, size: int):
        self.size = size
        self._parts: OrderedDict[tuple, Drawn] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, part: versions.Part, person, mark: versions.Mark | None) -> Drawn | None:
        with self._lock:
            drawn = self._parts.get((part, person))
            if drawn is not None:
                self._parts.move_to_end((part, person))
        if drawn is None or drawn.version is None or not versions.holds(part, drawn.version, mark):
            return None
        return drawn._replace(html=drawn.html.replace(_TOKEN, generate_csrf()))

    def clear(self) -> None:
        with self._lock:
            self._parts.clear()

    def put(self, part: versions.Part, person, drawn: Drawn) -> None:
        if drawn.version is None:
            return
        kept = drawn._replace(html=drawn.html.replace(generate_csrf(), _TOKEN))
        with self._lock:
            self._parts[(part, person)] = kept
            self._parts.move_to_end((part, person))
            while len(self._parts) > self.size:
                self._parts.popitem(last=False)


def init_app(app: Flask) -> None:
    app.extensions["drawn_parts"] = DrawnParts(app.config["DRAWN_PARTS_KEPT"])


def drawn_part(part: versions.Part, person, mark: versions.Mark | None, draw) -> Drawn:
    """The part as kept while its version holds at `mark`, else `draw()`n (a Drawn) and kept."""
    parts: DrawnParts = current_app.extensions["drawn_parts"]
    drawn = parts.get(part, person, mark)
    if drawn is None:
        drawn = draw()
        parts.put(part, person, drawn)
    return drawn
