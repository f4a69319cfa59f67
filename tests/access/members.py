"""Routes of the members blueprint."""
from tests.access import Route

ROUTES = [
    Route("members.index", access="member"),
    Route("members.invite", ("GET", "POST"), access="owner", data={"email": "matrix-invitee@example.com"}),
    Route("members.revoke_invite", ("POST",), access="owner", args={"invite_id": "invite"}),
    Route("members.make_owner", ("POST",), access="owner", args={"membership_id": "membership"}),
    Route("members.remove", ("POST",), access="owner", args={"membership_id": "membership"}),
    Route("members.step_down", ("POST",), access="member"),
    Route("members.leave", ("POST",), access="member"),
    # Public by design: whoever holds the link may join (the token is the credential).
    Route("members.accept", ("GET", "POST"), access="public", fixed_args={"token": "not-a-real-invite-token"}),
]
