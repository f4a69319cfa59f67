"""Roles and leaving: owners remove members (whose sessions end at once) and make owners;
a household always keeps an owner; anyone else can leave."""
import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import ActivityEvent, Membership
from portal.services import accounts
from portal.services import members as members_service
from portal.services.errors import Conflict, Forbidden
from tests.plugins.accounts import PASSWORD

pytestmark = pytest.mark.rollback

HTMX = {"HX-Request": "true"}


@pytest.fixture
def household(auth, make_household, add_member, new_client):
    """Elm Street: owner (logged in as `auth`) and member (logged in as the returned client)."""
    owner, account = make_household("owner@example.com", "Elm Street")
    member_user, membership = add_member(account, "member@example.com")
    auth.login("owner@example.com", PASSWORD)
    member = new_client()
    member.login("member@example.com", PASSWORD)
    return {"owner": owner, "account": account, "member_user": member_user, "membership": membership,
            "member": member}


def _events(kind):
    return db.session.scalars(sa.select(ActivityEvent).where(ActivityEvent.kind == kind)).all()


def _roles(account_id):
    db.session.expire_all()
    return {m.user.email: m.role for m in members_service.list_members(account_id)}


def test_members_page_lists_everyone_with_their_role(auth, household):
    html = auth.client.get("/members/").get_data(as_text=True)
    assert "2 members" in html
    assert "owner@example.com" in html and "member@example.com" in html
    assert "Owner" in html and "Member" in html
    assert "No open invites." in html


def test_member_sees_the_list_but_no_owner_controls(household):
    html = household["member"].client.get("/members/").get_data(as_text=True)
    assert "owner@example.com" in html
    assert "Create invite link" not in html
    assert ">Remove<" not in html and "Make owner" not in html
    assert "Leave household" in html


def test_owner_removes_a_member_whose_sessions_end_at_once(auth, household):
    member = household["member"]
    stolen = member.client.get_cookie("session").value
    response = auth.post(f"/members/{household['membership'].id}/remove", page="/members/")
    assert response.status_code == 302
    assert "member@example.com is no longer a member" in auth.client.get("/members/").get_data(as_text=True)
    assert _roles(household["account"].id) == {"owner@example.com": "owner"}
    assert member.client.get("/gateways/").headers["Location"].startswith("/login")
    member.client.set_cookie("session", stolen)
    assert member.client.get("/members/").status_code == 302
    [event] = _events("member.removed")
    assert event.summary == "Removed member@example.com from the household."


def test_removing_over_htmx_returns_the_refreshed_panel(auth, household):
    response = auth.post(f"/members/{household['membership'].id}/remove", page="/members/", headers=HTMX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in html
    assert 'id="members-panel"' in html
    assert "member@example.com is no longer a member" in html
    assert "1 member<" in html


def test_owner_cannot_remove_themselves(auth, household):
    owner_membership = next(m for m in members_service.list_members(household["account"].id) if m.is_owner)
    auth.post(f"/members/{owner_membership.id}/remove", page="/members/")
    assert "use “Leave household”" in auth.client.get("/members/").get_data(as_text=True)
    assert _roles(household["account"].id)["owner@example.com"] == "owner"


def test_member_cannot_remove_anyone(household):
    owner_membership = next(m for m in members_service.list_members(household["account"].id) if m.is_owner)
    response = household["member"].post(f"/members/{owner_membership.id}/remove", page="/members/")
    assert response.status_code == 403
    assert len(_roles(household["account"].id)) == 2


def test_unknown_member_id_is_404(auth, household):
    for bad in ("not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        assert auth.post(f"/members/{bad}/remove", page="/members/").status_code == 404
        assert auth.post(f"/members/{bad}/make-owner", page="/members/").status_code == 404


def test_owner_makes_another_member_an_owner(auth, household):
    response = auth.post(f"/members/{household['membership'].id}/make-owner", page="/members/", headers=HTMX)
    assert "member@example.com is now an owner." in response.get_data(as_text=True)
    assert _roles(household["account"].id) == {"owner@example.com": "owner", "member@example.com": "owner"}
    [event] = _events("member.role_changed")
    assert event.summary == "Made member@example.com an owner."


def test_the_last_owner_cannot_step_down_or_leave(auth, household):
    auth.post("/members/step-down", page="/members/")
    assert "You are the only owner" in auth.client.get("/members/").get_data(as_text=True)
    auth.post("/members/leave", page="/members/")
    assert "You are the only owner, so you can’t leave yet" in auth.client.get("/members/").get_data(as_text=True)
    assert _roles(household["account"].id)["owner@example.com"] == "owner"


def test_an_owner_steps_down_once_there_is_another_owner(auth, household):
    auth.post(f"/members/{household['membership'].id}/make-owner", page="/members/")
    response = auth.post("/members/step-down", page="/members/", headers=HTMX)
    assert "You are no longer an owner" in response.get_data(as_text=True)
    assert "Create invite link" not in response.get_data(as_text=True)
    assert _roles(household["account"].id) == {"owner@example.com": "member", "member@example.com": "owner"}
    assert _events("member.role_changed")[-1].summary == "owner@example.com stepped down as owner."


def test_an_owner_leaves_once_there_is_another_owner(auth, household):
    auth.post(f"/members/{household['membership'].id}/make-owner", page="/members/")
    response = auth.post("/members/leave", page="/members/")
    assert response.status_code == 302
    assert _roles(household["account"].id) == {"member@example.com": "owner"}
    assert auth.client.get("/gateways/").headers["Location"] == "/no-household"


def test_a_member_leaves(household):
    member = household["member"]
    response = member.post("/members/leave", page="/members/")
    assert response.status_code == 302
    assert _roles(household["account"].id) == {"owner@example.com": "owner"}
    assert member.client.get("/gateways/").headers["Location"] == "/no-household"
    assert "You left “Elm Street”." in member.client.get("/no-household").get_data(as_text=True)
    [event] = _events("member.left")
    assert event.summary == "member@example.com left the household."


def test_a_plain_member_stepping_down_is_told_they_are_not_an_owner(household):
    household["member"].post("/members/step-down", page="/members/")
    assert "You are not an owner" in household["member"].client.get("/members/").get_data(as_text=True)


def test_leaving_one_household_keeps_the_others(app, household):
    user = household["member_user"]
    accounts.add_household(user, "Member’s flat")
    member = household["member"]
    member.post("/members/leave", page="/members/")
    assert "Member’s flat" in member.client.get("/gateways/").get_data(as_text=True)


@pytest.mark.parametrize("path", ["/members/leave", "/members/step-down"])
def test_state_changing_member_routes_refuse_get(auth, household, path):
    assert auth.client.get(path).status_code == 405


def test_a_get_of_the_invite_url_only_goes_to_the_invite_form(auth, household):
    """A refused invite renders on /members/invite: reloading it must not answer 405."""
    response = auth.client.get("/members/invite")
    assert response.status_code == 303 and response.headers["Location"] == "/members/#invite"
    assert "No open invites" in auth.client.get("/members/").get_data(as_text=True)


def test_role_actions_with_a_wrong_csrf_token_change_nothing(auth, household):
    auth.client.get("/members/")
    target = household["membership"].id
    for path in (f"/members/{target}/remove", f"/members/{target}/make-owner", "/members/leave"):
        response = auth.client.post(path, data={"csrf_token": "forged"})
        assert response.status_code == 400
        response = auth.client.post(path, headers={"X-CSRFToken": "forged", **HTMX})
        assert response.status_code == 400
    assert _roles(household["account"].id) == {"owner@example.com": "owner", "member@example.com": "member"}


def test_htmx_actions_carry_the_csrf_token_in_a_header(auth, household):
    token = auth.csrf("/members/")
    response = auth.client.post(
        f"/members/{household['membership'].id}/make-owner", headers={"X-CSRFToken": token, **HTMX}
    )
    assert response.status_code == 200
    assert _roles(household["account"].id)["member@example.com"] == "owner"


def test_service_refuses_role_changes_by_plain_members(app, household):
    membership = db.session.get(Membership, household["membership"].id)
    with pytest.raises(Forbidden):
        members_service.make_owner(membership, household["member_user"], membership.id)
    with pytest.raises(Conflict):
        members_service.step_down(membership, household["member_user"])
