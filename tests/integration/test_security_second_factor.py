"""Staff who logged in with a password but have not passed the second factor reach nothing
but its steps, logout and static files: every other URL rule of the app, GET and POST
alike, sends them to the second-factor page (or refuses with 403/404)."""
import uuid

import pytest
import sqlalchemy as sa
from werkzeug.routing import IntegerConverter, UUIDConverter

from portal import crypto
from portal.extensions import db
from portal.models import User
from tests.plugins.accounts import PASSWORD, csrf_from
from tests.plugins.support import STAFF_EMAIL

pytestmark = pytest.mark.rollback

ALLOWED = {"support.enrol", "support.verify", "support.set_password", "account.logout", "static"}
SKIP_METHODS = {"HEAD", "OPTIONS"}


def _value_for(converter):
    if isinstance(converter, UUIDConverter):
        return uuid.uuid4()
    if isinstance(converter, IntegerConverter):
        return 1
    return "x"


def _requests(app):
    """(endpoint, method, url) for every URL rule of the app outside ALLOWED."""
    adapter = app.url_map.bind("localhost")
    for rule in app.url_map.iter_rules():
        if rule.endpoint in ALLOWED:
            continue
        values = {name: _value_for(conv) for name, conv in rule._converters.items()}
        for method in sorted((rule.methods or set()) - SKIP_METHODS):
            yield rule.endpoint, method, adapter.build(rule.endpoint, values, method=method)


def _refusals(client, app, step: str) -> list[str]:
    token = csrf_from(client.get(step).get_data(as_text=True))
    wrong = []
    for endpoint, method, url in _requests(app):
        data = {"csrf_token": token} if method != "GET" else None
        response = client.open(url, method=method, data=data)
        location = response.headers.get("Location", "")
        sent_to_step = response.status_code in (302, 303) and location.split("?")[0].endswith(step)
        if not (sent_to_step or response.status_code in (403, 404)):
            wrong.append(f"{method} {url} ({endpoint}): {response.status_code} {location}")
    return wrong


def test_every_route_sends_a_staff_member_without_the_code_to_verify(client, staff):
    user = staff.create()
    staff.enrol(user)
    staff.login()
    assert _refusals(client, client.application, "/support/verify") == []


def test_every_route_sends_a_staff_member_not_enrolled_to_enrol(client, staff):
    staff.create()
    staff.login()
    assert _refusals(client, client.application, "/support/enrol") == []


def test_settings_cannot_change_the_staff_email_or_password_before_the_code(client, staff):
    user = staff.create()
    staff.enrol(user)
    staff.login()
    token = csrf_from(client.get("/support/verify").get_data(as_text=True))
    email = client.post("/settings/email", data={
        "email-email": "mallory@example.com", "email-password": PASSWORD, "csrf_token": token})
    password = client.post("/settings/password", data={
        "pw-current_password": PASSWORD, "pw-new_password": "a brand new password 77", "csrf_token": token})
    assert email.status_code == password.status_code == 302
    assert "/support/verify" in email.headers["Location"]
    db.session.expire_all()
    row = db.session.scalars(sa.select(User).where(User.id == user.id)).one()
    assert row.email == STAFF_EMAIL
    assert crypto.verify_password(row.password_hash, PASSWORD)


def test_logout_and_static_files_stay_reachable(client, staff):
    staff.create()
    staff.login()
    assert client.get("/static/css/app.css").status_code == 200
    token = csrf_from(client.get("/support/enrol").get_data(as_text=True))
    response = client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")
