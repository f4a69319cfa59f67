"""The operations of /api/v1. Thin like the pages' views: parse (the schema), call the same
service function the page calls, shape the answer (portal/api/representations.py)."""
import uuid

from flask import url_for

from portal.api import bp
from portal.api import representations as rep
from portal.api import schemas as s
from portal.api.plumbing import caller, check_if_match, decode_cursor, encode_cursor, etag_of, links, operation
from portal.api.problems import MEDIA_TYPE
from portal.services import (
    accounts,
    activity,
    alerts,
    commands,
    dashboard,
    gateways,
    mailboxes,
    members,
    pins,
    webhooks,
)
from portal.services.errors import Forbidden, NotFound, ValidationFailed
from portal.urls import public_link

# What a link takes from a 201/202 answer: the new object's id.
ID = "$response.body#/id"


def refusals(*statuses):
    """Declare the problem documents an operation may answer besides 401/403/429."""

    def decorate(view):
        for status in statuses:
            view = bp.alt_response(status, schema=s.ProblemSchema, content_type=MEDIA_TYPE)(view)
        return view

    return decorate


def _account_id() -> uuid.UUID:
    return caller().account.id


def _owner() -> bool:
    return caller().membership.is_owner


def _start(query: dict) -> int:
    """Where the page the cursor asks for starts (the position after the last item given)."""
    return max(0, int((decode_cursor(query.get("cursor")) or {}).get("o", 0) or 0))


def _page_of(chunk: list, start: int, total: int, query: dict, endpoint: str, **values) -> dict:
    """The answer holding `chunk`, the items from `start` of `total`, with the next cursor."""
    limit = query["limit"]
    cursor = encode_cursor({"o": start + limit}) if start + limit < total else None
    return {"items": chunk, "next_cursor": cursor,
            "next": url_for(endpoint, cursor=cursor, limit=limit, **values) if cursor else None}


def _page(items: list, query: dict, endpoint: str, **values) -> dict:
    """One page of a short list the services give whole (members, gateways...)."""
    start = _start(query)
    return _page_of(items[start:start + query["limit"]], start, len(items), query, endpoint, **values)


def _with_etag(schema, data: dict, status: int = 200, headers: dict | None = None):
    """The answer with its ETag (of the body as it is sent)."""
    return data, status, {"ETag": _tag(schema, data), **(headers or {})}


def _tag(schema, data: dict) -> str:
    return etag_of(schema().dump(data))


# --- household and members -----------------------------------------------------------------

@bp.route("/household", methods=["GET"])
@operation(bp, "read")
@bp.response(200, s.HouseholdOut)
def household():
    """The token's household."""
    return _with_etag(s.HouseholdOut, _household())


def _household() -> dict:
    who = caller()
    return rep.household(who.account, who.membership, members.member_count(who.account.id))


@bp.route("/household", methods=["PATCH"])
@operation(bp, "manage", if_match="required")
@bp.arguments(s.HouseholdIn)
@bp.response(200, s.HouseholdOut)
@refusals(422)
def update_household(data):
    """Rename the household or change its time zone (owners only)."""
    who = caller()
    check_if_match(_tag(s.HouseholdOut, _household()), required=True)
    if data.get("name") is not None:
        accounts.rename_household(who.membership, who.user, data["name"])
    if data.get("time_zone") is not None:
        accounts.set_time_zone(who.membership, who.user, data["time_zone"])
    return _with_etag(s.HouseholdOut, _household())


@bp.route("/members", methods=["GET"])
@operation(bp, "read")
@bp.arguments(s.PageQuery, location="query")
@bp.response(200, s.MemberList)
def list_members(query):
    """The household's members, owners first."""
    return _page([rep.member(m) for m in members.list_members(_account_id())], query, "api.list_members")


@bp.route("/members/invites", methods=["POST"])
@operation(bp, "manage", idempotent=True)
@bp.arguments(s.InviteIn)
@bp.response(201, s.InviteOut)
@refusals(422)
def invite_member(data):
    """Invite someone by email (owners only): the one-time join link is in this answer."""
    who = caller()
    made = members.invite(who.membership, who.user, data["email"],
                          link_for=lambda token: public_link("members.accept", token=token))
    return rep.invite(made)


@bp.route("/members/invites", methods=["GET"])
@operation(bp, "read")
@bp.arguments(s.PageQuery, location="query")
@bp.response(200, s.OpenInviteList)
def list_invites(query):
    """Invites not accepted or revoked yet (expired ones included, to revoke)."""
    return _page([rep.open_invite(i) for i in members.list_open_invites(_account_id())], query, "api.list_invites")


@bp.route("/members/invites/<uuid:invite_id>", methods=["DELETE"])
@operation(bp, "manage")
@bp.response(204)
@refusals(404, 409)
def revoke_invite(invite_id):
    """Revoke an invite (owners only): its link stops working."""
    who = caller()
    members.revoke_invite(who.membership, who.user, invite_id)
    return None


@bp.route("/members/<uuid:membership_id>", methods=["DELETE"])
@operation(bp, "manage")
@bp.response(204)
@refusals(404, 409)
def remove_member(membership_id):
    """Remove a member (owners only): their sessions, API tokens and PINs go with them."""
    who = caller()
    members.remove_member(who.membership, who.user, membership_id)
    return None


def _after_removal(read, object_id, before: dict) -> dict:
    """The object as it stands after a removal began, or as it was, marked removed, when it
    is gone already (nothing was left to tell a device)."""
    try:
        return read(object_id)
    except NotFound:
        return {**before, "state": rep.REMOVED}


# --- gateways ---------------------------------------------------------------------------------

@bp.route("/gateways", methods=["GET"])
@operation(bp, "read")
@bp.arguments(s.PageQuery, location="query")
@bp.response(200, s.GatewayList)
def list_gateways(query):
    """The household's gateways with their boxes and states."""
    cards = dashboard.dashboard(caller().account, owner=_owner()).gateways
    return _page([rep.gateway(card) for card in cards], query, "api.list_gateways")


def _gateway(gateway_id) -> dict:
    return rep.gateway(dashboard.gateway_page(_account_id(), gateway_id).card)


@bp.route("/gateways", methods=["POST"])
@operation(bp, "manage", idempotent=True)
@bp.arguments(s.GatewayIn)
@bp.response(201, s.GatewayOut)
@refusals(422)
@links(bp, 201, "gateway_id", ID, "get_gateway", "rename_gateway", "remove_gateway")
@bp.doc(responses={201: {"links": {"add_box": {"operationId": "add_box", "requestBody": {
    "gateway_id": ID, "name": "A box on the new gateway"}}}}})
def add_gateway(data):
    """Add a gateway; IoTLock sets it up (poll its state). Without public_key IoTLock makes the
    key pair; its settings file (with the private key) is on the gateway's page, for owners."""
    gateway, _private = gateways.add_gateway(
        _account_id(), caller().user, name=data["name"], protocol=data["protocol"],
        key_mode=gateways.KEY_PASTE if data.get("public_key") else gateways.KEY_GENERATE,
        public_key=data.get("public_key"))
    return _with_etag(s.GatewayOut, _gateway(gateway.id), 201,
                      {"Location": url_for("api.get_gateway", gateway_id=gateway.id)})


@bp.route("/gateways/<uuid:gateway_id>", methods=["GET"])
@operation(bp, "read")
@bp.response(200, s.GatewayOut)
@refusals(404)
def get_gateway(gateway_id):
    """One gateway, its state and its boxes."""
    return _with_etag(s.GatewayOut, _gateway(gateway_id))


@bp.route("/gateways/<uuid:gateway_id>", methods=["PATCH"])
@operation(bp, "manage", if_match="required")
@bp.arguments(s.RenameIn)
@bp.response(200, s.GatewayOut)
@refusals(404, 409, 422)
def rename_gateway(data, gateway_id):
    """Rename a gateway."""
    check_if_match(_tag(s.GatewayOut, _gateway(gateway_id)), required=True)
    gateways.rename_gateway(_account_id(), gateway_id, caller().user, data["name"])
    return _with_etag(s.GatewayOut, _gateway(gateway_id))


@bp.route("/gateways/<uuid:gateway_id>", methods=["DELETE"])
@operation(bp, "manage", if_match="optional")
@bp.response(202, s.GatewayOut)
@refusals(404, 409)
def remove_gateway(gateway_id):
    """Remove a gateway with its boxes: the device is told to forget everything, then it is
    gone (poll it until 404)."""
    current = _gateway(gateway_id)
    check_if_match(_tag(s.GatewayOut, current), required=False)
    gateways.remove_gateway(_account_id(), gateway_id, caller().user)
    return _after_removal(_gateway, gateway_id, current)


# --- boxes ------------------------------------------------------------------------------------

def _box(mailbox_id) -> dict:
    page = dashboard.mailbox_page(_account_id(), mailbox_id, with_snapshot=False, owner=_owner(), pins_slice=(0, 0),
                                  events=0)
    return rep.box(page.mailbox, page.shown)


@bp.route("/boxes", methods=["GET"])
@operation(bp, "read")
@bp.arguments(s.PageQuery, location="query")
@bp.response(200, s.BoxList)
def list_boxes(query):
    """Every box of the household (mailboxes, parcel boxes, gun safes), with their states."""
    cards = dashboard.dashboard(caller().account, owner=_owner()).gateways
    return _page([rep.box(row.mailbox, row.shown) for card in cards for row in card.mailboxes], query,
                 "api.list_boxes")


@bp.route("/boxes", methods=["POST"])
@operation(bp, "manage", idempotent=True)
@bp.arguments(s.BoxIn)
@bp.response(201, s.BoxOut)
@refusals(404, 409, 422)
@links(bp, 201, "box_id", ID, "get_box", "rename_box", "remove_box", "list_pins", "add_delivery_code", "unlock")
def add_box(data):
    """Add a box to a gateway; IoTLock sets it up (poll its state)."""
    mailbox, _private = mailboxes.add_mailbox(
        _account_id(), data["gateway_id"], caller().user, name=data["name"], kind=data["kind"],
        key_mode=gateways.KEY_PASTE if data.get("public_key") else gateways.KEY_GENERATE,
        public_key=data.get("public_key"))
    return _with_etag(s.BoxOut, _box(mailbox.id), 201, {"Location": url_for("api.get_box", box_id=mailbox.id)})


@bp.route("/boxes/<uuid:box_id>", methods=["GET"])
@operation(bp, "read")
@bp.response(200, s.BoxOut)
@refusals(404)
def get_box(box_id):
    """One box and its state."""
    return _with_etag(s.BoxOut, _box(box_id))


@bp.route("/boxes/<uuid:box_id>", methods=["PATCH"])
@operation(bp, "manage", if_match="required")
@bp.arguments(s.RenameIn)
@bp.response(200, s.BoxOut)
@refusals(404, 409, 422)
def rename_box(data, box_id):
    """Rename a box."""
    check_if_match(_tag(s.BoxOut, _box(box_id)), required=True)
    mailboxes.rename_mailbox(_account_id(), box_id, caller().user, data["name"])
    return _with_etag(s.BoxOut, _box(box_id))


@bp.route("/boxes/<uuid:box_id>", methods=["DELETE"])
@operation(bp, "manage", if_match="optional")
@bp.response(202, s.BoxOut)
@refusals(404, 409)
def remove_box(box_id):
    """Remove a box with its PINs (poll it until 404)."""
    current = _box(box_id)
    check_if_match(_tag(s.BoxOut, current), required=False)
    mailboxes.remove_mailbox(_account_id(), box_id, caller().user)
    return _after_removal(_box, box_id, current)


# --- PINs and delivery codes --------------------------------------------------------------------

def _pin(pin_id) -> dict:
    """One live PIN, read with the page of its box's PINs that holds it (as the box page
    shows it), not with every PIN of the box."""
    mailbox_id = pins.mailbox_id_of(_account_id(), pin_id)
    page = dashboard.mailbox_page(_account_id(), mailbox_id, with_snapshot=False, owner=_owner(),
                                  pins_page=dashboard.pins_page_of(_account_id(), pin_id=pin_id), events=0)
    for row in page.pins:
        if str(row.pin.id) == str(pin_id):
            return rep.pin(row)
    raise NotFound()


@bp.route("/boxes/<uuid:box_id>/pins", methods=["GET"])
@operation(bp, "read")
@bp.arguments(s.PageQuery, location="query")
@bp.response(200, s.PinList)
@refusals(404)
def list_pins(query, box_id):
    """The box's PINs (delivery codes and duress PINs included), each with its delivery state."""
    # The page read in the database: it costs the same at 10 PINs as at 10,000.
    start = _start(query)
    page = dashboard.mailbox_page(_account_id(), box_id, with_snapshot=False, owner=_owner(),
                                  pins_slice=(start, query["limit"]), events=0)
    return _page_of([rep.pin(row) for row in page.pins], start, page.pins_total, query, "api.list_pins",
                    box_id=box_id)


@bp.route("/pins", methods=["POST"])
@operation(bp, "pins", idempotent=True)
@bp.arguments(s.PinIn)
@bp.response(201, s.PinList)
@refusals(404, 409, 422)
@links(bp, 201, "pin_id", "$response.body#/items/0/id", "get_pin", "update_pin", "remove_pin")
def add_pin(data):
    """Add a PIN to one or several boxes, with the rules of the page's form; each box's copy
    goes queued → sent → confirmed (poll GET /pins/{id})."""
    windows = None
    if data.get("windows") is not None:
        windows = [{"days": w["days"], "from": w["start"], "until": w["until"]} for w in data["windows"]]
    made = pins.add_pin(_account_id(), data["box_ids"], caller().user, label=data["label"], digits=data["digits"],
                        kind=data["kind"], starts=data.get("starts"), ends=data.get("ends"), windows=windows,
                        uses=data.get("uses"), assigned_to_id=data.get("assigned_to"), duress=data["duress"])
    items = [_pin(pin.id) for pin in made]
    return {"items": items, "next_cursor": None, "next": None}, 201, {
        "Location": url_for("api.get_pin", pin_id=made[0].id)}


@bp.route("/pins/<uuid:pin_id>", methods=["GET"])
@operation(bp, "read")
@bp.response(200, s.PinOut)
@refusals(404)
def get_pin(pin_id):
    """One PIN and its delivery state (a removed PIN is gone: 404)."""
    return _with_etag(s.PinOut, _pin(pin_id))


@bp.route("/pins/<uuid:pin_id>", methods=["PATCH"])
@operation(bp, "pins", if_match="required")
@bp.arguments(s.PinUpdate)
@bp.response(200, s.PinOut)
@refusals(404, 409, 422)
def update_pin(data, pin_id):
    """Give the PIN (on every box of its group) to another member, or to nobody."""
    check_if_match(_tag(s.PinOut, _pin(pin_id)), required=True)
    pins.reassign_pin(_account_id(), pin_id, caller().user, data["assigned_to"])
    return _with_etag(s.PinOut, _pin(pin_id))


@bp.route("/pins/<uuid:pin_id>", methods=["DELETE"])
@operation(bp, "pins", if_match="optional")
@bp.response(202, s.PinOut)
@refusals(404, 409)
def remove_pin(pin_id):
    """Remove a PIN: withdrawn if it never left, else taken off the box (it works until the
    box confirms; poll until 404). Removing twice is one removal."""
    current = _pin(pin_id)
    check_if_match(_tag(s.PinOut, current), required=False)
    pins.remove_pin(_account_id(), pin_id, caller().user)
    return _after_removal(_pin, pin_id, current)


@bp.route("/boxes/<uuid:box_id>/delivery-codes", methods=["POST"])
@operation(bp, "pins", idempotent=True)
@bp.arguments(s.DeliveryCodeIn)
@bp.response(201, s.DeliveryCodeOut)
@refusals(404, 409, 422)
@links(bp, 201, "pin_id", ID, "get_pin", "update_pin", "remove_pin")
def add_delivery_code(data, box_id):
    """A courier's one-time code for a mailbox or parcel box: the digits are in this answer
    only (a retry with the same Idempotency-Key gets the same answer)."""
    pin, code = pins.add_delivery_code(_account_id(), box_id, caller().user, label=data.get("label"),
                                       expires=data.get("expires"))
    return {**_pin(pin.id), "code": code}, 201, {"Location": url_for("api.get_pin", pin_id=pin.id)}


# --- unlocks ------------------------------------------------------------------------------------

@bp.route("/boxes/<uuid:box_id>/unlocks", methods=["POST"])
@operation(bp, "unlock", idempotent=True)
@bp.response(202, s.UnlockOut)
@refusals(404, 409)
@links(bp, 202, "unlock_id", ID, "get_unlock")
def unlock(box_id):
    """Open the box now: answered at once with the unlock to poll (GET /unlocks/{id});
    one that can't reach the box in time expires and the box stays shut."""
    command = commands.unlock(_account_id(), box_id, caller().user)
    return rep.unlock(command), 202, {"Location": url_for("api.get_unlock", unlock_id=command.id)}


@bp.route("/unlocks/<uuid:unlock_id>", methods=["GET"])
@operation(bp, "read")
@bp.response(200, s.UnlockOut)
@refusals(404)
def get_unlock(unlock_id):
    """Where an unlock stands: queued, sent, opened, refused or expired."""
    return _with_etag(s.UnlockOut, rep.unlock(commands.get_unlock(_account_id(), unlock_id)))


# --- activity -----------------------------------------------------------------------------------

@bp.route("/activity", methods=["GET"])
@operation(bp, "read")
@bp.arguments(s.EventQuery, location="query")
@bp.response(200, s.EventList)
@refusals(422)
def list_activity(query):
    """The household's activity, newest first, filtered by kind, box and time; the cursor
    keeps its place while new events arrive."""
    after = None
    position = decode_cursor(query.get("cursor"))
    if position is not None:
        try:
            after = (rep.parse_time(position["t"]), int(position["i"]))
        except (KeyError, TypeError, ValueError):
            raise ValidationFailed("This cursor is not one we gave out; start again without it.",
                                   field="cursor") from None
    events, more = activity.list_events_after(
        _account_id(), mailbox_id=query.get("box_id"), kind=query.get("kind"), since=query.get("since"),
        until=query.get("until"), after=after, limit=query["limit"], owner=_owner())
    cursor = None
    if more and events:
        cursor = encode_cursor({"t": events[-1].occurred_at.isoformat(), "i": events[-1].id})
    filters = {k: query[k] for k in ("kind", "box_id", "since", "until") if query.get(k) is not None}
    return {"items": [rep.event(e) for e in events], "next_cursor": cursor,
            "next": url_for("api.list_activity", cursor=cursor, limit=query["limit"], **filters) if cursor else None}


# --- webhooks (owners) -----------------------------------------------------------------------------

def _require_owner(what: str = "webhooks") -> None:
    if not _owner():
        raise Forbidden(f"Only owners can manage {what}.")


@bp.route("/webhooks", methods=["GET"])
@operation(bp, "read")
@bp.arguments(s.PageQuery, location="query")
@bp.response(200, s.WebhookList)
def list_webhooks(query):
    """The household's webhooks (owners only)."""
    _require_owner()
    return _page([rep.webhook(e) for e in webhooks.list_endpoints(_account_id())], query, "api.list_webhooks")


@bp.route("/webhooks", methods=["POST"])
@operation(bp, "manage", idempotent=True)
@bp.arguments(s.WebhookIn)
@bp.response(201, s.WebhookWithSecret)
@refusals(422)
@links(bp, 201, "webhook_id", ID, "get_webhook", "update_webhook", "rotate_webhook", "delete_webhook",
       "webhook_deliveries")
def add_webhook(data):
    """Send alerts to a URL of yours, signed as Standard Webhooks says; the secret is in this
    answer only."""
    endpoint, secret = webhooks.add_endpoint(caller().membership, url=data["url"], description=data["description"],
                                             kinds=data["kinds"])
    return {**rep.webhook(endpoint), "secret": secret}, 201, {
        "Location": url_for("api.get_webhook", webhook_id=endpoint.id)}


@bp.route("/webhooks/<uuid:webhook_id>", methods=["GET"])
@operation(bp, "read")
@bp.response(200, s.WebhookOut)
@refusals(404)
def get_webhook(webhook_id):
    """One webhook (owners only)."""
    return _with_etag(s.WebhookOut, rep.webhook(webhooks.get_endpoint(caller().membership, webhook_id)))


@bp.route("/webhooks/<uuid:webhook_id>", methods=["PATCH"])
@operation(bp, "manage", if_match="required")
@bp.arguments(s.WebhookUpdate)
@bp.response(200, s.WebhookOut)
@refusals(404, 422)
def update_webhook(data, webhook_id):
    """Turn a webhook on or off."""
    membership = caller().membership
    check_if_match(_tag(s.WebhookOut, rep.webhook(webhooks.get_endpoint(membership, webhook_id))), required=True)
    return _with_etag(s.WebhookOut, rep.webhook(webhooks.set_enabled(membership, webhook_id, data["enabled"])))


@bp.route("/webhooks/<uuid:webhook_id>/rotate", methods=["POST"])
@operation(bp, "manage", idempotent=True)
@bp.response(200, s.WebhookWithSecret)
@refusals(404)
def rotate_webhook(webhook_id):
    """A new signing secret (in this answer only); the previous one signs beside it for 24 h."""
    endpoint, secret = webhooks.rotate_secret(caller().membership, webhook_id)
    return {**rep.webhook(endpoint), "secret": secret}


@bp.route("/webhooks/<uuid:webhook_id>", methods=["DELETE"])
@operation(bp, "manage", if_match="optional")
@bp.response(204)
@refusals(404)
def delete_webhook(webhook_id):
    """Delete a webhook and its delivery log."""
    membership = caller().membership
    check_if_match(_tag(s.WebhookOut, rep.webhook(webhooks.get_endpoint(membership, webhook_id))), required=False)
    webhooks.delete_endpoint(membership, webhook_id)
    return None


@bp.route("/webhooks/<uuid:webhook_id>/deliveries", methods=["GET"])
@operation(bp, "read")
@bp.arguments(s.PageQuery, location="query")
@bp.response(200, s.WebhookDeliveryList)
@refusals(404)
def webhook_deliveries(query, webhook_id):
    """The webhook's latest messages, newest first, each with its attempts."""
    _endpoint, entries = webhooks.delivery_log(caller().membership, webhook_id)
    return _page([rep.webhook_delivery(e) for e in entries], query, "api.webhook_deliveries", webhook_id=webhook_id)


@bp.route("/webhook-deliveries/<uuid:delivery_id>/resend", methods=["POST"])
@operation(bp, "manage", idempotent=True)
@bp.response(202, s.WebhookDeliveryOut)
@refusals(404, 409)
def resend_webhook_delivery(delivery_id):
    """Send a finished message again, with the same webhook-id and body."""
    membership = caller().membership
    delivery = webhooks.resend(membership, delivery_id)
    _endpoint, entries = webhooks.delivery_log(membership, delivery.endpoint_id)
    attempts = next((e.attempts for e in entries if e.delivery.id == delivery.id), [])
    return rep.webhook_delivery(webhooks.LogEntry(delivery, attempts))


# --- alert preferences (each member's own; the household's defaults for owners) -------------------

def _preferences(box_id=None, *, household: bool = False) -> dict:
    membership = caller().membership
    rows = alerts.preference_rows(membership, box_id, household=household)
    own = box_id is not None and box_id in alerts.boxes_with_own_choices(membership)
    return rep.alert_preferences(rows, box_id, own)


def _save_preferences(data: dict, box_id=None, *, household: bool = False) -> None:
    membership = caller().membership
    chosen = alerts.check_choices(membership, data["choices"], box_id, household=household)
    alerts.save_preferences(membership, chosen, box_id, household=household)


@bp.route("/alert-preferences", methods=["GET"])
@operation(bp, "read")
@bp.response(200, s.AlertPreferencesOut)
def alert_preferences():
    """The token's member's alert choices for all boxes (and for the household-wide kinds)."""
    return _with_etag(s.AlertPreferencesOut, _preferences())


@bp.route("/alert-preferences", methods=["PUT"])
@operation(bp, "manage", if_match="required")
@bp.arguments(s.AlertChoicesIn)
@bp.response(200, s.AlertPreferencesOut)
@refusals(422)
def set_alert_preferences(data):
    """Replace the member's choices for all boxes: every kind sent reaches the channels listed;
    every kind left out is off."""
    check_if_match(_tag(s.AlertPreferencesOut, _preferences()), required=True)
    _save_preferences(data)
    return _with_etag(s.AlertPreferencesOut, _preferences())


@bp.route("/boxes/<uuid:box_id>/alert-preferences", methods=["GET"])
@operation(bp, "read")
@bp.response(200, s.AlertPreferencesOut)
@refusals(404)
def box_alert_preferences(box_id):
    """The member's alert choices for one box: its own, or those for all boxes it follows."""
    return _with_etag(s.AlertPreferencesOut, _preferences(box_id))


@bp.route("/boxes/<uuid:box_id>/alert-preferences", methods=["PUT"])
@operation(bp, "manage", if_match="required")
@bp.arguments(s.AlertChoicesIn)
@bp.response(200, s.AlertPreferencesOut)
@refusals(404, 422)
def set_box_alert_preferences(data, box_id):
    """Give one box choices of its own (the box's kinds only)."""
    check_if_match(_tag(s.AlertPreferencesOut, _preferences(box_id)), required=True)
    _save_preferences(data, box_id)
    return _with_etag(s.AlertPreferencesOut, _preferences(box_id))


@bp.route("/boxes/<uuid:box_id>/alert-preferences", methods=["DELETE"])
@operation(bp, "manage")
@bp.response(204)
@refusals(404)
def forget_box_alert_preferences(box_id):
    """The box follows the member's choices for all boxes again."""
    alerts.forget_box_choices(caller().membership, box_id)
    return None


@bp.route("/alert-preferences/quiet-hours", methods=["GET"])
@operation(bp, "read")
@bp.response(200, s.QuietHoursOut)
def quiet_hours():
    """The member's quiet hours: email and push wait until they end; the bell does not."""
    who = caller()
    return _with_etag(s.QuietHoursOut, rep.quiet_hours(who.membership, who.account))


@bp.route("/alert-preferences/quiet-hours", methods=["PUT"])
@operation(bp, "manage", if_match="required")
@bp.arguments(s.QuietHours)
@bp.response(200, s.QuietHoursOut)
@refusals(422)
def set_quiet_hours(data):
    """Set both times (HH:MM, in the household's time zone), or both null for none."""
    who = caller()
    check_if_match(_tag(s.QuietHoursOut, rep.quiet_hours(who.membership, who.account)), required=True)
    alerts.set_quiet_hours(who.membership, data["quiet_from"], data["quiet_until"])
    return _with_etag(s.QuietHoursOut, rep.quiet_hours(who.membership, who.account))


@bp.route("/household/alert-defaults", methods=["GET"])
@operation(bp, "read")
@bp.response(200, s.AlertPreferencesOut)
def alert_defaults():
    """What members hear until they choose (owners only)."""
    _require_owner("the household’s alert defaults")
    return _with_etag(s.AlertPreferencesOut, _preferences(household=True))


@bp.route("/household/alert-defaults", methods=["PUT"])
@operation(bp, "manage", if_match="required")
@bp.arguments(s.AlertChoicesIn)
@bp.response(200, s.AlertPreferencesOut)
@refusals(422)
def set_alert_defaults(data):
    """Replace the household's defaults (owners only)."""
    _require_owner("the household’s alert defaults")
    check_if_match(_tag(s.AlertPreferencesOut, _preferences(household=True)), required=True)
    _save_preferences(data, household=True)
    return _with_etag(s.AlertPreferencesOut, _preferences(household=True))
