"""Household isolation at the service layer: another household's ids behave like unknown ids."""
import pytest

from portal.extensions import db
from portal.models import Membership
from portal.services import accounts, activity
from portal.services import members as members_service
from portal.services.errors import NotFound

pytestmark = pytest.mark.rollback


def _owner_membership(world, household):
    return db.session.get(Membership, getattr(world, household)["owner_membership"].id)


@pytest.mark.parametrize(
    "action,key",
    [
        (members_service.remove_member, "membership"),
        (members_service.make_owner, "membership"),
        (members_service.remove_member, "owner_membership"),
        (members_service.revoke_invite, "invite"),
    ],
)
def test_owner_of_b_cannot_touch_a_by_id(app, world, action, key):
    before = world.snapshot("a")
    with pytest.raises(NotFound):
        action(_owner_membership(world, "b"), world.b["owner"], world.id_of(key))
    assert world.snapshot("a") == before


def test_lists_hold_only_the_households_own_rows(app, world):
    a_id, b_id = world.a["account"].id, world.b["account"].id
    assert {m.user.email for m in members_service.list_members(b_id)} == {"b-owner@example.com", "b-member@example.com"}
    assert [i.email for i in members_service.list_open_invites(b_id)] == ["b-invitee@example.com"]
    assert {e.account_id for e in activity.list_events(b_id).events} == {b_id}
    assert set(activity.mailbox_names(b_id)) == {world.b["mailbox"].id}
    assert a_id not in {m.account_id for m in accounts.memberships_of(world.b["owner"].id)}


def test_switching_to_a_household_you_are_not_in_is_not_found(app, world):
    from portal.models import LoginSession

    session_row = LoginSession(user_id=world.b["owner"].id, token_hash="x" * 64)
    db.session.add(session_row)
    db.session.commit()
    with pytest.raises(NotFound):
        accounts.switch_household(world.b["owner"], session_row, world.a["account"].id)
    assert session_row.current_account_id is None


def test_owner_of_b_cannot_rename_a(app, world):
    membership_b = _owner_membership(world, "b")
    accounts.rename_household(membership_b, world.b["owner"], "B renamed")
    db.session.expire_all()
    assert db.session.get(type(world.a["account"]), world.a["account"].id).name == "Household A"


def test_an_invite_of_a_joins_a_only(app, world):
    account = members_service.accept_invite(world.a["invite_token"], world.b["member"])
    assert account.id == world.a["account"].id
    homes = {m.account.name for m in accounts.memberships_of(world.b["member"].id)}
    assert homes == {"Household A", "Household B"}
