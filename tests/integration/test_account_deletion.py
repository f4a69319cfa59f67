"""Deleting one's own account: password and DELETE typed; refused while the only owner of a
household with other members; otherwise memberships go, a household left empty is closed
with its devices (nothing left in StreamIoT), the activity log says "a former member", and
every session ends."""
from datetime import UTC, datetime

import sqlalchemy as sa

from portal.extensions import db
from portal.jobs.runner import drain
from portal.models import (
    ROLE_OWNER,
    Account,
    ActivityEvent,
    Gateway,
    GatewayKeyHolder,
    Invite,
    LoginSession,
    Mailbox,
    Membership,
    User,
)
from portal.services import accounts, members
from tests.plugins.accounts import PASSWORD, Auth, csrf_from


def _delete(auth: Auth, password=PASSWORD, confirm="delete my account"):
    page = auth.client.get("/settings/delete")
    assert page.status_code == 200
    return auth.client.post(
        "/settings/delete",
        data={"password": password, "confirm": confirm, "csrf_token": csrf_from(page.get_data(as_text=True))},
    )


def _login(app, email) -> Auth:
    auth = Auth(app.test_client())
    assert auth.login(email, PASSWORD).status_code == 302
    return auth


def _user(email):
    db.session.expire_all()
    return accounts.find_user_by_email(email)


def test_the_only_owner_of_a_household_with_members_is_refused_and_told_what_to_do(app, make_household, add_member):
    owner, account = make_household("owner@example.com", "Elm Street")
    add_member(account, "bob@example.com")
    auth = _login(app, "owner@example.com")
    page = auth.client.get("/settings/delete").get_data(as_text=True)
    assert "you are its only owner" in page and "make another member an owner" in page
    response = _delete(auth)
    html = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "You are the only owner of “Elm Street”, which has other members" in html
    assert "make another member an owner (or remove the other members)" in html
    assert _user("owner@example.com") is not None
    assert members.member_count(account.id) == 2
    assert _logged_in(auth)


def test_a_wrong_password_or_confirmation_is_refused_on_its_field(app, make_household):
    make_household("owner@example.com", "Elm Street")
    auth = _login(app, "owner@example.com")
    wrong_word = _delete(auth, confirm="delete it")
    assert wrong_word.status_code == 200
    assert "Type “delete my account” to confirm." in wrong_word.get_data(as_text=True)
    wrong_password = _delete(auth, password="not my password")
    assert wrong_password.status_code == 200
    assert "That is not your current password." in wrong_password.get_data(as_text=True)
    assert _user("owner@example.com") is not None


def _logged_in(auth: Auth) -> bool:
    return auth.client.get("/settings").status_code == 200


def test_a_member_leaves_shared_households_and_the_log_keeps_a_former_member(app, make_household, add_member):
    owner, account = make_household("owner@example.com", "Elm Street")
    bob, _ = add_member(account, "bob@example.com")
    # Bob is an owner alongside another owner elsewhere: he may go.
    _, oak = make_household("carol@example.com", "Oak Lane")
    add_member(oak, "bob@example.com", role=ROLE_OWNER)
    members.make_owner(_membership(account, owner), owner, _membership(account, bob).id)
    db.session.add(GatewayKeyHolder(account_id=account.id, gateway_id=_gateway(account).id, user_id=bob.id,
                                    email=bob.email))
    db.session.commit()
    phone, laptop = _login(app, "bob@example.com"), _login(app, "bob@example.com")
    response = _delete(laptop)
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert "Your account bob@example.com is deleted" in laptop.client.get("/login").get_data(as_text=True)
    assert not _logged_in(phone) and not _logged_in(laptop)
    assert _user("bob@example.com") is None
    assert db.session.scalar(sa.select(sa.func.count()).select_from(LoginSession).where(
        LoginSession.user_id == bob.id)) == 0
    assert members.member_count(account.id) == 1 and members.member_count(oak.id) == 1

    events = db.session.scalars(sa.select(ActivityEvent).where(ActivityEvent.account_id == account.id)
                                .order_by(ActivityEvent.id)).all()
    text = " ".join(f"{e.actor_label} {e.summary} {e.details}" for e in events)
    assert "bob@example.com" not in text
    made_owner = next(e for e in events if e.kind == "member.role_changed")
    assert made_owner.summary == "Made a former member an owner."
    left = events[-1]
    assert (left.kind, left.actor_label, left.actor_user_id) == ("member.left", "a former member", None)
    assert db.session.scalars(sa.select(GatewayKeyHolder.email)).all() == ["a former member"]
    # The address is free again.
    assert Auth(app.test_client()).register("bob@example.com", household="Bob again").status_code == 302


def _membership(account, user) -> Membership:
    return db.session.scalars(sa.select(Membership).where(
        Membership.account_id == account.id, Membership.user_id == user.id)).one()


def _gateway(account) -> Gateway:
    gateway = Gateway(account_id=account.id, name="Hallway", public_key="x" * 44, status="active")
    db.session.add(gateway)
    db.session.flush()
    return gateway


def test_the_only_member_closes_the_household_with_its_devices_gone_from_streamiot(app, kit):
    gateway, mailbox = kit.ready_mailbox()
    kit.add_pin(mailbox)
    gateway_id, mailbox_id, account_id = gateway.id, mailbox.id, kit.account.id
    portal_thing = db.session.get(Account, account_id).portal_thing_id
    api = kit.user_api()
    # Far off, on a fixed date: today's date in 2100 does not exist on 29 February.
    db.session.add(Invite(account_id=account_id, email="late@example.com", token_hash="0" * 64,
                          invited_by_id=kit.user.id, expires_at=datetime(2100, 1, 1, tzinfo=UTC)))
    db.session.commit()
    auth = _login(app, kit.user.email)
    page = auth.client.get("/settings/delete").get_data(as_text=True)
    assert "you are its only member, so it is closed" in page and "its 1 gateway" in page

    response = _delete(auth)
    assert response.status_code == 302
    assert "“Elm Street” is closed" in auth.client.get("/login").get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Gateway, gateway_id).status == "removing"  # the gateway page's own removal
    assert db.session.scalars(sa.select(Invite.revoked_at)).one() is not None  # nobody joins it now

    kit.drain()
    db.session.expire_all()
    assert db.session.get(Gateway, gateway_id) is None and db.session.get(Mailbox, mailbox_id) is None
    assert db.session.get(Account, account_id) is None
    assert api.find_things(f"iotlock-gw-{gateway_id}") == []
    assert api.find_channels(f"iotlock-gw-{gateway_id}") == []
    assert api.find_channels(f"iotlock-mb-{mailbox_id}") == []
    assert api.find_things(f"iotlock-portal-{account_id}") == [] and portal_thing
    assert db.session.get(User, kit.user.id) is None


def test_an_unlinked_household_without_devices_is_closed_too(app, make_household):
    _, account = make_household("solo@example.com", "Solo")
    account_id = account.id
    auth = _login(app, "solo@example.com")
    assert _delete(auth).status_code == 302
    drain(app)  # the link job, then the close job behind it (same target)
    db.session.expire_all()
    assert db.session.get(Account, account_id) is None
    assert _user("solo@example.com") is None


def test_staff_cannot_delete_themselves_here(client, signed_in_staff):
    assert client.get("/settings/delete").status_code == 403
