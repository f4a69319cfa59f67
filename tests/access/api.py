"""Routes of the API (/api/v1, tokens only) and of the API tokens page (sessions)."""
from tests.access import Route

GW = {"gateway_id": "gateway"}
BOX = {"box_id": "mailbox"}
PIN = {"pin_id": "pin"}
HOOK = {"webhook_id": "webhook"}


def api(endpoint, method="GET", scope="read", args=None, data=None, owners_only=False):
    return Route(f"api.{endpoint}", (method,), access="api", scope=scope, args=args or {}, data=data or {},
                 owners_only=owners_only)


ROUTES = [
    # the settings page (a session, like every page)
    Route("account.api_tokens_page", ("GET", "POST"), data={"name": "Matrix token", "scopes": "read",
                                                            "expires_in_days": "30"}),
    Route("account.revoke_api_token", ("POST",), args={"token_id": "api_token"}),
    # the document and its reference page: public
    Route("api-docs.openapi_json", access="public"),
    Route("api_reference.page", access="public"),
    # the API
    api("household"),
    api("update_household", "PATCH", "manage", data={"name": "Renamed"}, owners_only=True),
    api("list_members"),
    api("list_invites"),
    api("revoke_invite", "DELETE", "manage", args={"invite_id": "invite"}, owners_only=True),
    api("invite_member", "POST", "manage", data={"email": "matrix-invitee@example.com"}, owners_only=True),
    api("remove_member", "DELETE", "manage", args={"membership_id": "membership"}, owners_only=True),
    api("list_gateways"),
    api("add_gateway", "POST", "manage", data={"name": "Matrix gateway"}),
    api("get_gateway", args=GW),
    api("rename_gateway", "PATCH", "manage", args=GW, data={"name": "Renamed"}),
    api("remove_gateway", "DELETE", "manage", args=GW),
    api("list_boxes"),
    api("add_box", "POST", "manage", data={"gateway_id": "@gateway", "name": "Matrix box"}),
    api("get_box", args=BOX),
    api("rename_box", "PATCH", "manage", args=BOX, data={"name": "Renamed"}),
    api("remove_box", "DELETE", "manage", args=BOX),
    api("list_pins", args=BOX),
    api("add_pin", "POST", "pins", data={"box_ids": ["@mailbox"], "label": "Intruder", "digits": "5827"}),
    api("get_pin", args=PIN),
    api("update_pin", "PATCH", "pins", args=PIN, data={"assigned_to": None}),
    api("remove_pin", "DELETE", "pins", args=PIN),
    api("add_delivery_code", "POST", "pins", args=BOX, data={"label": "Intruder"}),
    api("unlock", "POST", "unlock", args=BOX),
    api("get_unlock", args={"unlock_id": "unlock"}),
    api("list_activity"),
    api("list_webhooks", owners_only=True),
    api("add_webhook", "POST", "manage", data={"url": "https://hooks.example.com/matrix", "kinds": ["opened"]},
        owners_only=True),
    api("get_webhook", args=HOOK, owners_only=True),
    api("update_webhook", "PATCH", "manage", args=HOOK, data={"enabled": False}, owners_only=True),
    api("rotate_webhook", "POST", "manage", args=HOOK, owners_only=True),
    api("delete_webhook", "DELETE", "manage", args=HOOK, owners_only=True),
    api("webhook_deliveries", args=HOOK, owners_only=True),
    api("resend_webhook_delivery", "POST", "manage", args={"delivery_id": "webhook_delivery"}, owners_only=True),
    api("alert_preferences"),
    api("set_alert_preferences", "PUT", "manage", data={"choices": {"opened": ["portal"]}}),
    api("box_alert_preferences", args=BOX),
    api("set_box_alert_preferences", "PUT", "manage", args=BOX, data={"choices": {"opened": ["email"]}}),
    api("forget_box_alert_preferences", "DELETE", "manage", args=BOX),
    api("quiet_hours"),
    api("set_quiet_hours", "PUT", "manage", data={"quiet_from": "22:00", "quiet_until": "07:00"}),
    api("alert_defaults", owners_only=True),
    api("set_alert_defaults", "PUT", "manage", data={"choices": {"opened": ["portal"]}}, owners_only=True),
]
