"""The API's request and response bodies. Each schema both validates what comes in (webargs)
and is what the OpenAPI document says, so the two can't drift apart; enumerations come
from the constants the services check against. Rules beyond shape (a PIN's digits, a
URL's address) stay in the services, whose refusals name the same fields."""
from marshmallow import Schema, fields, validate

from portal.models.alerts import ALERT_KINDS, CHANNELS
from portal.models.devices import MAILBOX_KINDS, PROTOCOLS
from portal.services import pin_rules, webhooks


class Strict(Schema):
    """Unknown fields are refused (422 naming them), not silently dropped."""


# --- problems ---------------------------------------------------------------------------------

class FieldError(Schema):
    field = fields.Str(allow_none=True,
                       metadata={"description": "The request field at fault (null: the whole request)."})
    message = fields.Str(required=True)


class ProblemSchema(Schema):
    """RFC 9457 problem details."""

    type = fields.Str(required=True)
    title = fields.Str(required=True)
    status = fields.Int(required=True)
    detail = fields.Str(required=True)
    errors = fields.List(fields.Nested(FieldError), metadata={"description": "Field-level details (validation)."})


class Delivery(Schema):
    """Where a change stands on its way to a device, in the words the pages show."""

    state = fields.Str(required=True, metadata={"description": "queued, sent, confirmed, failed, removing, ..."})
    label = fields.Str(required=True)
    reason = fields.Str(allow_none=True, required=True)
    final = fields.Bool(required=True, metadata={"description": "false while it is still moving: poll again."})


class Cursor(Schema):
    next_cursor = fields.Str(allow_none=True, required=True,
                             metadata={"description": "Pass as ?cursor= for the next page; null on the last."})
    next = fields.Str(allow_none=True, required=True, metadata={"description": "The next page's URL, or null."})


class PageQuery(Strict):
    cursor = fields.Str(validate=validate.Length(max=400))
    limit = fields.Int(load_default=50, validate=validate.Range(min=1, max=200))


# --- household, members -------------------------------------------------------------------------

class HouseholdOut(Schema):
    id = fields.UUID(required=True)
    name = fields.Str(required=True)
    time_zone = fields.Str(required=True)
    role = fields.Str(required=True, metadata={"description": "The token's member: owner or member."})
    members = fields.Int(required=True)


class HouseholdIn(Strict):
    name = fields.Str(load_default=None, validate=validate.Length(max=200))
    time_zone = fields.Str(load_default=None, validate=validate.Length(max=64),
                           metadata={"description": "An IANA zone name, like Europe/Paris."})


class MemberOut(Schema):
    id = fields.UUID(required=True, metadata={"description": "The membership's id (for removal)."})
    email = fields.Str(required=True)
    role = fields.Str(required=True, validate=validate.OneOf(("owner", "member")))
    joined_at = fields.DateTime(required=True)


class MemberList(Cursor):
    items = fields.List(fields.Nested(MemberOut), required=True)


class InviteIn(Strict):
    email = fields.Str(required=True, validate=validate.Length(min=1, max=254))


class OpenInviteOut(Schema):
    id = fields.UUID(required=True)
    email = fields.Str(required=True)
    created_at = fields.DateTime(required=True)
    expires_at = fields.DateTime(required=True)


class OpenInviteList(Cursor):
    items = fields.List(fields.Nested(OpenInviteOut), required=True)


class InviteOut(Schema):
    id = fields.UUID(required=True)
    email = fields.Str(required=True)
    expires_at = fields.DateTime(required=True)
    link = fields.Str(required=True, metadata={"description": "The one-time join link; shown only in this answer."})
    email_sent = fields.Bool(required=True)


# --- gateways and boxes ---------------------------------------------------------------------------

class GatewayIn(Strict):
    name = fields.Str(required=True, validate=validate.Length(max=200))
    protocol = fields.Str(load_default=PROTOCOLS[0], validate=validate.OneOf(PROTOCOLS))
    public_key = fields.Str(load_default=None, allow_none=True, validate=validate.Length(max=200),
                            metadata={"description": "The gateway's X25519 public key (base64); omit to let "
                                                     "IoTLock make the key pair."})


class RenameIn(Strict):
    name = fields.Str(required=True, validate=validate.Length(max=200))


class BoxSummary(Schema):
    id = fields.UUID(required=True)
    name = fields.Str(required=True)
    kind = fields.Str(required=True)
    state = fields.Nested(Delivery, required=True)


class GatewayOut(Schema):
    id = fields.UUID(required=True)
    name = fields.Str(required=True)
    protocol = fields.Str(required=True)
    public_key = fields.Str(required=True)
    created_at = fields.DateTime(required=True)
    last_heartbeat_at = fields.DateTime(allow_none=True, required=True)
    state = fields.Nested(Delivery, required=True)
    boxes = fields.List(fields.Nested(BoxSummary), required=True)


class GatewayList(Cursor):
    items = fields.List(fields.Nested(GatewayOut), required=True)


class BoxIn(Strict):
    gateway_id = fields.UUID(required=True)
    name = fields.Str(required=True, validate=validate.Length(max=200))
    kind = fields.Str(load_default="mailbox", validate=validate.OneOf(tuple(MAILBOX_KINDS)))
    public_key = fields.Str(load_default=None, allow_none=True, validate=validate.Length(max=200),
                            metadata={"description": "The box's X25519 public key (base64); omit to let IoTLock "
                                                     "make the key pair."})


class BoxOut(Schema):
    id = fields.UUID(required=True)
    gateway_id = fields.UUID(required=True)
    name = fields.Str(required=True)
    kind = fields.Str(required=True)
    created_at = fields.DateTime(required=True)
    state = fields.Nested(Delivery, required=True)
    is_open = fields.Bool(allow_none=True, required=True)
    battery_percent = fields.Int(allow_none=True, required=True)
    parcel_since = fields.DateTime(allow_none=True, required=True,
                                   metadata={"description": "A delivered parcel waits since then (null: none)."})
    locked_until = fields.DateTime(allow_none=True, required=True,
                                   metadata={"description": "Safe mode: the keypad is locked out until then."})


class BoxList(Cursor):
    items = fields.List(fields.Nested(BoxOut), required=True)


# --- PINs -------------------------------------------------------------------------------------------

class WindowSchema(Strict):
    days = fields.List(fields.Int(validate=validate.Range(min=0, max=6)), required=True,
                       validate=validate.Length(min=1, max=7),
                       metadata={"description": "Weekdays, Monday = 0."})
    start = fields.Str(required=True, data_key="from", validate=validate.Regexp(r"^\d\d:\d\d$"),
                       metadata={"example": "08:00"})
    until = fields.Str(required=True, validate=validate.Regexp(r"^\d\d:\d\d$"), metadata={"example": "18:00"})


class PinIn(Strict):
    box_ids = fields.List(fields.UUID(), required=True, validate=validate.Length(min=1, max=50),
                          metadata={"description": "One or several of the household's boxes: a PIN per box."})
    label = fields.Str(required=True, validate=validate.Length(max=200))
    digits = fields.Str(required=True, validate=validate.Length(max=40), metadata={"example": "4821"})
    kind = fields.Str(load_default="always", validate=validate.OneOf(pin_rules.KINDS),
                      metadata={"description": "When it works: always, range (starts/ends), weekly (windows), "
                                               "uses (a number of opens), once."})
    starts = fields.Str(load_default=None, allow_none=True, validate=validate.Length(max=40),
                        metadata={"description": "YYYY-MM-DDTHH:MM in the household's time zone."})
    ends = fields.Str(load_default=None, allow_none=True, validate=validate.Length(max=40),
                      metadata={"description": "YYYY-MM-DDTHH:MM in the household's time zone."})
    windows = fields.List(fields.Nested(WindowSchema), load_default=None, allow_none=True,
                          validate=validate.Length(max=pin_rules.MAX_WINDOWS))
    uses = fields.Int(load_default=None, allow_none=True, validate=validate.Range(min=-1_000_000, max=1_000_000))
    assigned_to = fields.UUID(load_default=None, allow_none=True,
                              metadata={"description": "The user id of the member it belongs to."})
    duress = fields.Bool(load_default=False)


class PinOut(Schema):
    id = fields.UUID(required=True)
    box_id = fields.UUID(required=True)
    group_id = fields.UUID(allow_none=True, required=True)
    label = fields.Str(required=True)
    purpose = fields.Str(required=True, metadata={"description": "household, courier (a delivery code) or duress."})
    rules = fields.Str(required=True, metadata={"description": "Its rules in words."})
    rule_state = fields.Str(required=True)
    assigned_to = fields.UUID(allow_none=True, required=True)
    created_at = fields.DateTime(required=True)
    state = fields.Nested(Delivery, required=True)


class PinUpdate(Strict):
    assigned_to = fields.UUID(required=True, allow_none=True,
                              metadata={"description": "The user id of the member it now belongs to, or null."})


class PinList(Cursor):
    items = fields.List(fields.Nested(PinOut), required=True)


class DeliveryCodeIn(Strict):
    label = fields.Str(load_default=None, allow_none=True, validate=validate.Length(max=200))
    expires = fields.Str(load_default=None, allow_none=True, validate=validate.Length(max=40),
                         metadata={"description": "YYYY-MM-DDTHH:MM in the household's time zone; a week if omitted."})


class DeliveryCodeOut(PinOut):
    code = fields.Str(required=True, metadata={"description": "The code for the courier: shown only in this answer."})


# --- unlocks, activity -------------------------------------------------------------------------------

class UnlockOut(Schema):
    id = fields.UUID(required=True)
    box_id = fields.UUID(required=True)
    created_at = fields.DateTime(required=True)
    expires_at = fields.DateTime(allow_none=True, required=True)
    state = fields.Nested(Delivery, required=True)


class EventQuery(PageQuery):
    kind = fields.Str(validate=validate.Length(max=64),
                      metadata={"description": "An event kind (pin.added) or a family of them (pin)."})
    box_id = fields.UUID()
    since = fields.AwareDateTime(metadata={"description": "Events at or after this time."})
    until = fields.AwareDateTime(metadata={"description": "Events before this time."})


class EventOut(Schema):
    id = fields.Int(required=True)
    kind = fields.Str(required=True)
    summary = fields.Str(required=True)
    actor = fields.Str(required=True)
    actor_kind = fields.Str(required=True)
    box_id = fields.UUID(allow_none=True, required=True)
    gateway_id = fields.UUID(allow_none=True, required=True)
    occurred_at = fields.DateTime(required=True)
    recorded_at = fields.DateTime(required=True)


class EventList(Cursor):
    items = fields.List(fields.Nested(EventOut), required=True)


# --- webhooks -------------------------------------------------------------------------------------------

class WebhookIn(Strict):
    url = fields.Str(required=True, validate=validate.Length(min=1, max=2048))
    description = fields.Str(load_default="", validate=validate.Length(max=200))
    kinds = fields.List(fields.Str(validate=validate.OneOf(tuple(webhooks.KINDS))), required=True,
                        validate=validate.Length(min=1))


class WebhookUpdate(Strict):
    enabled = fields.Bool(required=True)


class WebhookOut(Schema):
    id = fields.UUID(required=True)
    url = fields.Str(required=True)
    description = fields.Str(required=True)
    kinds = fields.List(fields.Str(), required=True)
    enabled = fields.Bool(required=True)
    created_at = fields.DateTime(required=True)


class WebhookList(Cursor):
    items = fields.List(fields.Nested(WebhookOut), required=True)


class WebhookWithSecret(WebhookOut):
    secret = fields.Str(required=True, metadata={"description": "whsec_...: shown only in this answer."})


class AttemptOut(Schema):
    at = fields.DateTime(required=True)
    status_code = fields.Int(allow_none=True, required=True)
    result = fields.Str(required=True)


class WebhookDeliveryOut(Schema):
    id = fields.UUID(required=True)
    message_id = fields.Str(required=True)
    event_type = fields.Str(required=True)
    state = fields.Str(required=True)
    attempts = fields.List(fields.Nested(AttemptOut), required=True)
    created_at = fields.DateTime(required=True)


class WebhookDeliveryList(Cursor):
    items = fields.List(fields.Nested(WebhookDeliveryOut), required=True)




# --- alert preferences ------------------------------------------------------------------------

_CHOICES = fields.Dict(
    keys=fields.Str(validate=validate.OneOf(tuple(ALERT_KINDS))),
    values=fields.List(fields.Str(validate=validate.OneOf(CHANNELS))),
    required=True,
    metadata={"description": "For each alert kind, the channels it reaches (portal = the bell, email, "
                             "push). A kind left out is off on every channel."},
)


class AlertChoicesIn(Strict):
    choices = _CHOICES


class AlertKindOut(Schema):
    kind = fields.Str(required=True)
    words = fields.Str(required=True, metadata={"description": "The kind as the settings page says it."})
    channels = fields.List(fields.Str(), required=True, metadata={"description": "The channels it reaches now."})
    locked = fields.Bool(required=True, metadata={"description": "Always on (duress, for owners)."})


class AlertPreferencesOut(Schema):
    box_id = fields.UUID(allow_none=True, required=True,
                         metadata={"description": "The box these choices are for; null: all boxes."})
    own_choices = fields.Bool(required=True, metadata={
        "description": "For one box: whether it has choices of its own (else it follows those for all boxes)."})
    choices = _CHOICES
    kinds = fields.List(fields.Nested(AlertKindOut), required=True)


class QuietHours(Strict):
    quiet_from = fields.Str(allow_none=True, required=True, validate=validate.Length(max=5),
                            metadata={"description": "HH:MM in the household's time zone, or null for none."})
    quiet_until = fields.Str(allow_none=True, required=True, validate=validate.Length(max=5))


class QuietHoursOut(QuietHours):
    time_zone = fields.Str(dump_only=True, metadata={"description": "The household's time zone."})
