"""Password hashes under load: at most PASSWORD_HASH_CONCURRENCY run at once on the machine
(lock files in INSTANCE_DIR/password-hash-slots, shared by every process); a check that
waits longer than PASSWORD_HASH_WAIT_SECONDS answers 429 with Retry-After, never a 5xx,
and is not counted as a failed attempt. Hashes of other argon2 parameters still verify and
are re-made at login."""
import fcntl
import os
import threading
import time

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher, Type

from portal.extensions import db
from portal.models import LoginThrottle, User
from tests.plugins.accounts import PASSWORD

EMAIL = "owner@example.com"


@pytest.fixture
def app_overrides():
    return {"PASSWORD_HASH_CONCURRENCY": 1, "PASSWORD_HASH_WAIT_SECONDS": 0.3}


class Slot:
    """Holds the machine's one hash slot, as a login in another process would."""

    def __init__(self, app):
        folder = app.config["INSTANCE_DIR"] / "password-hash-slots"
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "slot-0"
        self.fd: int | None = None

    def take(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def give_back(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


@pytest.fixture
def slot(app):
    held = Slot(app)
    yield held
    held.give_back()


@pytest.fixture
def owner(make_household):
    return make_household(EMAIL)[0]


def _throttle_counts() -> dict:
    db.session.expire_all()
    return {row.key: row.failures for row in db.session.scalars(sa.select(LoginThrottle))}


def test_a_login_that_finds_every_hash_slot_busy_gets_the_form_again_with_429(auth, owner, slot):
    slot.take()
    response = auth.login(EMAIL)
    html = response.get_data(as_text=True)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    assert "Many people are signing in right now. Please try again in 1 second." in html
    assert f'value="{EMAIL}"' in html and 'name="password"' in html  # the form again
    assert all(count == 0 for count in _throttle_counts().values())  # not a failed attempt

    slot.give_back()
    assert auth.login(EMAIL).status_code == 302


def test_a_sign_up_that_finds_every_hash_slot_busy_gets_the_form_again_and_makes_nothing(auth, slot):
    slot.take()
    response = auth.register("new@example.com", PASSWORD, "Oak Lane")
    assert response.status_code == 429 and response.headers["Retry-After"] == "1"
    assert 'name="household_name"' in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 0
    assert all(count == 0 for count in _throttle_counts().values())


def test_other_password_forms_answer_the_429_page_when_every_slot_is_busy(auth, owner, slot):
    assert auth.login(EMAIL).status_code == 302
    before = db.session.scalar(sa.select(User.password_hash).where(User.id == owner.id))
    slot.take()
    response = auth.post("/settings/password", {"pw-current_password": PASSWORD, "pw-new_password": "a brand new passphrase"},
                         page="/settings")
    assert response.status_code == 429 and response.headers["Retry-After"] == "1"
    assert "Many people are signing in right now" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.scalar(sa.select(User.password_hash).where(User.id == owner.id)) == before


def test_a_login_waits_its_turn_for_a_slot_instead_of_failing(app, auth, owner, slot):
    app.config["PASSWORD_HASH_WAIT_SECONDS"] = 10.0
    slot.take()
    freed = threading.Timer(0.4, slot.give_back)
    started = time.monotonic()
    freed.start()
    try:
        response = auth.login(EMAIL)
    finally:
        freed.join()
    assert response.status_code == 302
    assert time.monotonic() - started >= 0.4  # it queued behind the held slot


def test_a_hash_of_older_parameters_verifies_and_is_remade_at_login(app, auth, owner):
    old = PasswordHasher(time_cost=3, memory_cost=64, parallelism=4, type=Type.ID).hash(PASSWORD)
    db.session.execute(sa.update(User).where(User.id == owner.id).values(password_hash=old))
    db.session.commit()
    assert auth.login(EMAIL).status_code == 302
    db.session.expire_all()
    remade = db.session.scalar(sa.select(User.password_hash).where(User.id == owner.id))
    cfg = app.config
    assert remade.startswith(
        f"$argon2id$v=19$m={cfg['ARGON2_MEMORY_COST']},t={cfg['ARGON2_TIME_COST']},p={cfg['ARGON2_PARALLELISM']}$")
    auth.logout()
    assert auth.login(EMAIL).status_code == 302
