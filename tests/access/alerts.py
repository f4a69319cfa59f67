"""Routes of the alerts blueprint: a member's bell, list and settings; owners' household
defaults; and the public one-click unsubscribe (its token is the only key)."""
from tests.access import Route

ROUTES = [
    Route("alerts.index", access="member"),
    Route("alerts.bell", access="member"),
    Route("alerts.read_all", ("GET", "POST"), access="member"),
    Route("alerts.read_one", ("POST",), access="member", args={"notification_id": "notification"}),
    Route("alerts.settings", ("GET", "POST"), access="member", data={"opened.portal": "on"}),
    Route("alerts.forget_box", ("GET", "POST"), access="member", data={"box": "not-a-box"}),
    Route("alerts.quiet", ("GET", "POST"), access="member", data={"quiet_from": "22:00", "quiet_until": "07:00"}),
    Route("alerts.test", ("GET", "POST"), access="member", data={"channel": "portal"}),
    Route("alerts.defaults", ("GET", "POST"), access="owner", data={"opened.portal": "on"}),
    # RFC 8058: mail providers post without a session, so no CSRF token; a link's token
    # names its member and household, and a forged one is 404.
    Route("alerts.unsubscribe", ("GET", "POST"), access="public", fixed_args={"token": "not-a-real-token"},
          csrf_exempt=True),
]
