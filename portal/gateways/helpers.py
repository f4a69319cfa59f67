"""View helpers shared by the gateways and mailboxes blueprints.

Service errors onto form fields, JSON downloads, htmx-aware redirects, and the one-time
private key a member's login session holds until its first download.
"""
import base64
import json
import re
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Response, abort, current_app, flash, g, make_response, redirect, request, session, url_for
from flask_login import current_user
from werkzeug.wrappers import Response as BaseResponse

from portal import crypto
from portal.auth import current_login_session
from portal.htmx import is_htmx
from portal.services import key_offers
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
# login session's id and the offer's (so a copied cookie from another login cannot open
# it) and kept in the signed session cookie; the offer is a row (services/key_offers.py)
# that the first download deletes, so a replayed older cookie finds it closed.

@dataclass(frozen=True)
class HeldKey:
    offer_id: uuid.UUID
    private_key: str


def _aad(kind: str, object_id, offer_id) -> dict:
    login = current_login_session()
    return {"table": "key_offers", "column": f"{kind}_private_key",
            "row_id": f"{login.id if login else '-'}:{object_id}:{offer_id}"}


def hold_private_key(kind: str, object_id, private_key: str) -> None:
    login = current_login_session()
    if login is None:
        return
    offer_id = key_offers.open_offer(login, kind, object_id)
    blob = crypto.encrypt(private_key, **_aad(kind, object_id, offer_id))
    held = dict(session.get(_HELD, {}))
    held[f"{kind}:{object_id}"] = f"{offer_id}:{base64.b64encode(blob).decode()}"
    session[_HELD] = held


def held_private_key(kind: str, object_id) -> HeldKey | None:
    """The key this session holds for the device, while its offer is still open."""
    token = session.get(_HELD, {}).get(f"{kind}:{object_id}")
    if not token:
        return None
    try:
        offer_text, blob = token.split(":", 1)
        offer_id = uuid.UUID(offer_text)
        if not key_offers.is_open(current_login_session(), offer_id):
            return None
        return HeldKey(offer_id, crypto.decrypt(base64.b64decode(blob), **_aad(kind, object_id, offer_id)))
    except (crypto.DecryptionError, ValueError):
        current_app.logger.info("a held private key no longer decrypts (another login session)")
        return None


def peek_private_key(kind: str, object_id) -> str | None:
    held = held_private_key(kind, object_id)
    return held.private_key if held else None


def drop_private_key(kind: str, object_id) -> None:
    held = dict(session.get(_HELD, {}))
    if held.pop(f"{kind}:{object_id}", None) is not None:
        session[_HELD] = held
