"""The rolled-back module fixture (tests/plugins/rollback.py) keeps tests apart: what one
test commits, through the service layer or a request, is gone in the next; the shared world
is the same rows every time, whatever a test did to it."""
import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import Account, User
from portal.services import accounts
from tests.plugins.accounts import PASSWORD

pytestmark = pytest.mark.rollback


def _emails():
    return set(db.session.scalars(sa.select(User.email)))


def test_1_commits_a_household_and_changes_the_world(app, world, auth):
    accounts.register("committed@example.com", PASSWORD, "Committed")
    assert auth.register("by-request@example.com").status_code == 302
    world.a["account"].name = "Renamed by test 1"
    db.session.delete(world.b["membership"])
    db.session.commit()
    assert {"committed@example.com", "by-request@example.com"} <= _emails()


def test_2_sees_none_of_it(app, world):
    assert not {"committed@example.com", "by-request@example.com"} & _emails()
    assert db.session.get(Account, world.a["account"].id).name == "Household A"
    assert world.a["account"].name == "Household A"
    assert world.b["membership"].user_id == world.b["member"].id
    assert len(_emails()) == 4  # the owner and the member of A and of B, nobody else


def test_3_a_failed_statement_is_rolled_back_with_the_rest(app, world):
    accounts.register("before-error@example.com", PASSWORD, "Before")
    with pytest.raises(sa.exc.IntegrityError):
        db.session.add(User(email=world.a["owner"].email, password_hash="x"))
        db.session.commit()
    db.session.rollback()
    assert "before-error@example.com" in _emails()


def test_4_sees_none_of_that_either(app, world):
    assert "before-error@example.com" not in _emails()


def test_5_app_config_changes_do_not_leak(app):
    app.config["SIGNUPS_PER_ADDRESS"] = 1


def test_6_app_config_is_back(app):
    assert app.config["SIGNUPS_PER_ADDRESS"] == 10


def test_7_a_second_connection_is_refused(app):
    with pytest.raises(RuntimeError, match="second database connection"), db.engine.connect():
        pass
