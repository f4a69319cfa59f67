"""Contract, emulator only: login tokens expire.

A deployment's tokens last 10 hours, too long to wait for, so the emulator is served
over HTTP with a clock the test moves.
"""
import pytest
import requests

from portal.streamiot.emulator import make_emulator
from portal.streamiot.emulator.server import serve_in_thread
from tests.contract.checks import TIMEOUT, Target, assert_empty, assert_error

TTL = 60


class Clock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def expiring(tmp_path, clock):
    served = serve_in_thread(make_emulator(tmp_path / "streamiot.sqlite3", token_ttl=TTL, clock=clock))
    yield Target("emulator", served.url, served.reader_url)
    served.stop()


def test_a_token_works_until_its_ttl_runs_out(expiring, clock):
    user = expiring.new_user()
    clock.now += TTL - 1

    assert expiring.call("GET", "/things", user=user).status_code == 200


def test_an_expired_token_gets_an_empty_500_from_the_things_service(expiring, clock):
    user = expiring.new_user()
    clock.now += TTL

    assert_empty(expiring.call("GET", "/things", user=user), 500)
    assert_empty(expiring.call("POST", "/things", user=user, json={"name": "late"}), 500)


def test_an_expired_token_gets_401_from_the_users_service(expiring, clock):
    user = expiring.new_user()
    clock.now += TTL

    assert_error(expiring.call("GET", "/users/profile", user=user), 401)


def test_logging_in_again_after_expiry_gives_a_working_token(expiring, clock):
    user = expiring.new_user()
    clock.now += TTL + 5

    fresh = expiring.login(user.email, user.password)

    assert expiring.call("GET", "/things", user=fresh).status_code == 200


def test_a_token_from_another_emulator_is_rejected(expiring, tmp_path):
    other = make_emulator(tmp_path / "other.sqlite3")
    served = serve_in_thread(other)
    try:
        stranger = Target("other", served.url, served.reader_url).new_user()
    finally:
        served.stop()

    assert_empty(expiring.call("GET", "/things", user=stranger), 500)


def test_reading_with_an_expired_bearer_token_is_500_with_the_authorization_error(expiring, clock):
    # STREAMIOT_API.md: a garbage or expired Bearer token on the reader is a 500 with
    # {"error":"failed to perform authorization over the entity"}, not an empty one.
    user = expiring.new_user()
    channel_id = expiring.create_channel(user, "ch")
    clock.now += TTL

    answer = requests.get(
        f"{expiring.reader_url}/channels/{channel_id}/messages", headers=user.auth, timeout=TIMEOUT
    )

    assert_error(answer, 500, "failed to perform authorization over the entity")
