"""Logging in and out: one message for every failed login, throttling before the hasher,
server-side sessions that a replayed cookie cannot revive, idle and absolute timeouts."""
from datetime import timedelta

import pytest
import sqlalchemy as sa
import time_machine

import portal.crypto
from portal.extensions import db
from portal.models import LoginSession, LoginThrottle, utcnow
from portal.services import accounts, throttle
from tests.plugins.accounts import PASSWORD, Auth

pytestmark = pytest.mark.rollback

FAILED = "That email and password do not match an account."


@pytest.fixture
def alice(make_household):
    user, _ = make_household("alice@example.com", "Elm Street")
    return user


def _post_login(auth, email, password, token=None, **kwargs):
    token = token or auth.csrf("/login")
    return auth.client.post("/login", data={"email": email, "password": password, "csrf_token": token}, **kwargs)


def test_login_with_the_right_password_opens_the_dashboard(auth, alice):
    response = auth.login("alice@example.com", PASSWORD)
    assert response.status_code == 302
    assert auth.client.get("/gateways/").status_code == 200


def test_email_is_matched_without_regard_to_case_or_spaces(auth, alice):
    assert auth.login("  ALICE@Example.com ", PASSWORD).status_code == 302


def test_unknown_email_and_wrong_password_get_the_same_answer(auth, alice):
    wrong = _post_login(auth, "alice@example.com", "not the password at all")
    unknown = _post_login(auth, "nobody@example.com", "not the password at all")
    assert wrong.status_code == unknown.status_code == 200
    assert FAILED in wrong.get_data(as_text=True)
    assert FAILED in unknown.get_data(as_text=True)


@pytest.mark.parametrize(
    "data,message",
    [
        ({"email": "", "password": PASSWORD}, "Enter your email address."),
        ({"email": "alice@example.com", "password": ""}, "Enter your password."),
        ({"email": "not-an-email", "password": PASSWORD}, "Enter a valid email address"),
        ({"email": "a" * 250 + "@example.com", "password": PASSWORD}, "at most 254 characters"),
        ({"email": "alice@example.com", "password": "p" * 129}, "at most 128 characters"),
    ],
)
def test_bad_login_input_is_answered_on_the_field(auth, alice, data, message):
    response = _post_login(auth, data["email"], data["password"])
    assert response.status_code == 200
    assert message in response.get_data(as_text=True)
    assert auth.client.get("/gateways/").status_code == 302


def test_logout_ends_the_session_and_a_replayed_cookie_is_refused(auth, alice):
    auth.login("alice@example.com", PASSWORD)
    stolen = auth.client.get_cookie("session").value
    assert auth.logout().status_code == 302
    assert auth.client.get("/gateways/").status_code == 302
    auth.client.set_cookie("session", stolen)
    response = auth.client.get("/gateways/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_logout_needs_a_post(auth, alice):
    auth.login("alice@example.com", PASSWORD)
    assert auth.client.get("/logout").status_code == 405
    assert auth.client.get("/gateways/").status_code == 200


def test_each_login_gets_a_new_session_id(app, auth, alice):
    serializer = app.session_interface.get_signing_serializer(app)
    auth.login("alice@example.com", PASSWORD)
    first = serializer.loads(auth.client.get_cookie("session").value)["_user_id"]
    auth.login("alice@example.com", PASSWORD)
    second = serializer.loads(auth.client.get_cookie("session").value)["_user_id"]
    assert first != second
    assert len(second) >= 40  # 256-bit random token, not the user's id


def test_session_cookie_is_httponly_and_samesite_lax(auth, alice):
    response = auth.login("alice@example.com", PASSWORD)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_production_marks_the_session_cookie_secure():
    from config import ProductionConfig

    assert ProductionConfig.SESSION_COOKIE_SECURE is True
    assert ProductionConfig.HSTS is True


def _at(time_machine, when):
    """Every clock of the process (datetime, time) reads `when`, and stands still there."""
    time_machine.move_to(when, tick=False)


def test_idle_session_expires(auth, alice, time_machine):
    auth.login("alice@example.com", PASSWORD)
    start = utcnow()
    _at(time_machine, start + timedelta(minutes=119))
    assert auth.client.get("/gateways/").status_code == 200
    _at(time_machine, start + timedelta(minutes=119 + 121))
    response = auth.client.get("/gateways/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_active_session_still_ends_at_the_absolute_timeout(auth, alice, time_machine):
    auth.login("alice@example.com", PASSWORD)
    start = utcnow()
    for minutes in range(100, 701, 100):
        _at(time_machine, start + timedelta(minutes=minutes))
        assert auth.client.get("/gateways/").status_code == 200, minutes
    _at(time_machine, start + timedelta(hours=12, minutes=5))
    assert auth.client.get("/gateways/").status_code == 302


def test_polling_does_not_keep_an_idle_session_alive(auth, alice, time_machine):
    auth.login("alice@example.com", PASSWORD)
    start = utcnow()
    poll = {"HX-Request": "true", "X-IoTLock-Poll": "1"}
    for minutes in (30, 60, 90, 115):
        _at(time_machine, start + timedelta(minutes=minutes))
        assert auth.client.get("/activity", headers=poll).status_code == 200
    _at(time_machine, start + timedelta(minutes=125))
    response = auth.client.get("/activity", headers=poll)
    assert response.status_code == 401
    assert response.headers["HX-Redirect"].startswith("/login")


def test_a_click_inside_a_polled_part_keeps_the_session_alive(auth, alice, time_machine):
    """htmx sends a polled part's headers with every request of its buttons too (Open on the
    dashboard): a POST is the user doing something, whatever headers it inherited."""
    auth.login("alice@example.com", PASSWORD)
    start = utcnow()
    token = auth.csrf("/alerts/")
    _at(time_machine, start + timedelta(minutes=100))
    clicked = auth.client.post("/alerts/read", data={"csrf_token": token},
                               headers={"HX-Request": "true", "X-IoTLock-Poll": "1"})
    assert clicked.status_code == 303
    _at(time_machine, start + timedelta(minutes=100 + 110))  # 210 min after login, 110 after the click
    assert auth.client.get("/gateways/").status_code == 200


def test_visitor_is_sent_to_login_and_comes_back(auth, alice):
    response = auth.client.get("/members/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/members/"
    token = auth.csrf("/login?next=/members/")
    back = auth.client.post(
        "/login?next=/members/", data={"email": "alice@example.com", "password": PASSWORD, "csrf_token": token}
    )
    assert back.headers["Location"] == "/members/"


@pytest.mark.parametrize(
    "evil", ["//evil.com", "https://evil.com", "/\\evil.com", "javascript:alert(1)", "http://localhost.evil.com/"]
)
def test_login_never_redirects_off_site(auth, alice, evil):
    token = auth.csrf("/login")
    response = auth.client.post(
        "/login", query_string={"next": evil}, data={"email": "alice@example.com", "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize("evil", ["//evil.com", "https://evil.com", "/\\evil.com", "javascript:alert(1)"])
def test_register_never_redirects_off_site(auth, evil):
    token = auth.csrf("/register")
    response = auth.client.post(
        "/register",
        query_string={"next": evil},
        data={"email": "new@example.com", "password": PASSWORD, "household_name": "Oak", "csrf_token": token},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/gateways/"


def test_htmx_request_without_login_gets_hx_redirect(client):
    response = client.get("/members/", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/login?next=/members/"


# --- throttling ----------------------------------------------------------------------------

@pytest.fixture
def hasher_calls(monkeypatch):
    calls = []
    real = portal.crypto.verify_password

    def spy(stored, password):
        calls.append(password)
        return real(stored, password)

    monkeypatch.setattr(portal.crypto, "verify_password", spy)
    return calls


def test_five_failures_lock_the_account_and_the_hasher_is_not_called(auth, alice, hasher_calls):
    token = auth.csrf("/login")
    for _ in range(5):
        assert _post_login(auth, "alice@example.com", "wrong guess one", token).status_code == 200
    assert len(hasher_calls) == 5
    response = _post_login(auth, "alice@example.com", PASSWORD, token)
    assert response.status_code == 429
    assert "Too many failed attempts" in response.get_data(as_text=True)
    assert len(hasher_calls) == 5, "a throttled attempt reached the password hasher"
    assert auth.client.get("/gateways/").status_code == 302


def test_unknown_accounts_are_throttled_the_same_way(auth, hasher_calls):
    token = auth.csrf("/login")
    for _ in range(5):
        _post_login(auth, "ghost@example.com", "wrong guess one", token)
    response = _post_login(auth, "ghost@example.com", "wrong guess one", token)
    assert response.status_code == 429
    assert len(hasher_calls) == 5


def test_lock_of_one_account_does_not_lock_another_from_elsewhere(app, auth, alice, make_household):
    make_household("bob@example.com", "Oak Lane")
    token = auth.csrf("/login")
    for _ in range(5):
        _post_login(auth, "alice@example.com", "wrong guess one", token)
    other = Auth(app.test_client())
    response = other.client.post(
        "/login",
        data={"email": "bob@example.com", "password": PASSWORD, "csrf_token": other.csrf("/login")},
        environ_base={"REMOTE_ADDR": "192.0.2.7"},
    )
    assert response.status_code == 302


def test_many_failures_from_one_address_lock_that_address(app, auth, alice, hasher_calls):
    token = auth.csrf("/login")
    limit = app.config["LOGIN_MAX_FAILURES_PER_ADDRESS"]
    for n in range(limit):
        _post_login(auth, f"guess{n}@example.com", "wrong guess one", token)
    response = _post_login(auth, "alice@example.com", PASSWORD, token)
    assert response.status_code == 429
    assert len(hasher_calls) == limit
    # The same account from another address is still fine.
    other = Auth(app.test_client())
    response = other.client.post(
        "/login",
        data={"email": "alice@example.com", "password": PASSWORD, "csrf_token": other.csrf("/login")},
        environ_base={"REMOTE_ADDR": "198.51.100.9"},
    )
    assert response.status_code == 302


def test_lock_ends_after_the_window(auth, alice):
    token = auth.csrf("/login")
    for _ in range(5):
        _post_login(auth, "alice@example.com", "wrong guess one", token)
    assert _post_login(auth, "alice@example.com", PASSWORD, token).status_code == 429
    with time_machine.travel(utcnow() + timedelta(minutes=16)):
        assert _post_login(auth, "alice@example.com", PASSWORD, token).status_code == 302


def test_a_successful_login_forgets_earlier_failures(auth, alice):
    token = auth.csrf("/login")
    for _ in range(4):
        _post_login(auth, "alice@example.com", "wrong guess one", token)
    assert _post_login(auth, "alice@example.com", PASSWORD, token).status_code == 302
    auth.logout()
    token = auth.csrf("/login")
    for _ in range(4):
        _post_login(auth, "alice@example.com", "wrong guess one", token)
    assert _post_login(auth, "alice@example.com", PASSWORD, token).status_code == 302


def test_successful_logins_do_not_use_up_the_address_limit(app, auth, alice, hasher_calls):
    # Every attempt takes a slot of its address before hashing; a right password gives it back.
    app.config["LOGIN_MAX_FAILURES_PER_ADDRESS"] = 3
    for _ in range(3):
        assert auth.login("alice@example.com", PASSWORD).status_code == 302
        auth.logout()
    token = auth.csrf("/login")
    for n in range(3):
        assert _post_login(auth, f"guess{n}@example.com", "wrong guess one", token).status_code == 200
    assert _post_login(auth, "alice@example.com", PASSWORD, token).status_code == 429
    assert len(hasher_calls) == 6


def _failures(key):
    db.session.expire_all()
    return db.session.scalar(sa.select(LoginThrottle.failures).where(LoginThrottle.key == key))


def test_a_claim_takes_a_slot_on_every_key_or_on_none(app):
    start = utcnow()
    throttle.spend(throttle.claim([("email:b", 1)], now=start), now=start)
    with pytest.raises(throttle.Throttled) as refused:
        throttle.claim([("email:a", 5), ("email:b", 1)], now=start + timedelta(seconds=1))
    assert _failures("email:a") is None
    assert refused.value.retry_after == 15 * 60
    assert "Please wait 15 minutes" in refused.value.message


def test_a_lock_lasts_one_window_from_the_failure_that_spent_the_last_slot(app):
    start = utcnow()
    keys = [("email:a", 2)]
    throttle.spend(throttle.claim(keys, now=start), now=start)
    later = start + timedelta(minutes=10)
    throttle.spend(throttle.claim(keys, now=later), now=later)
    with pytest.raises(throttle.Throttled) as refused:
        throttle.claim(keys, now=start + timedelta(minutes=20))
    assert refused.value.retry_after == 5 * 60 + 1
    throttle.claim(keys, now=later + timedelta(minutes=15, seconds=1))
    assert _failures("email:a") == 1  # a new window


def test_a_slot_given_back_after_its_window_ended_leaves_the_new_window_alone(app):
    start = utcnow()
    keys = [("ip:192.0.2.1", 5)]
    slow = throttle.claim(keys, now=start)
    throttle.claim(keys, now=start + timedelta(minutes=16))
    throttle.release(slow)
    assert _failures("ip:192.0.2.1") == 1
    throttle.release(throttle.claim(keys, now=start + timedelta(minutes=17)))
    assert _failures("ip:192.0.2.1") == 1


def test_login_sessions_are_stored_only_as_hashes(app, auth, alice):
    auth.login("alice@example.com", PASSWORD)
    serializer = app.session_interface.get_signing_serializer(app)
    token = serializer.loads(auth.client.get_cookie("session").value)["_user_id"]
    hashes = db.session.scalars(sa.select(LoginSession.token_hash)).all()
    assert token not in hashes
    assert portal.crypto.sha256_hex(token) in hashes


def test_a_passphrase_typed_in_another_unicode_form_still_logs_in(app, make_household):
    # "é" as one code point when registering, as "e" + combining accent when logging in.
    composed, decomposed = "caf\u00e9 au lait tous les matins", "cafe\u0301 au lait tous les matins"
    make_household(email="unicode@example.com", password=composed)
    assert accounts.authenticate("unicode@example.com", decomposed) is not None
    assert accounts.authenticate("unicode@example.com", "cafe au lait tous les matins") is None
