"""Shared fixtures: devices.

A linked household, helpers that add gateways and boxes through the services and run
the real job runner against the embedded StreamIoT emulator, and a fake gateway that
publishes answers and events as the gateway's own thing.
"""
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from portal import crypto
from portal.extensions import db
from portal.jobs import virtual_gateways
from portal.jobs.handlers import reports
from portal.jobs.runner import drain
from portal.models import Account, Command, Gateway, IdleRead, Mailbox, Pin, utcnow
from portal.services import dashboard, versions
from portal.services.errors import NotFound
from portal.streamiot import messages
from portal.streamiot.deployment import client_from_config
from tests.plugins.accounts import PASSWORD


class FakeGateway:
    """Plays the device: reads what the portal sent, publishes as the gateway thing."""

    def __init__(self, kit, gateway: Gateway):
        self.kit = kit
        self.thing_id = gateway.thing_id
        self.channel_id = gateway.channel_id
        self.key = crypto.decrypt(gateway.thing_key_enc, table="gateways", column="thing_key_enc", row_id=gateway.id)

    def publish(self, pack, channel_id=None):
        self.kit.streamiot.publish(channel_id or self.channel_id, self.key, pack)

    def answer(self, command: Command, done=True, reason=None):
        """Answer one command the way DEVICE_PROTOCOL.md says: same bn, n and value."""
        db.session.refresh(command)
        record = self.kit.sent_record(command)
        self.publish(messages.reply(record, done, reason), command.channel_id)

    def heartbeat(self, uptime=42):
        self.publish(messages.heartbeat(self.thing_id, uptime))


class DeviceKit:
    def __init__(self, app, user, account):
        self.app = app
        self.user = user
        self.account = account
        self.streamiot = client_from_config(app.config)

    # --- running the worker ---------------------------------------------------------

    def settle(self, rounds=6):
        """Worker passes, virtual gateway steps and reads, as the worker does them each
        second (app_overrides VIRTUAL_GATEWAYS on)."""
        for _ in range(rounds):
            self.drain()
            virtual_gateways.tick(self.app)
            self.poll()

    def drain(self):
        return drain(self.app)

    def poll(self):
        """One round of the reply readers (what the worker does every second or so), with
        every household due for the idle sweep, as if its interval had just passed."""
        db.session.execute(sa.delete(IdleRead))
        db.session.commit()
        reports.poll_active_channels(self.app)
        reports.poll_all_channels(self.app)
        db.session.expire_all()

    def record_publishes(self) -> list:
        """From now on, every pack the worker publishes: (channel id, raw JSON text)."""
        from portal.jobs.context import get_streamiot

        seen = []

        def hook(response, *args, **kwargs):
            request = response.request
            if request.method == "POST" and request.url.endswith("/messages"):
                channel = request.url.rsplit("/channels/", 1)[1].split("/", 1)[0]
                seen.append((channel, request.body.decode() if isinstance(request.body, bytes) else request.body))

        get_streamiot(self.app).session.hooks["response"].append(hook)
        return seen

    # --- making things through the services --------------------------------------------

    def add_gateway(self, name="Hallway", key_mode="generate", public_key=None, run=True, protocol="seed"):
        """A gateway through the service. The fake device below speaks the seed's protocol
        (tests of the sealed level use the firmware, tests/integration/test_sealed_protocol.py)."""
        from portal.services import gateways

        gateway, private_key = gateways.add_gateway(
            self.account.id, self.user, name=name, key_mode=key_mode, public_key=public_key, protocol=protocol
        )
        self.last_private_key = private_key
        if run:
            self.drain()
        return self.reload(gateway)

    def add_mailbox(self, gateway, name="Front box", kind="mailbox", key_mode="generate", public_key=None, run=True):
        from portal.services import mailboxes

        mailbox, _private = mailboxes.add_mailbox(
            self.account.id, gateway.id, self.user, name=name, kind=kind, key_mode=key_mode, public_key=public_key
        )
        if run:
            self.drain()
        return self.reload(mailbox)

    def add_pin(self, mailbox, label="Grandma", digits="4821", run=True, **rules):
        """One PIN on one box; `rules` as pins.add_pin takes them (kind, starts, ...)."""
        from portal.services import pins

        [pin] = pins.add_pin(self.account.id, mailbox.id, self.user, label=label, digits=digits, **rules)
        if run:
            self.drain()
        return self.reload(pin)

    def reload(self, row):
        db.session.expire_all()
        return db.session.get(type(row), row.id)

    def device(self, gateway) -> FakeGateway:
        return FakeGateway(self, self.reload(gateway))

    def confirm_all(self, gateway):
        """The device answers Done to every command sent to it so far."""
        device = self.device(gateway)
        for command in self.commands(gateway, state="sent"):
            device.answer(command)
        self.poll()

    def ready_mailbox(self, name="Front box", gateway=None):
        """A gateway (online) and a box on it that the gateway confirmed."""
        gateway = gateway or self.add_gateway()
        mailbox = self.add_mailbox(gateway, name=name)
        self.device(gateway).heartbeat()
        self.confirm_all(gateway)
        return self.reload(gateway), self.reload(mailbox)

    # --- looking at what happened ------------------------------------------------------

    def commands(self, gateway=None, *, action=None, state=None, mailbox=None):
        stmt = sa.select(Command).order_by(Command.created_at)
        if gateway is not None:
            stmt = stmt.where(Command.gateway_id == gateway.id)
        if mailbox is not None:
            stmt = stmt.where(Command.mailbox_id == mailbox.id)
        if action:
            stmt = stmt.where(Command.action == action)
        if state:
            stmt = stmt.where(Command.state == state)
        db.session.expire_all()
        return db.session.scalars(stmt).all()

    def command(self, gateway=None, action=None, mailbox=None) -> Command:
        found = self.commands(gateway, action=action, mailbox=mailbox)
        assert found, f"no {action} command"
        return found[-1]

    def portal_key(self) -> str:
        account = db.session.get(Account, self.account.id)
        return crypto.decrypt(account.portal_thing_key_enc, table="accounts", column="portal_thing_key_enc",
                              row_id=account.id)

    def read(self, channel_id, **filters) -> list[dict]:
        """Everything on a channel, oldest first, as the reader stores it."""
        page = self.streamiot.read_messages(channel_id, thing_key=self.portal_key(), limit=1000, **filters)
        return list(reversed(page["messages"]))

    def published_by_portal(self, channel_id) -> list[dict]:
        account = db.session.get(Account, self.account.id)
        return self.read(channel_id, publisher=account.portal_thing_id)

    def sent_record(self, command: Command) -> dict:
        """The SenML record the portal published for a command, rebuilt from the reader."""
        account = db.session.get(Account, self.account.id)
        for message in reversed(self.read(command.channel_id, publisher=account.portal_thing_id)):
            parts = messages.split_name(message["name"])
            if parts and parts[1] == command.action:
                record = messages.record_from_message(message, parts[0])
                if command.pin_id:
                    pin = db.session.get(Pin, command.pin_id)
                    digits = crypto.decrypt(pin.digits_enc, table="pins", column="digits_enc", row_id=pin.id) \
                        if pin.digits_enc else None
                    if digits is None or record.get("v") != int(digits):
                        continue
                    record["v"] = int(digits)
                if command.mailbox_id and command.action in ("ADD", "Mailbox", "DELETE"):
                    mailbox = db.session.get(Mailbox, command.mailbox_id)
                    if record.get("vs") != mailbox.public_key:
                        continue
                return record
        raise AssertionError(f"the portal never published {command.action} on {command.channel_id}")

    def user_api(self):
        from portal.jobs.context import account_secret

        account = db.session.get(Account, self.account.id)
        return self.streamiot.as_user(account.streamiot_email, account_secret(account, "streamiot_password_enc"))


def live_version_of(account_id, mailbox_id, pins_page: int = 1) -> str | None:
    """The version a poll of the box's live part would carry now, read as the route reads it
    (None: no such box in the household)."""
    mark = versions.mark(account_id)
    try:
        page = dashboard.mailbox_page(account_id, mailbox_id, with_snapshot=False, pins_page=pins_page)
    except NotFound:
        return None
    return dashboard.live_version(dashboard.live_part(account_id, mailbox_id, pins_page), mark, page)


@pytest.fixture
def household(app, make_household):
    """(user, account) of a household already linked to the embedded StreamIoT."""
    user, account = make_household(f"owner-{uuid.uuid4().hex[:6]}@example.com", "Elm Street")
    drain(app)
    db.session.expire_all()
    account = db.session.get(Account, account.id)
    assert account.link_state == "connected", account.link_error
    return user, account


@pytest.fixture
def kit(app, household) -> DeviceKit:
    user, account = household
    return DeviceKit(app, user, account)


@pytest.fixture
def member_client(app, household):
    """A test client logged in as the household's owner (through the real login form)."""
    from tests.plugins.accounts import Auth

    user, _account = household
    client = app.test_client()
    response = Auth(client).login(user.email, PASSWORD)
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return client


@pytest.fixture
def settled(kit, time_machine):
    """(gateway, mailbox): a box set up ten minutes ago, its gateway heard from a moment ago;
    the clock stands (at 5 s past a minute, so the clock's minute turns mid-test only when a
    test moves it)."""
    time_machine.move_to(utcnow().replace(second=5, microsecond=0) + timedelta(minutes=1), tick=False)
    gateway, mailbox = kit.ready_mailbox()
    time_machine.move_to(utcnow() + timedelta(minutes=10), tick=False)
    gateway = kit.reload(gateway)
    gateway.last_heartbeat_at = utcnow()
    db.session.commit()
    return gateway, mailbox
