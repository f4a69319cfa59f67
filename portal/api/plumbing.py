"""What every API operation shares: the bearer token, its scopes, the rate limit, the
Idempotency-Key of a POST, ETag/If-Match, and opaque cursors.

`operation(scope)` wraps each view (outside flask-smorest's argument parsing, so a request
without a token gets 401 before its body is judged). Session cookies never authenticate
the API: only `Authorization: Bearer iotl_...` does, so no CSRF token is needed here.
"""
import base64
import functools
import hashlib
import json

from flask import current_app, g, make_response, request
from werkzeug.exceptions import HTTPException

from portal.api import problems
from portal.api.schemas import ProblemSchema
from portal.services import api_tokens
from portal.services.api_tokens import Caller, FirstAnswer, NotAuthenticated
from portal.services.errors import ServiceError, ValidationFailed

BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]
# Headers of a first answer that a replay repeats (the rest are made anew).
REPLAYED_HEADERS = ("Location", "ETag", "Content-Type")


def caller() -> Caller:
    return g.api_caller


def operation(bp, scope: str, *, idempotent: bool = False, if_match: str | None = None):
    """Declare and enforce: the token, `scope`, the rate limit; for a POST the optional
    Idempotency-Key; documented 401/403/429. `if_match`: "required" (428 without it) or
    "optional" documents the If-Match header the view checks with check_if_match."""

    def decorate(view):
        view = bp.doc(security=BEARER, operationId=view.__name__)(view)
        for status in (401, 403, 429):
            view = bp.alt_response(status, schema=ProblemSchema, content_type=problems.MEDIA_TYPE)(view)
        if idempotent:
            # 409: the first request with the key is still being answered; 422: the key was
            # used for another request.
            for status in (409, 422):
                view = bp.alt_response(status, schema=ProblemSchema, content_type=problems.MEDIA_TYPE)(view)
            view = bp.doc(parameters=[{
                "in": "header", "name": "Idempotency-Key", "required": False,
                "schema": {"type": "string", "minLength": 1, "maxLength": api_tokens.IDEMPOTENCY_KEY_MAX},
                "description": "Retrying a POST with the same key and body returns the first answer and "
                               "changes nothing (kept 24 hours); the same key with another body is refused "
                               "with 422, and while the first is still being answered with 409.",
            }])(view)
        if if_match:
            for status in (412,) + ((428,) if if_match == "required" else ()):
                view = bp.alt_response(status, schema=ProblemSchema, content_type=problems.MEDIA_TYPE)(view)
            view = bp.doc(parameters=[{
                "in": "header", "name": "If-Match", "required": if_match == "required",
                "schema": {"type": "string"},
                "description": "The ETag of the resource as you last read it: 412 when it has changed since.",
            }])(view)

        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            try:
                who = api_tokens.authenticate(_bearer())
            except NotAuthenticated as exc:
                return problems.problem(401, exc.message, kind="unauthorized",
                                        headers={"WWW-Authenticate": 'Bearer realm="IoTLock API"'})
            limit = current_app.config["API_RATE_LIMIT"]
            window = current_app.config["API_RATE_WINDOW_SECONDS"]
            wait = api_tokens.count_request(who.token.id, request.remote_addr, limit, window)
            if wait is not None:
                return problems.problem(
                    429, f"This token made more than {limit} requests in {window} s; try again in {wait} s.",
                    kind="rate-limited", headers={"Retry-After": str(wait)})
            if not who.has(scope):
                return problems.problem(403, f"This token lacks the “{scope}” scope.", kind="scope")
            g.api_caller = who
            g.account = who.account  # the household is being looked at (the worker reads its boxes)
            if idempotent and request.headers.get("Idempotency-Key") is not None:
                return _keyed(who, view, args, kwargs)
            try:
                return view(*args, **kwargs)
            except ServiceError as exc:
                return problems.from_service_error(exc)

        return wrapper

    return decorate


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    return secret.strip() if scheme.lower() == "bearer" else None


def _keyed(who: Caller, view, args, kwargs):
    body_hash = api_tokens.request_hash(request.method, request.path, request.get_data(cache=True))
    try:
        row_id, first = api_tokens.begin_idempotent(who, request.headers["Idempotency-Key"], request.method,
                                                    request.path, body_hash)
    except ServiceError as exc:
        return problems.from_service_error(exc)
    if first is not None:
        response = current_app.response_class(first.body, status=first.status_code)
        for name, value in first.headers.items():
            response.headers[name] = value
        response.headers["Idempotent-Replayed"] = "true"
        return response
    assert row_id is not None
    try:
        response = make_response(view(*args, **kwargs))
    except ServiceError as exc:
        api_tokens.abandon_idempotent(row_id)
        return problems.from_service_error(exc)
    except HTTPException:
        api_tokens.abandon_idempotent(row_id)
        raise
    if response.status_code < 300:
        api_tokens.finish_idempotent(row_id, FirstAnswer(
            response.status_code, response.get_data(as_text=True),
            {name: response.headers[name] for name in REPLAYED_HEADERS if name in response.headers}))
    else:
        api_tokens.abandon_idempotent(row_id)
    return response


def links(bp, status: int, parameter: str, source: str, *operation_ids: str):
    """OpenAPI links from an answer to the operations that take the id it names, as their
    path `parameter` (clients and schemathesis's stateful runs follow them)."""
    return bp.doc(responses={status: {"links": {
        name: {"operationId": name, "parameters": {parameter: source}} for name in operation_ids}}})


# --- ETag / If-Match ---------------------------------------------------------------------

def etag_of(data) -> str:
    digest = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
    return f'"{digest[:32]}"'


def check_if_match(current_tag: str, *, required: bool) -> None:
    """412 when If-Match names another version than `current_tag` (the resource's ETag now);
    428 when it is required and missing."""
    wanted = request.headers.get("If-Match")
    if wanted is None:
        if required:
            raise problems.PreconditionProblem(
                428, "Send If-Match with the ETag you last read (GET the resource first).")
        return
    tags = {tag.strip() for tag in wanted.split(",")}
    if "*" in tags:
        return
    if current_tag.strip('"') not in {tag.removeprefix("W/").strip('"') for tag in tags}:
        raise problems.PreconditionProblem(
            412, "It changed since you read it: GET it again, then retry with its new ETag.")


# --- cursors ------------------------------------------------------------------------------

def encode_cursor(value: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict | None:
    if not cursor:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, UnicodeDecodeError):
        value = None
    if not isinstance(value, dict):
        raise ValidationFailed("This cursor is not one we gave out; start again without it.", field="cursor")
    return value
