"""Routes of the webhooks blueprint: owners only."""
from tests.access import Route

ROUTES = [
    Route("webhooks.index", access="owner"),
    Route("webhooks.add", ("GET", "POST"), access="owner",
          data={"url": "https://hooks.example.com/matrix", "kinds": "opened"}),
    Route("webhooks.rotate", ("POST",), access="owner", args={"endpoint_id": "webhook"}),
    Route("webhooks.turn_off", ("POST",), access="owner", args={"endpoint_id": "webhook"}),
    Route("webhooks.turn_on", ("POST",), access="owner", args={"endpoint_id": "webhook"}),
    Route("webhooks.delete", ("POST",), access="owner", args={"endpoint_id": "webhook"}),
    Route("webhooks.log", access="owner", args={"endpoint_id": "webhook"}),
    Route("webhooks.resend", ("POST",), access="owner", args={"delivery_id": "webhook_delivery"}),
]
