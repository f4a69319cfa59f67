"""URL helpers shared by views."""
import functools
from collections.abc import Callable
from urllib.parse import urlsplit

from flask import current_app, redirect, request, url_for


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
