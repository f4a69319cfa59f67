"""The one page-or-partial helper: htmx requests get the partial, others the full page."""
from flask import render_template, request


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true" and not request.headers.get("HX-Boosted")


def render(page: str, partial: str | None = None, status: int = 200, **context):
    """Render `partial` for an htmx request when given, else the full `page`."""
    template = partial if (partial and is_htmx()) else page
    return render_template(template, **context), status
