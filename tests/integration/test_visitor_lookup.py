"""Who is asking is read as plain values (portal/services/visitors.py): pages build no ORM
object for the login session, the user, their memberships or households; the views that
change one of them load that row, and what they change shows at once."""
import pytest
import sqlalchemy as sa
from flask import g, request_finished
from flask_login import current_user

from portal.extensions import db
from portal.models import Account, LoginSession, Membership, User, utcnow
from portal.models.accounts import ROLE_OWNER
from portal.services.visitors import Household, HouseholdMember, Visitor
from tests.plugins.accounts import PASSWORD

pytestmark = pytest.mark.rollback

WHO = (User, Membership, Account, LoginSession)


@pytest.fixture
def loads():
    """Counts of ORM objects loaded per class while the test runs."""
    counted: dict[str, int] = {}

    def listener(cls):
        def on_load(_target, _context):
            counted[cls.__name__] = counted.get(cls.__name__, 0) + 1
        return on_load

    listeners = [(cls, listener(cls)) for cls in WHO]
    for cls, fn in listeners:
        sa.event.listen(cls, "load", fn)
    yield counted
    for cls, fn in listeners:
        sa.event.remove(cls, "load", fn)


@pytest.fixture
def alice(auth, make_household):
    user, account = make_household("alice@example.com", "Elm Street")
    auth.login("alice@example.com", PASSWORD)
    return user, account


@pytest.mark.parametrize("path", ["/household/link-state", "/gateways/", "/settings", "/activity", "/alerts/"])
def test_pages_build_no_orm_object_for_who_is_asking(auth, alice, loads, path):
    db.session.expunge_all()  # nothing the fixtures made stands in for a load
    response = auth.client.get(path)
    assert response.status_code == 200
    assert "Elm Street" in response.get_data(as_text=True) or path == "/household/link-state"
    assert loads == {}


def test_current_user_is_a_visitor_of_plain_values(app, auth, alice):
    user, account = alice
    seen = {}

    def finished(_sender, **_extra):
        seen["user"] = current_user._get_current_object()
        seen["membership"] = g.membership

    with request_finished.connected_to(finished, app):
        assert auth.client.get("/gateways/").status_code == 200
    visitor = seen["user"]
    assert isinstance(visitor, Visitor)
    assert (visitor.id, visitor.email, visitor.is_staff) == (user.id, "alice@example.com", False)
    member = seen["membership"]
    assert isinstance(member, HouseholdMember) and isinstance(member.account, Household)
    assert (member.user_id, member.account_id, member.is_owner) == (user.id, account.id, True)
    assert (member.account.id, member.account.name, member.account.time_zone) == (account.id, "Elm Street", "UTC")


def test_a_rename_loads_the_rows_it_changes_and_the_next_page_shows_it(auth, alice, loads):
    csrf = auth.csrf("/settings")
    db.session.expunge_all()
    response = auth.client.post("/settings/household", data={"csrf_token": csrf, "household-name": "Oak Lane"})
    assert response.status_code == 302
    assert loads.get("Membership") == 1 and loads.get("User") == 1
    html = auth.client.get("/settings").get_data(as_text=True)
    assert "Oak Lane" in html and "Elm Street" not in html


def test_stepping_down_shows_the_member_panel_at_once(auth, alice, add_member):
    _user, account = alice
    add_member(account, "bob@example.com", role=ROLE_OWNER)
    response = auth.post("/members/step-down", {}, page="/members/", headers={"HX-Request": "true"})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "You are no longer an owner" in html
    assert "Invite someone" not in html  # the owners' invite form went with the role


def test_a_revoked_session_is_refused_on_its_next_request(auth, alice):
    assert auth.client.get("/gateways/").status_code == 200
    db.session.execute(sa.update(LoginSession).values(revoked_at=utcnow()))
    db.session.commit()
    response = auth.client.get("/gateways/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
