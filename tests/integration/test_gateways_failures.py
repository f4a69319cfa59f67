"""When set-up or removal cannot finish: the member sees "failed" with the reason, the log
says so, and Retry picks up where it stopped. Also a device that refuses a set-up step."""
import pytest
import requests
import sqlalchemy as sa

from portal.extensions import db
from portal.jobs.context import set_streamiot
from portal.models import ActivityEvent, Gateway
from portal.services import dashboard, gateways, mailboxes
from portal.services.errors import Conflict
from portal.streamiot.client import StreamIoT
from portal.streamiot.deployment import client_from_config


@pytest.fixture
def app_overrides():
    return {"JOB_MAX_ATTEMPTS": 2}


class _AnswersWithErrors(requests.adapters.BaseAdapter):
    """A StreamIoT that answers every request with its own error (500 with a JSON body):
    the job's own retries run out. (Out of reach is another matter: the platform's health
    holds the jobs without using up their attempts, tests/integration/test_platform_health.py.)"""

    def send(self, request, *args, **kwargs):
        response = requests.Response()
        response.status_code = 500
        response._content = b'{"error":"internal server error"}'
        response.headers["Content-Type"] = "text/plain; charset=utf-8"
        response.request, response.url = request, request.url
        return response

    def close(self):
        pass


@pytest.fixture
def streamiot_down(app):
    """StreamIoT fails every request with an error until `.restore()`."""

    class Switch:
        def __init__(self):
            session = requests.Session()
            session.mount("http://", _AnswersWithErrors())
            set_streamiot(app, StreamIoT("http://streamiot.invalid", "http://streamiot.invalid/reader",
                                         session=session))

        def restore(self):
            set_streamiot(app, client_from_config(app.config))

    switch = Switch()
    yield switch
    switch.restore()


def _delivery_failures(account):
    return db.session.scalars(
        sa.select(ActivityEvent.summary).where(ActivityEvent.account_id == account.id,
                                               ActivityEvent.kind == "delivery.failed")
    ).all()


def test_failing_streamiot_fails_the_set_up_with_the_reason_and_retry_finishes_it(kit, streamiot_down):
    gateway = kit.add_gateway("Hallway")
    gateway = kit.reload(gateway)
    shown = dashboard.gateway_shown(gateway)
    assert (gateway.status, shown.key, shown.label) == ("failed", "failed", "Set-up failed")
    assert "gave up after 2 attempts" in gateway.last_error
    assert [(c.action, c.state) for c in kit.commands(gateway)] == [("CONNECT", "failed"), ("REGISTER", "failed")]
    assert any(s.startswith("Setting up gateway “Hallway” failed") for s in _delivery_failures(kit.account))
    assert [s.state for s in dashboard.gateway_steps(gateway)][:2] == ["failed", "todo"]

    streamiot_down.restore()
    gateways.retry_gateway(kit.account.id, gateway.id, kit.user)
    assert kit.reload(gateway).status == "provisioning"
    kit.drain()
    gateway = kit.reload(gateway)
    assert gateway.status == "active" and gateway.last_error is None
    assert [(c.action, c.state) for c in kit.commands(gateway)] == [("CONNECT", "sent"), ("REGISTER", "sent")]


def test_a_box_added_to_a_failed_gateway_fails_too_and_goes_again_with_the_gateway(kit, streamiot_down):
    gateway = kit.add_gateway()
    mailbox = kit.add_mailbox(gateway)
    mailbox = kit.reload(mailbox)
    assert mailbox.status == "failed"
    assert "gateway is not set up" in mailbox.last_error
    with pytest.raises(Conflict):
        mailboxes.retry_mailbox(kit.account.id, mailbox.id, kit.user)
    streamiot_down.restore()
    gateways.retry_gateway(kit.account.id, gateway.id, kit.user)
    kit.drain()
    mailbox = kit.reload(mailbox)
    assert mailbox.status == "active"
    assert [(c.action, c.state) for c in kit.commands(gateway, mailbox=mailbox)] == [("ADD", "sent"),
                                                                                    ("Mailbox", "sent")]


def test_a_gateway_that_refuses_register_shows_failed_with_its_reason(kit):
    gateway = kit.add_gateway()
    register = kit.command(gateway, "REGISTER")
    kit.device(gateway).answer(register, done=False, reason="already registered elsewhere")
    kit.poll()
    gateway = kit.reload(gateway)
    assert gateway.status == "failed"
    assert gateway.last_error == "already registered elsewhere"
    assert kit.reload(register).state == "failed"
    assert "Registering gateway “Hallway” was refused by the box: already registered elsewhere" in \
        _delivery_failures(kit.account)


def test_a_stuck_removal_says_so_and_retry_finishes_it(kit, streamiot_down):
    streamiot_down.restore()
    gateway = kit.add_gateway()
    gateway_id = gateway.id
    gateways.remove_gateway(kit.account.id, gateway.id, kit.user)
    streamiot_down.__init__()
    kit.drain()
    gateway = kit.reload(gateway)
    shown = dashboard.gateway_shown(gateway)
    assert (gateway.status, shown.label) == ("removing", "Removal stuck")
    assert gateway.last_error
    streamiot_down.restore()
    gateways.retry_gateway(kit.account.id, gateway.id, kit.user)
    kit.drain()
    db.session.expire_all()
    assert db.session.get(Gateway, gateway_id) is None


def test_retry_is_refused_when_nothing_failed(kit):
    gateway = kit.add_gateway()
    with pytest.raises(Conflict):
        gateways.retry_gateway(kit.account.id, gateway.id, kit.user)
