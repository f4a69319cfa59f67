"""View helpers shared by the gateways and mailboxes blueprints.

Service errors onto form fields, JSON downloads, htmx-aware redirects, and the private
key IoTLock made, offered to the member who made it.
"""
import json
import re
from urllib.parse import urlsplit

from flask import Response, abort, flash, g, make_response, redirect, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response as BaseResponse

from portal import auth
from portal.htmx import is_htmx
from portal.models import User
from portal.services import key_offers
from portal.services.errors import Forbidden, NotFound, ServiceError


def user() -> User:
    """The logged-in user as an ORM row, for the services that act as them."""
    return auth.user_row()


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


# --- the private key IoTLock made -------------------------------------------------------
# Kept encrypted server-side for the member who made it (services/key_offers.py) until
# their one download or their "Discard".

def key_offered(kind: str, object_id) -> bool:
    return key_offers.is_offered(current_user.id, kind, object_id)


def discard_key(kind: str, object_id, back_to: str) -> BaseResponse:
    """The member's "Discard" of a private key IoTLock made for them."""
    if key_offers.discard(current_user.id, kind, object_id):
        flash("The private key was discarded. IoTLock does not keep it any more.", "info")
    return see_other(back_to)
