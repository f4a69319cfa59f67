"""Routes of the gateways and mailboxes blueprints (the devices area)."""
from tests.access import Route

GW = {"gateway_id": "gateway"}
MB = {"mailbox_id": "mailbox"}
PIN = {"pin_id": "pin"}
CMD = {"command_id": "command"}

ROUTES = [
    # gateways
    Route("gateways.index"),
    Route("gateways.add", ("GET", "POST"), data={"name": "Matrix gateway", "key_mode": "generate"}),
    Route("gateways.show", args=GW),
    Route("gateways.rename", ("GET", "POST"), args=GW, data={"name": "Renamed"}),
    Route("gateways.remove", ("GET", "POST"), args=GW),
    Route("gateways.retry", ("POST",), args=GW),
    Route("gateways.rotate_key", ("POST",), access="owner", args=GW),
    # The settings file holds the gateway's keys: owners only (members read why, with a 403).
    Route("gateways.settings", args=GW, access="owner"),
    Route("gateways.settings_download", ("GET", "POST"), access="owner", args=GW, data={"password": "wrong password"}),
    Route("gateways.discard_private_key", ("POST",), args=GW),
    Route("gateways.replace_keys", ("GET", "POST"), access="owner", args=GW, data={"password": "wrong password"}),
    # mailboxes
    Route("mailboxes.add", ("GET", "POST"), args=GW,
          data={"name": "Matrix box", "kind": "mailbox", "key_mode": "generate"}),
    Route("mailboxes.show", args=MB),
    Route("mailboxes.box", args=MB),
    Route("mailboxes.rename", ("GET", "POST"), args=MB, data={"name": "Renamed"}),
    Route("mailboxes.remove", ("GET", "POST"), args=MB),
    Route("mailboxes.retry", ("POST",), args=MB),
    Route("mailboxes.unlock", ("GET", "POST"), args=MB),
    Route("mailboxes.add_pin", ("GET", "POST"), args=MB, data={"label": "Intruder", "digits": "5827"}),
    Route("mailboxes.pin_preview", ("POST",), args=MB, data={"kind": "uses", "uses": "3"}),
    Route("mailboxes.delivery_code", ("GET", "POST"), args=MB, data={"label": "Intruder"}),
    Route("mailboxes.safe_mode_save", ("POST",), args=MB, data={"enabled": "y", "attempts": "5", "lockouts": "1"}),
    Route("mailboxes.keypad", ("GET", "POST"), args=MB, data={"digits": "482915", "key": "enter"}),
    Route("mailboxes.key", ("GET", "POST"), args=MB, data={"password": "wrong password"}),
    Route("mailboxes.key_download", ("POST",), args=MB),
    Route("mailboxes.discard_private_key", ("POST",), args=MB),
    Route("mailboxes.new_key_pair", ("POST",), args=MB),
    # PINs and changes: the id alone names them (and their household)
    Route("mailboxes.remove_pin", ("POST",), args=PIN),
    Route("mailboxes.show_pin", ("GET", "POST"), args=PIN, data={"password": "wrong password"}),
    Route("mailboxes.assign_pin", ("POST",), args=PIN, data={"assigned_to": ""}),
    Route("mailboxes.retry_change", ("POST",), args=CMD),
    Route("mailboxes.withdraw_change", ("POST",), args=CMD),
]
