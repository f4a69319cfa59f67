"""View helpers shared by the gateways and mailboxes blueprints.

Service errors onto form fields, JSON downloads, htmx-aware redirects, and the one-time
private key a member's login session holds until its first download.
"""
import base64
import json
import re
from urllib.parse import urlsplit

from flask import Response, abort, current_app, flash, g, make_response, redirect, request, session, url_for
from flask_login import current_user
from werkzeug.wrappers import Response as BaseResponse

from portal import crypto
from portal.auth import current_login_session
from portal.htmx import is_htmx
from portal.services.errors import Forbidden, NotFound, ServiceError

_HELD = "held_private_keys"


def user():
    """The logged-in user object itself (services keep it; the proxy is request-bound)."""
    return current_user._get_current_object()


def account_id():
    return g.account.id


def field_error(form, exc: ServiceError) -> None:
    """Put a service refusal on the field it is about, else on top of the form."""
    if isinstance(exc, NotFound):
        abort(404)
    if isinstance(exc, Forbidden):
        abort(403)
    target = getattr(form, exc.field, None) if exc.field else None
    if target is not None and hasattr(target, "errors"):
        if not isinstance(target.errors, list):
            target.errors = list(target.errors)
        target.errors.append(exc.message)
    else:
        form.form_errors.append(exc.message)


def refuse(exc: ServiceError, back: str) -> BaseResponse:
    """A refused button (Conflict...): say why, and go back where it was pressed."""
    if isinstance(exc, NotFound):
        abort(404)
    if isinstance(exc, Forbidden):
        abort(403)
    flash(exc.message, "error")
    return redirect(back, code=303)


def back() -> str:
    """Where the button was pressed (this site only), else the dashboard."""
    referrer = urlsplit(request.referrer or "")
    if referrer.netloc == request.host and referrer.path.startswith("/"):
        return referrer.path + (f"?{referrer.query}" if referrer.query else "")
    return url_for("gateways.index")


def see_other(location: str) -> BaseResponse:
    """After a POST: 303 (htmx follows it and swaps the partial of the page it lands on)."""
    return redirect(location, code=303)


def gone(location: str, message: str) -> BaseResponse:
    """A live region whose object was deleted (removal finished): leave the page."""
    flash(message, "info")
    if is_htmx():
        response = make_response("", 200)
        response.headers["HX-Redirect"] = location
        return response
    return redirect(location)


def json_download(document: dict, name: str) -> Response:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower() or "device"
    response = Response(json.dumps(document, indent=2) + "\n", mimetype="application/json")
    response.headers["Content-Disposition"] = f'attachment; filename="iotlock-{slug}.json"'
    response.headers["Cache-Control"] = "no-store"
    return response


# --- the one-time private key -----------------------------------------------------------
# A key pair IoTLock generates is never stored: the private key is encrypted under the
# login session's id (so a copied cookie from another login cannot open it) and kept in
# the signed session cookie until the member downloads it, once.

def _aad(kind: str, object_id) -> dict:
    login = current_login_session()
    return {"table": "session", "column": f"{kind}_private_key", "row_id": f"{login.id if login else '-'}:{object_id}"}


def hold_private_key(kind: str, object_id, private_key: str) -> None:
    blob = crypto.encrypt(private_key, **_aad(kind, object_id))
    held = dict(session.get(_HELD, {}))
    held[f"{kind}:{object_id}"] = base64.b64encode(blob).decode()
    session[_HELD] = held


def peek_private_key(kind: str, object_id) -> str | None:
    token = session.get(_HELD, {}).get(f"{kind}:{object_id}")
    if not token:
        return None
    try:
        return crypto.decrypt(base64.b64decode(token), **_aad(kind, object_id))
    except (crypto.DecryptionError, ValueError):
        current_app.logger.info("a held private key no longer decrypts (another login session)")
        return None


def drop_private_key(kind: str, object_id) -> None:
    held = dict(session.get(_HELD, {}))
    if held.pop(f"{kind}:{object_id}", None) is not None:
        session[_HELD] = held
