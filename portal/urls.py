"""URL helpers shared by views, and the rule class whose builders are written on first use."""
import functools
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from flask import current_app, redirect, request, url_for
from werkzeug.routing import Rule

# Stands for a row's id in a link built once (row_link); never a real row's.
_ROW_ID = uuid.UUID("00000000-0000-4000-8000-0000000f00d5")


def safe_next(target: str | None) -> str | None:
    """`target` when it is a path on this site, else None (no open redirects)."""
    if not target:
        return None
    target = target.strip()
    if "\\" in target or any(ord(c) < 32 for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def public_link(endpoint: str, **values) -> str:
    """An absolute link for emails: on PUBLIC_URL when set (behind a proxy the request's own
    host may not be the one people reach), else on the host of the current request."""
    public = current_app.config.get("PUBLIC_URL")
    if public:
        return public.rstrip("/") + url_for(endpoint, **values)
    return url_for(endpoint, **values, _external=True)


def serving_base_url() -> str:
    """Where people reach the portal when no request says so (command-line output):
    PUBLIC_URL, or the address `flask serve` / `make run` listens on (PORT)."""
    return current_app.config.get("PUBLIC_URL") or f"http://127.0.0.1:{current_app.config.get('PORT', 5000)}"


def get_goes_to(page: Callable[..., str]):
    """For a POST URL that renders its form's page when the form is refused: a GET of it
    (the browser reloaded that page, or came back to it) is sent to `page(**url values)`,
    the form's own page, instead of answering 405. Put it below the access decorators."""

    def decorate(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            if request.method == "GET":
                return redirect(page(**kwargs), code=303)
            return view(*args, **kwargs)

        return wrapper

    return decorate


def row_link(endpoint: str, param: str) -> Callable[[object], str]:
    """url_for(endpoint, **{param: row_id}) for the rows of a page: the link is built once with
    a stand-in id, and each row's id takes its place (url_for per row was about an eighth of
    the 50-box dashboard). Kept per process, as fixed_link's links are (a box's live part
    asked for five on every draw). Templates: row_link('mailboxes.show', 'mailbox_id')(mb.id)."""
    links = current_app.extensions.setdefault("row_links", {})
    key = (request.script_root, endpoint, param)
    link = links.get(key)
    if link is None:
        values: dict[str, Any] = {param: _ROW_ID}
        prefix, _, suffix = url_for(endpoint, **values).partition(str(_ROW_ID))

        def link(row_id, prefix=prefix, suffix=suffix) -> str:
            return f"{prefix}{row_id}{suffix}"

        links[key] = link
    return link


def fixed_link(endpoint: str, **values) -> str:
    """Templates' url_for: a link with no values, or a static file's, is built once per
    process (base.html alone asked for twenty on every page); any other goes to url_for."""
    if endpoint.startswith(".") or (values and (endpoint != "static" or list(values) != ["filename"])):
        return url_for(endpoint, **values)
    links = current_app.extensions.setdefault("fixed_links", {})
    key = (request.script_root, endpoint, values.get("filename"))
    link = links.get(key)
    if link is None:
        link = links[key] = url_for(endpoint, **values)
    return link


class LazyBuilderRule(Rule):
    """Werkzeug's Rule, which writes its two URL builders (Python functions, through the ast
    module and compile()) when a link to it is first built rather than when it is added to
    the map. Writing them for the portal's 138 rules was ~80 % of `create_app` (~50 ms),
    paid by every worker and every test app for rules most of which it never links to. The
    builder written is Werkzeug's own; only the moment changes."""

    def _compile_builder(self, append_unknown: bool = True):
        name = "_build_unknown" if append_unknown else "_build"

        def build_first(rule: Rule, **values):
            builder = Rule._compile_builder(rule, append_unknown).__get__(rule, None)
            setattr(rule, name, builder)  # this call's successors go straight to it
            return builder(**values)

        return build_first
