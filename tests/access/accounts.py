"""Routes of the account blueprint (registration, login, settings, activity)."""
from tests.access import Route

ROUTES = [
    Route("account.index", access="public"),
    Route("account.register", ("GET", "POST"), access="public"),
    Route("account.login", ("GET", "POST"), access="public"),
    Route("account.logout", ("POST",), access="login"),
    Route("account.forgot_password", ("GET", "POST"), access="public", data={"email": "matrix@example.com"}),
    Route("account.forgot_password_sent", access="public"),
    Route("account.reset_password", ("GET", "POST"), access="public", fixed_args={"token": "not-a-real-token"},
          data={"password": "a brand new password"}),
    Route("account.delete_account", ("GET", "POST"), access="login",
          data={"password": "wrong password", "confirm": "DELETE"}),
    Route("account.no_household", access="login"),
    Route("account.create_household", ("GET", "POST"), access="login", data={"new-name": "Matrix House"}),
    Route("account.settings", access="login"),
    Route("account.change_email", ("GET", "POST"), access="login",
          data={"email-email": "matrix@example.com", "email-password": "wrong password"}),
    Route("account.change_password", ("GET", "POST"), access="login",
          data={"pw-current_password": "wrong password", "pw-new_password": "a brand new password"}),
    Route("account.rename_household", ("GET", "POST"), access="owner", data={"household-name": "Renamed"}),
    Route("account.change_time_zone", ("GET", "POST"), access="owner", data={"tz-time_zone": "Europe/Berlin"}),
    # The household to switch to is a form value, not a URL argument: the matrix test posts
    # household A's id as a member of B separately (test_switching_to_another_household_is_404).
    Route("account.switch_household", ("POST",), access="login"),
    Route("account.link_state", access="member"),
    Route("account.activity", access="member"),
    Route("account.activity_csv", access="member"),
]
