"""Errors of the API as RFC 9457 problem documents (application/problem+json), and the one
place that turns the service layer's errors into them. Nothing under /api answers HTML."""
import logging

from flask import Response, json, request
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from portal.services.errors import Conflict, Forbidden, NotFound, ServiceError, ValidationFailed
from portal.services.throttle import Throttled

log = logging.getLogger(__name__)

PREFIX = "/api/"
MEDIA_TYPE = "application/problem+json"
# type URIs: relative references to the reference page, one anchor per kind of problem.
TYPE_BASE = "/api/v1/docs#problem-"


def is_api_request() -> bool:
    return request.path.startswith(PREFIX) or request.path.rstrip("/") == PREFIX.rstrip("/")


def problem(status: int, detail: str | None = None, *, kind: str | None = None, errors=None,
            headers: dict | None = None) -> Response:
    title = HTTP_STATUS_CODES.get(status, "Error")
    body: dict = {
        "type": TYPE_BASE + (kind or title.lower().replace(" ", "-")),
        "title": title,
        "status": status,
        "detail": detail or title,
    }
    if errors:
        body["errors"] = errors
    response = Response(json.dumps(body), status=status, mimetype=MEDIA_TYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _flatten(messages, prefix: str = "") -> list[dict]:
    """webargs' {"json": {"field": ["message"]}} as [{"field": "field", "message": ...}]."""
    out: list[dict] = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = str(key) if not prefix else f"{prefix}.{key}"
            if not prefix and key in ("json", "query", "headers", "form", "files"):
                name = ""
            out.extend(_flatten(value, name))
    elif isinstance(messages, (list, tuple)):
        if all(isinstance(m, str) for m in messages):
            out.extend({"field": prefix or None, "message": m} for m in messages)
        else:
            for message in messages:
                out.extend(_flatten(message, prefix))
    else:
        out.append({"field": prefix or None, "message": str(messages)})
    return out


def from_http_error(error: HTTPException) -> Response:
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    if status == 405:
        allowed = error.get_response().headers.get("Allow")
        return problem(405, f"{request.method} is not allowed here.", headers={"Allow": allowed} if allowed else None)
    if status == 404:
        return problem(404, "There is nothing at this address, or it belongs to another household.")
    if data.get("messages"):
        errors = _flatten(data["messages"])
        first = errors[0] if errors else {"field": None, "message": "The request is not valid."}
        return problem(422 if status == 422 else status,
                       f"{first['field']}: {first['message']}" if first["field"] else first["message"],
                       kind="validation", errors=errors)
    description = error.description if error.description != type(error).description else None
    if status == 500:
        description = None
    return problem(status, description)


class PreconditionProblem(ServiceError):
    """If-Match missing (428) or naming another version (412)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.http_status = status


def from_service_error(exc: ServiceError) -> Response:
    if isinstance(exc, PreconditionProblem):
        return problem(exc.http_status, exc.message, kind="precondition")
    if isinstance(exc, NotFound):
        return problem(404, exc.message)
    if isinstance(exc, Forbidden):
        return problem(403, exc.message)
    if isinstance(exc, Conflict):
        return problem(409, exc.message, kind="conflict")
    if isinstance(exc, Throttled):
        return problem(429, exc.message, headers={"Retry-After": str(exc.retry_after)})
    if isinstance(exc, ValidationFailed) or exc.field:
        return problem(422, exc.message, kind="validation",
                       errors=[{"field": exc.field, "message": exc.message}])
    return problem(400, exc.message)


def unexpected() -> Response:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return problem(500, "Something went wrong on our side; nothing was changed.")
