"""Routes of the support blueprint. "staff" routes answer 403 to household users and send
staff without a second factor to enrol or verify (tests/integration/test_support_*.py)."""
from tests.access import Route

ROUTES = [
    # The one-time link printed by `flask staff create`; the token is its own credential.
    Route("support.set_password", ("GET", "POST"), access="public", fixed_args={"token": "not-a-real-token"},
          data={"password": "a long enough password", "confirm": "a long enough password"}),
    # The staff member's own second-factor steps (password login done, TOTP not yet).
    Route("support.enrol", ("GET", "POST"), access="staff", data={"code": "000000"}),
    Route("support.verify", ("GET", "POST"), access="staff", data={"code": "000000"}),
    Route("support.index", access="staff"),
    Route("support.household", access="staff", args={"account_id": "account"}),
    Route("support.requeue", ("POST",), access="staff", args={"account_id": "account", "command_id": "command"}),
]
