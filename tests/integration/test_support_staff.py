"""Staff accounts: created on the command line, password set through a one-time link, a TOTP
second factor with recovery codes, a 15-minute idle timeout, and no household membership."""
import re
from datetime import timedelta
from urllib.parse import urlsplit

import pyotp
import pytest
import sqlalchemy as sa

from portal import crypto
from portal.extensions import db
from portal.models import LoginSession, Membership, RecoveryCode, User, utcnow
from portal.services import staff as staff_service
from tests.plugins.accounts import PASSWORD, csrf_from
from tests.plugins.support import STAFF_EMAIL, fresh_code, isolated_client

pytestmark = pytest.mark.rollback

NEW_PASSWORD = "lantern orchard violet 42"


def _link_path(output: str) -> str:
    match = re.search(r"(https?://\S+/support/set-password/\S+)", output)
    assert match, output
    return urlsplit(match.group(1)).path


def _create_on_cli(runner, email=STAFF_EMAIL, *args):
    result = runner.invoke(args=["staff", "create", email, *args])
    assert result.exit_code == 0, result.output
    return result.output


def _set_password(client, path, password=NEW_PASSWORD):
    token = csrf_from(client.get(path).get_data(as_text=True))
    return client.post(path, data={"password": password, "confirm": password, "csrf_token": token})


def _user(email=STAFF_EMAIL) -> User:
    db.session.expire_all()
    return db.session.scalars(sa.select(User).where(User.email == email)).one()


# --- the command line and the set-password link ----------------------------------------

def test_staff_create_prints_a_one_time_link_whose_token_is_stored_only_hashed(runner):
    output = _create_on_cli(runner, STAFF_EMAIL, "--name", "Sam")
    path = _link_path(output)
    token = path.rsplit("/", 1)[1]
    assert len(token) >= 22  # >= 128 bits in URL-safe base64
    user = _user()
    assert user.is_staff and user.password_hash is None and user.display_name == "Sam"
    assert user.password_set_token_hash == staff_service.crypto.sha256_hex(token)
    assert token not in str(user.password_set_token_hash)
    assert timedelta(hours=23) < user.password_set_expires_at - utcnow() <= timedelta(hours=24)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Membership)) == 0


def test_link_sets_the_password_once_and_then_staff_can_log_in(runner, client, auth):
    path = _link_path(_create_on_cli(runner))
    page = client.get(path).get_data(as_text=True)
    assert STAFF_EMAIL in page and "Set your password" in page
    response = _set_password(client, path)
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")

    again = client.get(path)
    assert again.status_code == 404
    assert "no longer works" in again.get_data(as_text=True)

    response = auth.login(STAFF_EMAIL, NEW_PASSWORD)
    assert response.status_code == 302
    # Before the second factor, every page (the home page too) asks for the authenticator.
    assert "/support/enrol" in client.get("/").headers["Location"]
    assert "/support/enrol" in client.get("/support/").headers["Location"]


def test_set_password_refuses_a_common_password_on_the_field(runner, client):
    path = _link_path(_create_on_cli(runner))
    response = _set_password(client, path, password="password123")
    assert response.status_code == 200
    assert "common" in response.get_data(as_text=True)
    assert _user().password_hash is None


def test_expired_link_is_refused(runner, client):
    path = _link_path(_create_on_cli(runner))
    user = _user()
    user.password_set_expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert client.get(path).status_code == 404
    assert client.get("/support/set-password/not-a-real-token").status_code == 404


def test_staff_create_refuses_an_existing_household_address(runner, make_household):
    make_household("olga@example.com")
    result = runner.invoke(args=["staff", "create", "olga@example.com"])
    assert result.exit_code != 0
    assert "already exists" in result.output
    assert not _user("olga@example.com").is_staff


def test_staff_disable_ends_their_sessions_and_blocks_login(runner, client, staff, auth):
    user, _secret = staff.sign_in()
    assert client.get("/support/").status_code == 200

    result = runner.invoke(args=["staff", "disable", STAFF_EMAIL])
    assert result.exit_code == 0, result.output

    response = client.get("/support/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert db.session.scalar(
        sa.select(sa.func.count()).select_from(LoginSession)
        .where(LoginSession.user_id == user.id, LoginSession.revoked_at.is_(None))
    ) == 0
    assert "do not match" in auth.login(STAFF_EMAIL, PASSWORD).get_data(as_text=True)


def test_staff_reset_gives_a_new_link_and_a_new_second_factor(runner, client, staff, auth):
    staff.sign_in()
    result = runner.invoke(args=["staff", "reset", STAFF_EMAIL])
    assert result.exit_code == 0, result.output
    assert client.get("/support/").status_code == 302  # the old session is gone
    _set_password(client, _link_path(result.output))
    auth.login(STAFF_EMAIL, NEW_PASSWORD)
    assert "/support/enrol" in client.get("/support/").headers["Location"]


def test_unknown_staff_email_is_an_error_on_the_command_line(runner):
    result = runner.invoke(args=["staff", "disable", "nobody@example.com"])
    assert result.exit_code != 0 and "No staff account" in result.output


# --- enrolment --------------------------------------------------------------------------

def _enrol_page(client):
    html = client.get("/support/enrol").get_data(as_text=True)
    secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', html).group(1).replace(" ", "")
    return html, secret


def test_first_login_enrols_totp_with_qr_code_and_shows_ten_recovery_codes_once(client, staff):
    user = staff.create()
    staff.login()
    html, secret = _enrol_page(client)
    assert "<svg" in html and 'aria-label="QR code' in html
    assert "style=" not in html and "<script>" not in html
    # Reloading shows the same secret: the app already scanned it.
    assert _enrol_page(client)[1] == secret
    # At rest the secret is only ciphertext, bound to this user's row.
    db.session.expire_all()
    blob = db.session.scalar(sa.select(User.totp_secret_enc).where(User.id == user.id))
    assert secret.encode() not in blob
    assert crypto.decrypt(blob, table="users", column="totp_secret_enc", row_id=user.id) == secret

    token = csrf_from(html)
    wrong = client.post("/support/enrol", data={"code": "000000", "csrf_token": token})
    assert "does not match" in wrong.get_data(as_text=True)

    code = pyotp.TOTP(secret).now()
    response = client.post("/support/enrol", data={"code": code, "csrf_token": token})
    page = response.get_data(as_text=True)
    codes = re.findall(r"<code>([a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4})</code>", page)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert "only time they are shown" in page

    stored = db.session.scalars(sa.select(RecoveryCode.code_hash).where(RecoveryCode.user_id == user.id)).all()
    assert len(stored) == 10
    assert not any(c.replace("-", "") in h or c in h for c in codes for h in stored)
    assert client.get("/support/").status_code == 200
    # Enrolment is done: the page does not hand out the secret again.
    assert client.get("/support/enrol").status_code == 302


# --- verification -----------------------------------------------------------------------

@pytest.fixture
def enrolled(staff):
    user = staff.create()
    secret = staff.enrol(user)
    staff.login()
    return user, secret


def test_staff_without_second_factor_is_sent_to_verify(client, enrolled):
    response = client.get("/support/?q=x")
    assert response.status_code == 302
    assert "/support/verify?next=" in response.headers["Location"]


def test_totp_code_opens_the_console_and_the_same_step_cannot_be_replayed(client, staff, enrolled):
    user, secret = enrolled
    code = fresh_code(secret, user.id)
    response = staff.verify(secret, user.id, code=code)
    assert response.status_code == 302
    assert client.get("/support/").status_code == 200

    staff.client.post("/logout", data={"csrf_token": csrf_from(client.get("/support/").get_data(as_text=True))})
    staff.login()
    replay = staff.verify(secret, user.id, code=code)
    assert replay.status_code == 200
    assert "not valid" in replay.get_data(as_text=True)
    assert client.get("/support/").status_code == 302


def test_codes_one_step_away_are_accepted_and_two_steps_away_refused(client, staff, enrolled, time_machine):
    user, secret = enrolled
    # The clock stands 5 s into a 30-second step: the steps counted from `now` must not
    # move on between reading it and the requests (then `now + 2` is one step away).
    time_machine.move_to(utcnow().replace(second=5, microsecond=0) + timedelta(minutes=1), tick=False)
    totp = pyotp.TOTP(secret)
    now = totp.timecode(utcnow())
    assert staff.verify(secret, user.id, code=totp.generate_otp(now - 2)).status_code == 200
    assert staff.verify(secret, user.id, code=totp.generate_otp(now + 2)).status_code == 200
    assert staff.verify(secret, user.id, code=totp.generate_otp(now + 1)).status_code == 302


def test_recovery_code_works_once(client, staff, enrolled):
    user, _secret = enrolled
    codes = staff_service._new_recovery_codes(user)
    db.session.commit()
    response = staff.verify("", user.id, code=codes[3].upper())
    assert response.status_code == 302
    assert "9 left" in client.get("/support/").get_data(as_text=True)

    client.post("/logout", data={"csrf_token": csrf_from(client.get("/support/").get_data(as_text=True))})
    staff.login()
    again = staff.verify("", user.id, code=codes[3])
    assert again.status_code == 200 and "not valid" in again.get_data(as_text=True)
    assert staff.verify("", user.id, code=codes[4]).status_code == 302


def test_five_wrong_codes_lock_the_second_factor(client, staff, enrolled):
    user, secret = enrolled
    for _ in range(5):
        staff.verify(secret, user.id, code="123456")
    locked = staff.verify(secret, user.id)
    assert "Too many failed attempts" in locked.get_data(as_text=True)
    assert client.get("/support/").status_code == 302


# --- sessions and households ------------------------------------------------------------

def _age_sessions(minutes: int) -> None:
    db.session.execute(sa.update(LoginSession).values(last_seen_at=utcnow() - timedelta(minutes=minutes)))
    db.session.commit()


def test_staff_session_ends_after_15_idle_minutes(client, signed_in_staff):
    _age_sessions(14)
    assert client.get("/support/").status_code == 200
    _age_sessions(16)
    response = client.get("/support/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_household_member_session_survives_16_idle_minutes(client, auth):
    auth.register("olga@example.com")
    _age_sessions(16)
    assert client.get("/gateways/").status_code == 200


def test_staff_cannot_open_household_pages(client, signed_in_staff):
    for path in ("/gateways/", "/members/"):
        assert client.get(path).status_code == 403
    user, _ = signed_in_staff
    assert db.session.scalar(
        sa.select(sa.func.count()).select_from(Membership).where(Membership.user_id == user.id)
    ) == 0


@pytest.fixture
def client(app):
    return isolated_client(app)
