"""Invites: a one-time link with a 256-bit token (only its hash stored) that expires after
72 hours, can be revoked, is bound to its household, and survives signing up or logging in."""
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

import portal.services.members as members_service
from portal.extensions import db
from portal.models import ActivityEvent, Invite, utcnow
from portal.services import accounts
from tests.plugins.accounts import PASSWORD, csrf_from, invite_link_from

pytestmark = pytest.mark.rollback


@pytest.fixture
def owner(auth, make_household):
    user, account = make_household("owner@example.com", "Elm Street")
    auth.login("owner@example.com", PASSWORD)
    return user


def _invites():
    return db.session.scalars(sa.select(Invite)).all()


def _join(invitee, path):
    token = csrf_from(invitee.client.get(path).get_data(as_text=True))
    return invitee.client.post(path, data={"csrf_token": token})


def _member_emails(account_name):
    rows = db.session.execute(
        sa.text(
            "SELECT users.email FROM memberships JOIN users ON users.id = memberships.user_id "
            "JOIN accounts ON accounts.id = memberships.account_id WHERE accounts.name = :n ORDER BY users.email"
        ),
        {"n": account_name},
    ).scalars().all()
    return list(rows)


def test_owner_gets_a_one_time_link_and_only_its_hash_is_stored(auth, owner):
    response = auth.invite()
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    path = invite_link_from(html)
    token = path.rsplit("/", 1)[1]
    assert len(token) >= 43  # 32 random bytes, URL-safe base64
    assert "It works once" in html
    [row] = _invites()
    assert row.email == "guest@example.com"
    assert row.token_hash == members_service.crypto.sha256_hex(token)
    assert token not in repr([getattr(row, c.key) for c in Invite.__table__.columns])
    assert row.expires_at - row.created_at == timedelta(hours=72)
    event = db.session.scalars(sa.select(ActivityEvent).where(ActivityEvent.kind == "member.invited")).one()
    assert "guest@example.com" in event.summary
    assert token not in event.summary and token not in str(event.details)


def test_anonymous_invitee_sees_household_and_inviter(auth, owner, new_client):
    path = invite_link_from(auth.invite().get_data(as_text=True))
    html = new_client().client.get(path).get_data(as_text=True)
    assert "Join “Elm Street”" in html
    assert "owner@example.com</strong> invited you" in html
    assert f'href="/register?next={path}"' in html
    assert f'href="/login?next={path}"' in html


def test_new_user_signs_up_through_the_link_and_joins(auth, owner, new_client):
    path = invite_link_from(auth.invite().get_data(as_text=True))
    invitee = new_client()
    register_page = invitee.client.get(f"/register?next={path}").get_data(as_text=True)
    assert "invited you to join <strong>Elm Street</strong>" in register_page
    assert 'name="household_name"' not in register_page
    assert 'value="guest@example.com"' in register_page
    response = invitee.client.post(
        f"/register?next={path}",
        data={"email": "guest@example.com", "password": "guest has a good password", "csrf_token": csrf_from(register_page)},
    )
    assert response.headers["Location"] == path
    assert _member_emails("Elm Street") == ["owner@example.com"]  # nobody joins without saying so
    joined = _join(invitee, path)
    assert joined.headers["Location"] == "/members/"
    members_page = invitee.client.get("/members/").get_data(as_text=True)
    assert "owner@example.com" in members_page and "guest@example.com" in members_page
    assert "guest@example.com" in auth.client.get("/members/").get_data(as_text=True)
    guest = accounts.find_user_by_email("guest@example.com")
    assert [m.account.name for m in accounts.memberships_of(guest.id)] == ["Elm Street"]
    event = db.session.scalars(sa.select(ActivityEvent).where(ActivityEvent.kind == "member.joined")).one()
    assert event.summary == "guest@example.com joined the household."


def test_existing_user_logs_in_through_the_link_and_joins(auth, owner, make_household, new_client):
    make_household("bob@example.com", "Oak Lane")
    path = invite_link_from(auth.invite("bob@example.com").get_data(as_text=True))
    bob = new_client()
    login_page = bob.client.get(f"/login?next={path}").get_data(as_text=True)
    assert "invited you to join <strong>Elm Street</strong>" in login_page
    response = bob.client.post(
        f"/login?next={path}", data={"email": "bob@example.com", "password": PASSWORD, "csrf_token": csrf_from(login_page)}
    )
    assert response.headers["Location"] == path
    _join(bob, path)
    page = bob.client.get("/members/").get_data(as_text=True)
    assert "Elm Street" in page and "owner@example.com" in page  # the joined household is now current
    assert _member_emails("Elm Street") == ["bob@example.com", "owner@example.com"]
    assert _member_emails("Oak Lane") == ["bob@example.com"]


def test_the_link_works_once(auth, owner, make_household, new_client):
    path = invite_link_from(auth.invite().get_data(as_text=True))
    first = new_client()
    accounts.register_user("guest@example.com", PASSWORD)
    first.login("guest@example.com", PASSWORD)
    _join(first, path)
    make_household("eve@example.com", "Eve’s")
    eve = new_client()
    eve.login("eve@example.com", PASSWORD)
    response = eve.client.get(path)
    assert response.status_code == 410
    assert "This invite link was already used" in response.get_data(as_text=True)
    response = eve.client.post(path, data={"csrf_token": eve.csrf("/settings")})
    assert response.status_code == 410
    assert _member_emails("Elm Street") == ["guest@example.com", "owner@example.com"]


def test_an_expired_link_gets_a_clear_page(auth, owner, new_client, time_machine):
    path = invite_link_from(auth.invite().get_data(as_text=True))
    time_machine.move_to(utcnow() + timedelta(hours=72, minutes=1), tick=False)
    guest = new_client()
    response = guest.client.get(path)
    assert response.status_code == 410
    assert "This invite link has expired" in response.get_data(as_text=True)
    accounts.register_user("guest@example.com", PASSWORD)
    guest.login("guest@example.com", PASSWORD)
    assert guest.client.post(path, data={"csrf_token": guest.csrf("/settings")}).status_code == 410
    assert _member_emails("Elm Street") == ["owner@example.com"]


def test_a_revoked_link_gets_a_clear_page(auth, owner, new_client):
    path = invite_link_from(auth.invite().get_data(as_text=True))
    [row] = _invites()
    response = auth.post(f"/members/invites/{row.id}/revoke", page="/members/")
    assert response.status_code == 302
    assert "its link no longer works" in auth.client.get("/members/").get_data(as_text=True)
    response = new_client().client.get(path)
    assert response.status_code == 410
    assert "This invite was withdrawn" in response.get_data(as_text=True)


@pytest.mark.parametrize("mangle", [lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"), lambda t: t[:20],
                                    lambda t: t + "x" * 100, lambda t: "%00%27%22<script>"])
def test_a_tampered_link_gets_a_clear_page_not_an_error(auth, owner, new_client, mangle):
    path = invite_link_from(auth.invite().get_data(as_text=True))
    token = path.rsplit("/", 1)[1]
    guest = new_client()
    response = guest.client.get(f"/members/join/{mangle(token)}")
    assert response.status_code == 404
    html = response.get_data(as_text=True)
    assert "We don’t recognise this invite link" in html
    assert "<script>" not in html
    accounts.register_user("guest@example.com", PASSWORD)
    guest.login("guest@example.com", PASSWORD)
    assert guest.client.post(f"/members/join/{mangle(token)}", data={"csrf_token": guest.csrf("/settings")}).status_code == 404
    assert _member_emails("Elm Street") == ["owner@example.com"]


def test_a_new_invite_for_the_same_address_replaces_the_old_link(auth, owner, new_client):
    old = invite_link_from(auth.invite().get_data(as_text=True))
    new = invite_link_from(auth.invite().get_data(as_text=True))
    assert old != new
    assert new_client().client.get(old).status_code == 410
    assert new_client().client.get(new).status_code == 200
    assert auth.client.get("/members/").get_data(as_text=True).count('id="invite-') == 1


@pytest.mark.parametrize(
    "email,message",
    [
        ("", "Enter your email address."),
        ("not an email", "Enter a valid email address"),
        ("g" * 250 + "@example.com", "at most 254 characters"),
        ("owner@example.com", "already a member"),
        ("OWNER@example.com ", "already a member"),
    ],
)
def test_bad_invite_input_is_answered_on_the_field(auth, owner, email, message):
    response = auth.invite(email)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert message in html
    assert 'id="invite-link"' not in html
    assert _invites() == []


def test_wrong_csrf_token_on_invite_creates_nothing(auth, owner):
    auth.client.get("/members/")
    response = auth.client.post("/members/invite", data={"email": "guest@example.com", "csrf_token": "forged"})
    assert response.status_code == 400
    assert _invites() == []


def test_htmx_invite_returns_only_the_panel(auth, owner):
    response = auth.invite(headers={"HX-Request": "true"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in html
    assert 'id="members-panel"' in html
    assert invite_link_from(html)


def test_member_who_is_not_an_owner_cannot_invite(owner, add_member, new_client):
    add_member(accounts.memberships_of(owner.id)[0].account, "member@example.com")
    member = new_client()
    member.login("member@example.com", PASSWORD)
    page = member.client.get("/members/").get_data(as_text=True)
    assert "Create invite link" not in page
    assert member.post("/members/invite", {"email": "x@example.com"}, page="/members/").status_code == 403
    assert _invites() == []


def test_a_member_opening_an_invite_to_their_own_household_is_told_so(auth, owner):
    path = invite_link_from(auth.invite().get_data(as_text=True))
    html = auth.client.get(path).get_data(as_text=True)
    assert "You are already a member of Elm Street." in html
    response = _join(auth, path)
    assert response.status_code == 302
    assert "You are already a member of “Elm Street”." in auth.client.get("/members/").get_data(as_text=True)
    [row] = _invites()
    assert row.accepted_at is None


def test_join_with_a_wrong_csrf_token_changes_nothing(auth, owner, new_client):
    path = invite_link_from(auth.invite().get_data(as_text=True))
    guest = new_client()
    accounts.register_user("guest@example.com", PASSWORD)
    guest.login("guest@example.com", PASSWORD)
    guest.client.get(path)
    assert guest.client.post(path, data={"csrf_token": "forged"}).status_code == 400
    assert _member_emails("Elm Street") == ["owner@example.com"]


def test_anonymous_join_post_is_sent_to_log_in_first(auth, owner, new_client):
    path = invite_link_from(auth.invite().get_data(as_text=True))
    guest = new_client()
    response = guest.client.post(path, data={"csrf_token": csrf_from(guest.client.get(path).get_data(as_text=True))})
    assert response.headers["Location"] == f"/login?next={path}"


def test_two_people_racing_for_one_link_cannot_both_join(app, make_household):
    owner, account = make_household("owner@example.com", "Elm Street")
    membership = accounts.memberships_of(owner.id)[0]
    new = members_service.invite(membership, owner, "guest@example.com", link_for=lambda t: t)
    token = new.link
    first = accounts.register_user("first@example.com", PASSWORD)
    second = accounts.register_user("second@example.com", PASSWORD)
    members_service.accept_invite(token, first)
    with pytest.raises(members_service.InviteUnusable) as exc:
        members_service.accept_invite(token, second)
    assert exc.value.reason == members_service.INVITE_USED
    assert _member_emails("Elm Street") == ["first@example.com", "owner@example.com"]


def test_links_use_public_url_when_it_is_set(app, auth, owner):
    app.config["PUBLIC_URL"] = "https://iotlock.example.org/"
    html = auth.invite().get_data(as_text=True)
    assert re.search(r'value="https://iotlock\.example\.org/members/join/[A-Za-z0-9_-]{43}"', html)
