"""Shared fixtures for households and users: factories, a logged-in client, and the `world`
of two households that the access-matrix tests attack each other with."""
import re
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
import sqlalchemy as sa

from portal import crypto
from portal.extensions import db
from portal.models import (
    ROLE_MEMBER,
    ActivityEvent,
    Alert,
    ApiToken,
    Command,
    DeliveryState,
    Gateway,
    Invite,
    Mailbox,
    Membership,
    Notification,
    Pin,
    WebhookDelivery,
    WebhookEndpoint,
    utcnow,
)
from portal.services import accounts, api_tokens
from tests.plugins import rollback

PASSWORD = "correct horse battery staple"


def csrf_from(html: str) -> str:
    match = (
        re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
        or re.search(r'name="csrf_token" value="([^"]+)"', html)
        or re.search(r'"X-CSRFToken": "([^"]+)"', html)
    )
    assert match, "no CSRF token on the page"
    return match.group(1)


def invite_link_from(html: str) -> str:
    """The invite link shown to the owner, as a path (/members/join/<token>)."""
    match = re.search(r'id="invite-link"[^>]*value="([^"]+)"', html)
    assert match, "no invite link on the page"
    return re.sub(r"^https?://[^/]+", "", match.group(1))


class Auth:
    """Drives the real register/login forms, CSRF included."""

    def __init__(self, client):
        self.client = client

    def csrf(self, path="/login") -> str:
        return csrf_from(self.client.get(path).get_data(as_text=True))

    def register(self, email="alice@example.com", password=PASSWORD, household="Elm Street"):
        token = self.csrf("/register")
        return self.client.post(
            "/register",
            data={"email": email, "password": password, "household_name": household, "csrf_token": token},
        )

    def login(self, email="alice@example.com", password=PASSWORD):
        token = self.csrf("/login")
        return self.client.post("/login", data={"email": email, "password": password, "csrf_token": token})

    def logout(self):
        token = self.csrf("/settings")
        return self.client.post("/logout", data={"csrf_token": token})

    def invite(self, email="guest@example.com", **kwargs):
        """An owner invites `email` on the members page."""
        return self.post("/members/invite", {"email": email}, page="/members/", **kwargs)

    def post(self, path, data=None, *, page="/settings", **kwargs):
        """POST a form with a valid CSRF token taken from `page`."""
        data = dict(data or {})
        data.setdefault("csrf_token", self.csrf(page))
        return self.client.post(path, data=data, **kwargs)


@pytest.fixture
def auth(client):
    return Auth(client)


@pytest.fixture
def make_household(app):
    """make_household(email, name) -> (user, account), created through the service layer."""

    def make(email="owner@example.com", name="Elm Street", password=PASSWORD):
        return accounts.register(email, password, name)

    return make


@pytest.fixture
def add_member(app):
    """add_member(account, email) -> (user, membership): a plain member, straight in the models."""

    def add(account, email, password=PASSWORD, role=ROLE_MEMBER):
        user = accounts.find_user_by_email(email) or accounts.register_user(email, password)
        membership = Membership(account_id=account.id, user_id=user.id, role=role)
        db.session.add(membership)
        db.session.commit()
        return user, membership

    return add


@pytest.fixture
def new_client(app):
    """new_client() -> an Auth driving a fresh test client (another browser)."""

    def make():
        return Auth(app.test_client())

    return make


# --- the world: two households with everything a household can have -------------------

# Keys of World.a / World.b, for Route.args in tests/access/<area>.py:
#   account, owner, member (users), owner_membership, membership (the second member's),
#   invite (+ invite_token, a str), gateway, mailbox, pin, command, unlock (a command too),
#   event, webhook (an endpoint), webhook_delivery, alert, notification (the owner's, in the
#   bell), api_token (the owner's, every scope; its secret in api_secret).


@dataclass
class World:
    a: dict = field(default_factory=dict)
    b: dict = field(default_factory=dict)

    def __getitem__(self, key):
        return self.a[key]

    def id_of(self, key, household="a") -> str:
        value = getattr(self, household)[key]
        return str(getattr(value, "id", value))

    # Bookkeeping that a page view may write without changing the household's data: "a
    # member is looking" (portal/services/presence.py); when and from where an API token
    # was used, and its rate-limit count.
    VOLATILE = {("accounts", "watched_until"), ("api_tokens", "last_used_at"), ("api_tokens", "last_used_ip"),
                ("api_tokens", "rate_window"), ("api_tokens", "rate_count")}

    def snapshot(self, household="a") -> dict:
        """Every row that belongs to the household, as plain values, to compare before/after
        (leaving out VOLATILE columns)."""
        account_id = getattr(self, household)["account"].id
        db.session.expire_all()
        rows = {}
        for table in db.metadata.sorted_tables:
            if table.name == "accounts":
                stmt = sa.select(table).where(table.c.id == account_id)
            elif "account_id" in table.c:
                stmt = sa.select(table).where(table.c.account_id == account_id)
            else:
                continue
            rows[table.name] = sorted(
                (tuple(sorted((k, repr(v)) for k, v in row.items() if (table.name, k) not in self.VOLATILE))
                 for row in db.session.execute(stmt).mappings()),
            )
        return rows


def _household(prefix: str, name: str, with_devices: bool) -> dict:
    owner, account = accounts.register(f"{prefix}-owner@example.com", PASSWORD, name)
    member = accounts.register_user(f"{prefix}-member@example.com", PASSWORD)
    membership = Membership(account_id=account.id, user_id=member.id, role=ROLE_MEMBER)
    db.session.add(membership)
    token = crypto.new_token(32)
    invite = Invite(
        account_id=account.id,
        email=f"{prefix}-invitee@example.com",
        token_hash=crypto.sha256_hex(token),
        invited_by_id=owner.id,
        expires_at=utcnow() + timedelta(hours=72),
    )
    db.session.add(invite)
    db.session.flush()
    owner_membership = db.session.scalars(
        sa.select(Membership).where(Membership.account_id == account.id, Membership.user_id == owner.id)
    ).one()
    things = {
        "account": account,
        "owner": owner,
        "member": member,
        "owner_membership": owner_membership,
        "membership": membership,
        "invite": invite,
        "invite_token": token,
    }
    # Straight in the models, like the rest (the service would add an event to the log).
    secret = api_tokens.SECRET_PREFIX + crypto.new_token(api_tokens.SECRET_BYTES)
    api_token = ApiToken(account_id=account.id, user_id=owner.id, name=f"{name} script",
                         scopes=["read", "manage", "pins", "unlock"], prefix=secret[:9],
                         secret_hash=crypto.sha256_hex(secret))
    db.session.add(api_token)
    things.update(api_token=api_token, api_secret=secret)
    if with_devices:
        gateway_pub, _ = crypto.generate_keypair()
        gateway = Gateway(
            account_id=account.id, name=f"{name} gateway", public_key=gateway_pub, status="active",
            thing_id=f"thing-{uuid.uuid4().hex[:8]}", channel_id=f"channel-{uuid.uuid4().hex[:8]}",
        )
        db.session.add(gateway)
        db.session.flush()
        # Set up as far as its settings go (the key is made up: nothing here talks to StreamIoT).
        gateway.thing_key_enc = crypto.encrypt(str(uuid.uuid4()), table="gateways", column="thing_key_enc",
                                               row_id=gateway.id)
        mailbox_pub, _ = crypto.generate_keypair()
        mailbox = Mailbox(
            account_id=account.id, gateway_id=gateway.id, name="Front mailbox", public_key=mailbox_pub,
            status="active", channel_id=f"channel-{uuid.uuid4().hex[:8]}",
        )
        db.session.add(mailbox)
        db.session.flush()
        pin_id = uuid.uuid4()
        pin = Pin(
            id=pin_id, account_id=account.id, mailbox_id=mailbox.id, label="Postman",
            digits_enc=crypto.encrypt("482915", table="pins", column="digits_enc", row_id=pin_id),
            digits_digest=crypto.keyed_digest("pin", "482915"), status="active", created_by_id=owner.id,
        )
        db.session.add(pin)
        db.session.flush()
        command = Command(
            account_id=account.id, gateway_id=gateway.id, mailbox_id=mailbox.id, pin_id=pin_id,
            action="ADD", channel_key="mailbox", state="sent",
        )
        db.session.add(command)
        unlock = Command(
            account_id=account.id, gateway_id=gateway.id, mailbox_id=mailbox.id, action="UNLOCK",
            channel_key="mailbox", state="queued", expires_at=utcnow() + timedelta(days=1),
        )
        db.session.add(unlock)
        event = ActivityEvent(
            account_id=account.id, actor_kind="member", actor_user_id=owner.id, actor_label=owner.email,
            kind="pin.added", summary="Added the PIN “Postman” to Front mailbox.", gateway_id=gateway.id,
            mailbox_id=mailbox.id,
        )
        db.session.add(event)
        things.update(gateway=gateway, mailbox=mailbox, pin=pin, command=command, unlock=unlock, event=event)
        things.update(_webhook(account))
        things.update(_alert(account, owner, member, mailbox))
    db.session.commit()
    return things


def _webhook(account) -> dict:
    """An endpoint with one given-up delivery (so it can be resent), straight in the models."""
    endpoint_id = uuid.uuid4()
    endpoint = WebhookEndpoint(
        id=endpoint_id, account_id=account.id, url="https://hooks.example.com/iotlock", description="Home server",
        kinds=["opened"], enabled=True,
        secret_enc=crypto.encrypt("whsec_" + "A" * 44, table="webhook_endpoints", column="secret_enc",
                                  row_id=endpoint_id),
    )
    db.session.add(endpoint)
    db.session.flush()
    delivery = WebhookDelivery(
        account_id=account.id, endpoint_id=endpoint.id, message_id=f"msg_{uuid.uuid4().hex}",
        event_type="alert.opened", payload="{}", state=DeliveryState.GIVEN_UP, attempts=1,
    )
    db.session.add(delivery)
    db.session.flush()
    return {"webhook": endpoint, "webhook_delivery": delivery}


def _alert(account, owner, member, mailbox) -> dict:
    """An "opened" alert in the bell of both members, straight in the models."""
    alert = Alert(id=uuid.uuid4(), account_id=account.id, kind="opened", mailbox_id=mailbox.id,
                  summary=f"{mailbox.name}: Opened with PIN “Postman” in {account.name}", details={})
    db.session.add(alert)
    rows = [Notification(id=uuid.uuid4(), account_id=account.id, alert_id=alert.id, user_id=user.id,
                         channel="portal", state="sent", attempts=0) for user in (owner, member)]
    db.session.add_all(rows)
    db.session.flush()
    return {"alert": alert, "notification": rows[0]}


def build_world() -> World:
    return World(a=_household("a", "Household A", True), b=_household("b", "Household B", True))


@pytest.fixture
def world(app, request):
    """Households A and B, each with an owner, a second member and an open invite; A (and B,
    so B's own pages render) with a gateway, a mailbox, a PIN, a command and an event.

    In a rolled-back module (tests/plugins/rollback.py) it is built once per module and
    backend; each test gets its own instances of the same rows, and its changes to them are
    rolled back after it."""
    return rollback.shared(request, "world") or build_world()
