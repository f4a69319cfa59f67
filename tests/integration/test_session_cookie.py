"""The session cookie: signed when its content changes (not on every answer), and a worker
that already checked a cookie still refuses an altered one and one past its lifetime."""
from datetime import timedelta

import pytest
import time_machine
from itsdangerous import BadSignature

from portal.extensions import login_manager
from portal.models import utcnow


@pytest.fixture
def logged_in(make_household, auth):
    make_household("alice@example.com", "Elm Street")
    assert auth.login("alice@example.com").status_code == 302
    return auth.client


def _sent_to_login(response) -> bool:
    return response.status_code == 302 and "/login" in response.headers["Location"]


def test_an_unchanged_session_is_not_sent_again(logged_in):
    logged_in.get("/gateways/")  # the first page may add its form token to the session
    response = logged_in.get("/gateways/")
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers


def test_an_altered_cookie_is_refused_after_the_real_one_was_accepted(logged_in):
    assert logged_in.get("/gateways/").status_code == 200
    real = logged_in.get_cookie("session").value
    logged_in.set_cookie("session", real[:-2] + ("AA" if not real.endswith("AA") else "BB"))
    assert _sent_to_login(logged_in.get("/gateways/"))
    logged_in.set_cookie("session", real)
    assert logged_in.get("/gateways/").status_code == 200


def test_a_cookie_past_its_lifetime_is_refused_though_it_was_accepted_before(app, make_household, auth):
    # A cookie lifetime shorter than the login session's own timeouts, so only the cookie ends it.
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=1)
    make_household("alice@example.com", "Elm Street")
    auth.login("alice@example.com")
    assert auth.client.get("/gateways/").status_code == 200
    with time_machine.travel(utcnow() + timedelta(minutes=30)):
        assert auth.client.get("/gateways/").status_code == 200
    with time_machine.travel(utcnow() + timedelta(minutes=90)):
        assert _sent_to_login(auth.client.get("/gateways/"))


def test_the_signing_serializer_is_built_once_and_follows_a_new_secret_key(app, monkeypatch):
    interface = app.session_interface
    first = interface.get_signing_serializer(app)
    assert interface.get_signing_serializer(app) is first
    signed = first.dumps({"a": 1})
    monkeypatch.setitem(app.config, "SECRET_KEY", "another key, after a rotation")
    rotated = interface.get_signing_serializer(app)
    assert rotated is not first
    with pytest.raises(BadSignature):
        rotated.loads(signed)
    monkeypatch.setitem(app.config, "SECRET_KEY_FALLBACKS", [first.secret_keys[-1]])
    assert interface.get_signing_serializer(app).loads(signed) == {"a": 1}  # the old key, as a fallback


def test_session_protection_off_computes_no_identifier_and_on_still_checks(app, logged_in, monkeypatch):
    # flask-login computes its protection's identifier before it looks at the mode; the
    # portal's login manager skips it while the protection is off (extensions.py).
    made = []
    monkeypatch.setattr(login_manager, "_session_identifier_generator", lambda: made.append(1) or "same")
    assert logged_in.get("/gateways/").status_code == 200
    assert made == []
    monkeypatch.setitem(app.config, "SESSION_PROTECTION", "strong")
    assert logged_in.get("/gateways/").status_code == 200
    assert made, "with the protection on, flask-login compares the identifier again"
