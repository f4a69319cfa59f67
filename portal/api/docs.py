"""What the OpenAPI document says beyond the operations (the bearer scheme, the webhook
messages under 3.1's `webhooks`), and the reference page that renders it, served locally."""
from flask import Blueprint, current_app, render_template
from marshmallow import Schema, fields, validate

from portal.services import webhooks

page_bp = Blueprint("api_reference", __name__, url_prefix="/api/v1")

DESCRIPTION = """Everything a household does in the IoTLock portal, as JSON.

Authenticate with a personal access token made under Settings → API tokens:
`Authorization: Bearer iotl_...`. A token acts as its member, in its one household, within
its scopes: `read` (every GET), `manage` (members, gateways, boxes, webhooks), `pins` (PINs
and delivery codes), `unlock`. Session cookies do not authenticate the API.

Errors are RFC 9457 problem documents (`application/problem+json`) with field-level
`errors`. Every POST takes an optional `Idempotency-Key`. Single resources carry an `ETag`;
PATCH and PUT need `If-Match` (428 without it, 412 when stale), DELETE takes it optionally. Lists
are paged with an opaque `cursor` and `limit`. Each token may make `API_RATE_LIMIT` requests
per window (120 a minute by default): past it, 429 with `Retry-After`. No CORS headers are sent.
"""

SIGNATURE_HEADERS = [
    {"in": "header", "name": "webhook-id", "required": True, "schema": {"type": "string"},
     "description": "The message's id, the same on every retry and resend (drop duplicates with it)."},
    {"in": "header", "name": "webhook-timestamp", "required": True, "schema": {"type": "string"},
     "description": "Unix seconds of this attempt."},
    {"in": "header", "name": "webhook-signature", "required": True, "schema": {"type": "string"},
     "description": "`v1,` + base64 HMAC-SHA256 of `id.timestamp.body`, keyed with the base64 part of the "
                    "`whsec_` secret; after a rotation two space-separated signatures for 24 hours."},
]


class AlertData(Schema):
    id = fields.UUID(required=True)
    kind = fields.Str(required=True, validate=validate.OneOf(tuple(webhooks.KINDS)))
    summary = fields.Str(required=True)
    household = fields.Str(allow_none=True, required=True)
    box = fields.Str(allow_none=True, required=True)
    occurred_at = fields.DateTime(required=True)
    url = fields.Str(required=True, metadata={"description": "The box's page (or the activity log)."})


class AlertMessage(Schema):
    """The body of a webhook message (portal/services/webhooks.py, message_body)."""

    type = fields.Str(required=True, metadata={"description": "alert.<kind>"})
    timestamp = fields.DateTime(required=True)
    data = fields.Nested(AlertData, required=True)


def spec_kwargs() -> dict:
    return {
        "info": {"description": DESCRIPTION},
        "webhooks": {
            f"alert.{kind}": {"post": {
                "summary": words,
                "description": f"Sent to each enabled webhook that chose “{kind}”: {words.lower()}.",
                "parameters": SIGNATURE_HEADERS,
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/AlertMessage"}}}},
                "responses": {"2XX": {"description": "Received: no retry."},
                              "default": {"description": "Retried with backoff for up to 24 hours."}},
            }}
            for kind, words in webhooks.KINDS.items()
        },
    }


def add_components(spec) -> None:
    spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer",
                                                   "bearerFormat": "iotl_ followed by 43 characters"})
    spec.components.schema("AlertMessage", schema=AlertMessage)


def document() -> dict:
    api = current_app.extensions["flask-smorest"]["apis"][""]["ext_obj"]
    return api.spec.to_dict()


@page_bp.route("/docs")
def page():
    """The reference, rendered from the same document as openapi.json (no script, no CDN)."""
    return render_template("api/docs.html", spec=document())
