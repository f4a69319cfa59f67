"""A user's own settings: password and email changes that need the current password, renaming
the household (owners), further households, and switching between them."""
import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import ActivityEvent, LoginSession
from portal.services import accounts
from tests.plugins.accounts import PASSWORD

pytestmark = pytest.mark.rollback

NEW = "a completely different passphrase"


@pytest.fixture
def alice(auth, make_household):
    user, account = make_household("alice@example.com", "Elm Street")
    auth.login("alice@example.com", PASSWORD)
    return user


def test_settings_page_shows_login_password_and_household(auth, alice):
    html = auth.client.get("/settings").get_data(as_text=True)
    for text in ("Your login", "alice@example.com", "Change password", "Elm Street", "Rename household", "1 member"):
        assert text in html


def _change_password(auth, current, new):
    return auth.post("/settings/password", {"pw-current_password": current, "pw-new_password": new})


def test_password_change_renews_this_session_and_ends_the_others(auth, alice, new_client):
    laptop = new_client()
    laptop.login("alice@example.com", PASSWORD)
    stolen = laptop.client.get_cookie("session").value
    before_change = auth.client.get_cookie("session").value
    response = _change_password(auth, PASSWORD, NEW)
    assert response.status_code == 302
    assert auth.client.get_cookie("session").value != before_change
    assert "logged out on 1 other device" in auth.client.get("/settings").get_data(as_text=True)
    assert auth.client.get("/gateways/").status_code == 200
    assert laptop.client.get("/gateways/").status_code == 302
    laptop.client.set_cookie("session", stolen)
    assert laptop.client.get("/gateways/").status_code == 302
    assert new_client().login("alice@example.com", PASSWORD).status_code == 200
    assert new_client().login("alice@example.com", NEW).status_code == 302
    replay = new_client()
    replay.client.set_cookie("session", before_change)
    assert replay.client.get("/gateways/").status_code == 302


@pytest.mark.parametrize(
    "current,new,message",
    [
        ("wrong password", NEW, "That is not your current password."),
        ("", NEW, "Enter your current password."),
        (PASSWORD, "", "Choose a password."),
        (PASSWORD, "short", "Use between 8 and 128 characters."),
        (PASSWORD, "x" * 129, "Use between 8 and 128 characters."),
        (PASSWORD, "iloveyou123", "one of the most common"),
        (PASSWORD, PASSWORD, "same as the current one"),
    ],
)
def test_bad_password_change_is_refused_on_the_field(auth, alice, current, new, message):
    old_hash = alice.password_hash
    response = _change_password(auth, current, new)
    assert response.status_code == 200
    assert message in response.get_data(as_text=True)
    db.session.expire_all()
    assert accounts.find_user_by_email("alice@example.com").password_hash == old_hash


def test_guessing_the_current_password_is_throttled(auth, alice):
    for _ in range(5):
        _change_password(auth, "wrong password", NEW)
    old_hash = alice.password_hash
    response = _change_password(auth, PASSWORD, NEW)
    assert "Too many failed attempts" in response.get_data(as_text=True)
    db.session.expire_all()
    assert accounts.find_user_by_email("alice@example.com").password_hash == old_hash


def _change_email(auth, email, password):
    return auth.post("/settings/email", {"email-email": email, "email-password": password})


def test_email_change_needs_the_password(auth, alice, new_client):
    assert _change_email(auth, "alice.new@example.com", PASSWORD).status_code == 302
    assert "alice.new@example.com" in auth.client.get("/settings").get_data(as_text=True)
    assert new_client().login("alice.new@example.com", PASSWORD).status_code == 302


@pytest.mark.parametrize(
    "email,password,message",
    [
        ("alice.new@example.com", "wrong password", "That is not your current password."),
        ("alice.new@example.com", "", "Enter your password."),
        ("", PASSWORD, "Enter your email address."),
        ("nope", PASSWORD, "Enter a valid email address"),
        ("b" * 250 + "@example.com", PASSWORD, "at most 254 characters"),
        ("bob@example.com", PASSWORD, "Another account already uses this email address."),
        ("ALICE@example.com", PASSWORD, "already your email address"),
    ],
)
def test_bad_email_change_is_refused_on_the_field(auth, alice, make_household, email, password, message):
    make_household("bob@example.com", "Oak Lane")
    response = _change_email(auth, email, password)
    assert response.status_code == 200
    assert message in response.get_data(as_text=True)
    db.session.expire_all()
    assert accounts.find_user_by_email("alice@example.com") is not None


def test_owner_renames_the_household_and_it_is_logged(auth, alice):
    response = auth.post("/settings/household", {"household-name": "  Elm   Street 12 "})
    assert response.status_code == 302
    assert "Elm Street 12" in auth.client.get("/gateways/").get_data(as_text=True)
    event = db.session.scalars(sa.select(ActivityEvent).where(ActivityEvent.kind == "household.renamed")).one()
    assert event.summary == "Renamed the household from “Elm Street” to “Elm Street 12”."
    assert event.actor_label == "alice@example.com"


@pytest.mark.parametrize("name,message", [("", "Give your household a name."), ("N" * 81, "Keep it under 80")])
def test_bad_household_name_is_refused(auth, alice, name, message):
    response = auth.post("/settings/household", {"household-name": name})
    assert response.status_code == 200
    assert message in response.get_data(as_text=True)
    assert "Elm Street" in auth.client.get("/gateways/").get_data(as_text=True)


def test_member_cannot_rename_the_household(app, make_household, add_member, new_client):
    _owner, account = make_household("owner@example.com", "Elm Street")
    add_member(account, "member@example.com")
    member = new_client()
    member.login("member@example.com", PASSWORD)
    assert "Only owners can rename" in member.client.get("/settings").get_data(as_text=True)
    response = member.post("/settings/household", {"household-name": "Mine now"})
    assert response.status_code == 403
    db.session.expire_all()
    assert [m.account.name for m in accounts.memberships_of(_owner.id)] == ["Elm Street"]


def test_user_creates_another_household_and_switches_between_them(auth, alice):
    response = auth.post("/household/new", {"new-name": "Grandma’s house"})
    assert response.status_code == 302
    page = auth.client.get("/gateways/").get_data(as_text=True)
    assert "Grandma’s house" in page
    assert 'name="account_id"' in page  # the switcher appears with two households
    elm = next(m for m in accounts.memberships_of(alice.id) if m.account.name == "Elm Street")
    response = auth.post("/household/switch", {"account_id": str(elm.account_id)}, page="/gateways/")
    assert response.status_code == 302
    assert f'<option value="{elm.account_id}" selected>' in auth.client.get("/gateways/").get_data(as_text=True)
    session_row = db.session.scalars(sa.select(LoginSession).where(LoginSession.revoked_at.is_(None))).one()
    assert session_row.current_account_id == elm.account_id


@pytest.mark.parametrize("value", ["", "not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_switching_to_an_unknown_household_is_404(auth, alice, value):
    assert auth.post("/household/switch", {"account_id": value}).status_code == 404


def test_switching_needs_a_post(auth, alice):
    assert auth.client.get("/household/switch").status_code == 405


def test_user_without_household_is_offered_to_create_one(app, new_client):
    accounts.register_user("solo@example.com", PASSWORD)
    solo = new_client()
    solo.login("solo@example.com", PASSWORD)
    response = solo.client.get("/gateways/")
    assert response.headers["Location"] == "/no-household"
    html = solo.client.get("/no-household").get_data(as_text=True)
    assert "Create household" in html
    bad = solo.post("/household/new", {"new-name": ""}, page="/no-household")
    assert "Give your household a name." in bad.get_data(as_text=True)
    assert solo.post("/household/new", {"new-name": "Solo Flat"}, page="/no-household").status_code == 302
    assert "Solo Flat" in solo.client.get("/gateways/").get_data(as_text=True)


def test_link_state_partial_polls_until_connected(client, auth):
    auth.register()
    html = client.get("/household/link-state", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "Connecting" in html
    assert 'hx-trigger="every 2s"' in html
    assert "X-IoTLock-Poll" in html


def test_staff_cannot_own_a_household(app, make_household):
    import pytest

    from portal.extensions import db
    from portal.services import accounts
    from portal.services.errors import Forbidden

    user, _ = make_household(email="staffer@example.com")
    user.is_staff = True
    db.session.commit()
    with pytest.raises(Forbidden):
        accounts.add_household(user, "Sneaky House")
