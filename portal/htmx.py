"""The page-or-partial helpers: htmx requests get the partial, others the full page; a
polled part that still holds its version gets a 304 (services/versions.py)."""
from flask import Response, make_response, render_template, request, session

from portal.services import versions


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true" and not request.headers.get("HX-Boosted")


def render(page: str, partial: str | None = None, status: int = 200, **context) -> tuple[str, int]:
    """Render `partial` for an htmx request when given, else the full `page`."""
    template = partial if (partial and is_htmx()) else page
    return render_template(template, **context), status


def poll_mark(account_id, *, shows_flashes: bool = False) -> versions.Mark | None:
    """Where the household stands, for a polled part's version: read for htmx requests only
    (a full page carries no version; its first poll draws the part with one), and not while a
    flash waits in a part that shows flashes (it must be drawn to show it). None: draw."""
    if not is_htmx() or (shows_flashes and session.get("_flashes")):
        return None
    return versions.mark(account_id)


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
