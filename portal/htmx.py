"""The page-or-partial helpers: htmx requests get the partial, others the full page; a
polled part that still holds its version gets a 304 (services/versions.py)."""
from flask import Response, make_response, render_template, request

from portal.services import versions


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true" and not request.headers.get("HX-Boosted")


def render(page: str, partial: str | None = None, status: int = 200, **context) -> tuple[str, int]:
    """Render `partial` for an htmx request when given, else the full `page`."""
    template = partial if (partial and is_htmx()) else page
    return render_template(template, **context), status


def unchanged(part: str, mark: versions.Mark | None) -> Response | None:
    """A bodiless 304 when the poll's If-None-Match is a version of `part` that still holds
    at `mark` (htmx does not swap it: base.html's htmx-config), else None: draw the part."""
    asked = request.headers.get("If-None-Match", "").strip('"')
    if asked and versions.holds(part, asked, mark):
        return make_response("", 304, {"ETag": f'"{asked}"'})
    return None


def versioned(body: str, status: int, version: str | None) -> Response:
    """The part drawn, with the version it shows as its ETag (the part also carries it in
    its own hx-headers, which is what the next poll sends)."""
    return make_response(body, status, {"ETag": f'"{version}"'} if version else {})
