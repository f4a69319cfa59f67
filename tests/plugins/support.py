"""Shared fixtures: support staff with a second factor, and a household whose secrets are
planted with distinctive values so a test can prove the console never shows them."""
import contextvars
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pyotp
import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from portal import crypto
from portal.extensions import db
from portal.models import Command, Gateway, Job, Mailbox, Pin, User, new_id, utcnow
from portal.services import staff as staff_service
from tests.plugins.accounts import PASSWORD, csrf_from

STAFF_EMAIL = "sam@support.example"


class IsolatedClient(FlaskClient):
    """A test client whose every request runs in its own app context, as in production.

    The `app` fixture keeps one app context pushed for the whole test, and Flask reuses it
    for requests, so `g` (with Flask-WTF's cached CSRF token, portal.auth's login session)
    would leak from one request into the next: after a login clears the session, the next
    form would carry a token the session no longer has. Requests also get their own
    database session; the test sees their writes after `db.session.expire_all()`."""

    def open(self, *args, **kwargs):
        return contextvars.Context().run(super().open, *args, **kwargs)


def isolated_client(app) -> FlaskClient:
    app.test_client_class = IsolatedClient
    try:
        return app.test_client()
    finally:
        app.test_client_class = None


def fresh_code(secret: str, user_id) -> str:
    """A TOTP code the portal will still accept: within ±1 step of now and later than the
    last step this user already spent (codes are single-use per step). The current step's,
    or the next one's once it is spent: never the step before, which the portal refuses
    if a 30-second step ends between making the code and the portal checking it."""
    db.session.expire_all()
    last = db.session.scalar(sa.select(User.totp_last_counter).where(User.id == user_id))
    totp = pyotp.TOTP(secret)
    now = totp.timecode(datetime.now(UTC))
    counter = max(now, (last if last is not None else -2) + 1)
    assert counter <= now + 1, "no unused TOTP step left in the window; the test used too many"
    return totp.generate_otp(counter)


class StaffHelper:
    """Creates staff at the service level and signs them in through the real forms."""

    def __init__(self, client):
        self.client = client

    def create(self, email=STAFF_EMAIL, name="Sam", password=PASSWORD) -> User:
        user, token = staff_service.create_staff(email, name)
        staff_service.set_password_from_link(token, password)
        return user

    def enrol(self, user: User) -> str:
        """Enrol TOTP directly (the enrolment page has its own tests); returns the secret."""
        secret = staff_service.begin_enrolment(user).secret
        user.totp_enrolled_at = utcnow()
        db.session.commit()
        return secret

    def login(self, email=STAFF_EMAIL, password=PASSWORD):
        token = csrf_from(self.client.get("/login").get_data(as_text=True))
        return self.client.post("/login", data={"email": email, "password": password, "csrf_token": token})

    def verify(self, secret: str, user_id, code: str | None = None):
        token = csrf_from(self.client.get("/support/verify").get_data(as_text=True))
        return self.client.post(
            "/support/verify", data={"code": code or fresh_code(secret, user_id), "csrf_token": token}
        )

    def sign_in(self, email=STAFF_EMAIL, name="Sam"):
        """A staff member logged in with password and TOTP: (user, secret)."""
        user = self.create(email, name)
        secret = self.enrol(user)
        self.login(email)
        response = self.verify(secret, user.id)
        assert response.status_code == 302, response.get_data(as_text=True)
        return user, secret


@pytest.fixture
def staff(client):
    return StaffHelper(client)


@pytest.fixture
def signed_in_staff(staff):
    """The test client is logged in as staff member Sam, second factor done."""
    return staff.sign_in()


@pytest.fixture
def secret_household(app, make_household):
    """A household with one gateway, one mailbox and two PINs; every secret it has holds a
    distinctive planted value. One PIN's delivery failed after its retries ran out."""
    owner, account = make_household("olga@example.com", "Lindenweg 7")
    plants = SimpleNamespace(
        pin_grandma="58203917",
        pin_courier="73920461",
        thing_key="9d1f7c3a-thingkey-4b2e-a6f0-planted0001",
        portal_thing_key="5e2a8b41-portalkey-4c9d-b7e3-planted0002",
        streamiot_password="StreamPw-Zq8vX2nL-planted",
        streamiot_token="eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwbGFudGVkIn0.plantedSignature003",
    )

    def seal(value, table, column, row_id):
        return crypto.encrypt(value, table=table, column=column, row_id=row_id)

    account.streamiot_user_id = "usr-7f00c1de"
    account.streamiot_email = f"account-{account.id}@iotlock.invalid"
    account.portal_thing_id = "pth-5a5a0001"
    account.link_state = "connected"
    # The household link job ran long ago (the fixture plays the worker's part).
    db.session.execute(sa.update(Job).where(Job.account_id == account.id).values(state="done", finished_at=utcnow()))
    account.streamiot_password_enc = seal(plants.streamiot_password, "accounts", "streamiot_password_enc", account.id)
    account.streamiot_token_enc = seal(plants.streamiot_token, "accounts", "streamiot_token_enc", account.id)
    account.portal_thing_key_enc = seal(plants.portal_thing_key, "accounts", "portal_thing_key_enc", account.id)

    gateway = Gateway(
        id=new_id(), account_id=account.id, name="Porch hub", public_key="A" * 43 + "=", status="active",
        thing_id="thg-0a1b2c3d", channel_id="chn-gw-4e5f6a7b", last_heartbeat_at=utcnow() - timedelta(seconds=20),
    )
    gateway.thing_key_enc = seal(plants.thing_key, "gateways", "thing_key_enc", gateway.id)
    mailbox = Mailbox(
        id=new_id(), account_id=account.id, gateway_id=gateway.id, name="Front door", public_key="B" * 43 + "=",
        status="active", channel_id="chn-mb-8c9d0e1f", battery_percent=87, battery_at=utcnow(), is_open=False,
    )
    db.session.add_all([gateway, mailbox])
    db.session.flush()

    def pin(label, digits, status):
        row = Pin(id=new_id(), account_id=account.id, mailbox_id=mailbox.id, label=label, status=status,
                  digits_digest=crypto.keyed_digest("pin", f"{mailbox.id}:{digits}"))
        row.digits_enc = seal(digits, "pins", "digits_enc", row.id)
        db.session.add(row)
        return row

    grandma = pin("Grandma", plants.pin_grandma, "active")
    courier = pin("Parcel courier", plants.pin_courier, "adding")
    db.session.flush()

    t0 = utcnow() - timedelta(minutes=30)
    done_job = Job(account_id=account.id, kind="deliver_command", target=f"gateway:{gateway.id}",
                   payload={"command_id": "x"}, state="done", attempts=1, finished_at=t0)
    failed_job = Job(account_id=account.id, kind="deliver_command", target=f"gateway:{gateway.id}",
                     payload={}, state="failed", attempts=12, max_attempts=12, finished_at=t0 + timedelta(minutes=9),
                     last_error="StreamIoT unavailable: 503 Service Unavailable")
    # An error text that quotes a response with the thing key in it: the console must not repeat it.
    leaky_job = Job(account_id=account.id, kind="provision_gateway", target=f"gateway:{gateway.id}",
                    payload={}, state="failed", attempts=3, max_attempts=12,
                    last_error=f'ProtocolError: unexpected body {{"id": "thg-0a1b2c3d", "key": "{plants.thing_key}"}}')
    db.session.add_all([done_job, failed_job, leaky_job])
    db.session.flush()
    confirmed = Command(account_id=account.id, gateway_id=gateway.id, mailbox_id=mailbox.id, pin_id=grandma.id,
                        action="AUTH", channel_key="mailbox", channel_id=mailbox.channel_id, state="confirmed",
                        job_id=done_job.id, created_at=t0, sent_at=t0 + timedelta(seconds=1),
                        answered_at=t0 + timedelta(seconds=2, milliseconds=400))
    failed = Command(account_id=account.id, gateway_id=gateway.id, mailbox_id=mailbox.id, pin_id=courier.id,
                     action="AUTH", channel_key="mailbox", state="failed", job_id=failed_job.id,
                     created_at=t0 + timedelta(minutes=1),
                     reason="Not delivered: StreamIoT did not accept it after 12 attempts.")
    db.session.add_all([confirmed, failed])
    db.session.flush()
    grandma.command_id = confirmed.id
    courier.command_id = failed.id
    db.session.commit()
    return SimpleNamespace(
        owner=owner, account=account, gateway=gateway, mailbox=mailbox, grandma=grandma, courier=courier,
        confirmed=confirmed, failed=failed, failed_job=failed_job, leaky_job=leaky_job, plants=plants,
    )
