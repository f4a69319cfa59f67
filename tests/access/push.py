"""Routes of the push blueprint: a member's browsers that get alerts."""
from tests.access import Route

ROUTES = [
    Route("push.devices", access="member"),
    Route("push.subscribe", ("POST",), access="member"),
    Route("push.unsubscribe", ("POST",), access="member"),
    # The browser to remove is a form value scoped to its user: tests/integration/test_push.py
    # checks that another user's is 404 and stays.
    Route("push.remove", ("GET", "POST"), access="member", data={"subscription_id": "not-an-id"}),
]
