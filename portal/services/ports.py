"""Ports the services name and other layers fill (app.extensions keys): the services
never import those layers."""

# The port through which the virtual gateways (portal/jobs/virtual_gateways.py, when
# VIRTUAL_GATEWAYS is on) offer the keypad and "what the box holds": app.extensions holds
# a callable gateway -> VirtualGateway | None. The services never import that side.
VIRTUAL_DEVICES = "iotlock.virtual_devices"
# ... and through which a gateway's generated private key reaches the virtual gateway that
# plays it (the device's own storage, never the portal's tables): a callable
# (gateway_id, private_key) -> None, present only while VIRTUAL_GATEWAYS is on.
VIRTUAL_DEVICE_KEYS = "iotlock.virtual_device_keys"
