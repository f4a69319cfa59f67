"""Pure rules of the support console: the QR code markup, which deliveries may be requeued,
the words the household reads, and the redaction of secrets from error texts."""
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from portal.models import Command, Gateway, Job, Mailbox, Pin
from portal.services.support import TraceRow, _newest_per_subject, _Redactor, _requeue_refusal, _requeued_what
from portal.support.qr import svg

T0 = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)


def test_qr_code_is_inline_svg_without_style_or_script():
    markup = str(svg("otpauth://totp/IoTLock%20Support:sam@x?secret=JBSWY3DPEHPK3PXP", 'QR "code"'))
    assert markup.startswith('<svg role="img" aria-label="QR &#34;code&#34;" ')
    assert "viewBox" in markup and "<path" in markup
    assert "style" not in markup and "<script" not in markup and "<?xml" not in markup
    assert 'width="' not in markup.split(">", 1)[0]


def _command(action="AUTH", state="failed", pin=None, mailbox=None, gateway_id=None, created=T0, job_id=1):
    return Command(
        id=uuid.uuid4(), action=action, state=state, pin_id=pin.id if pin else None,
        mailbox_id=mailbox.id if mailbox else None, gateway_id=gateway_id or uuid.uuid4(),
        channel_key="mailbox", created_at=created, job_id=job_id,
    )


@pytest.fixture
def things():
    gateway = Gateway(id=uuid.uuid4(), name="Porch hub", status="active")
    mailbox = Mailbox(id=uuid.uuid4(), gateway_id=gateway.id, name="Front door", status="active")
    pin = Pin(id=uuid.uuid4(), mailbox_id=mailbox.id, label="Grandma", status="adding")
    return gateway, mailbox, pin


def _refusal(command, job, commands, pin=None, gateway=None, mailbox=None):
    return _requeue_refusal(
        command, job, _newest_per_subject(commands), {pin.id: pin} if pin else {},
        [gateway] if gateway else [], [mailbox] if mailbox else [],
    )


def test_a_pin_delivery_whose_retries_ran_out_can_be_requeued(things):
    gateway, mailbox, pin = things
    command = _command(pin=pin, mailbox=mailbox, gateway_id=gateway.id)
    assert _refusal(command, Job(state="failed"), [command], pin, gateway, mailbox) is None


def test_a_delivery_the_box_refused_is_not_requeued(things):
    gateway, mailbox, pin = things
    command = _command(pin=pin, mailbox=mailbox, gateway_id=gateway.id)
    assert "box itself refused" in _refusal(command, Job(state="done"), [command], pin, gateway, mailbox)


def test_an_old_add_is_never_resent_after_the_pin_was_removed(things):
    gateway, mailbox, pin = things
    add = _command(pin=pin, mailbox=mailbox, gateway_id=gateway.id)
    remove = _command("UNAUTH", "queued", pin=pin, mailbox=mailbox, gateway_id=gateway.id, created=T0 + timedelta(minutes=5))
    pin.status = "removing"
    assert _refusal(add, Job(state="failed"), [remove, add], pin, gateway, mailbox) == "A newer change replaced this one."
    pin.status = "removed"
    assert _refusal(add, Job(state="failed"), [add], pin, gateway, mailbox) == "This PIN no longer exists."


def test_unlock_and_unfailed_commands_are_never_requeued(things):
    gateway, mailbox, _pin = things
    unlock = _command("UNLOCK", mailbox=mailbox, gateway_id=gateway.id)
    assert "never resent" in _refusal(unlock, Job(state="failed"), [unlock], None, gateway, mailbox)
    sent = _command("ADD", "sent", mailbox=mailbox, gateway_id=gateway.id)
    assert _refusal(sent, Job(state="failed"), [sent], None, gateway, mailbox) == "Only a failed delivery can be requeued."


def test_adding_a_mailbox_that_is_being_removed_is_not_requeued(things):
    gateway, mailbox, _pin = things
    add = _command("ADD", mailbox=mailbox, gateway_id=gateway.id)
    mailbox.status = "removing"
    assert _refusal(add, Job(state="failed"), [add], None, gateway, mailbox) == "This device is being removed."


def test_the_household_reads_what_was_requeued_by_label(things):
    _gateway, mailbox, pin = things
    assert _requeued_what(_command("AUTH", pin=pin), [pin], []) == "delivery of PIN “Grandma”"
    assert _requeued_what(_command("UNAUTH", pin=pin), [pin], []) == "removal of PIN “Grandma”"
    assert _requeued_what(_command("ADD", mailbox=mailbox), [], [mailbox]) == "“add mailbox to gateway” for “Front door”"


def test_round_trip_is_the_time_between_sent_and_answered():
    command = Command(state="confirmed", sent_at=T0, answered_at=T0 + timedelta(seconds=1, milliseconds=400))
    row = TraceRow(command=command, description="", job=None, reason=None, job_error=None, can_requeue=False)
    assert row.round_trip == timedelta(seconds=1.4)
    assert not row.in_flight
    waiting = TraceRow(command=Command(state="sent", sent_at=T0), description="", job=None, reason=None,
                       job_error=None, can_requeue=False)
    assert waiting.round_trip is None and waiting.in_flight


def test_redactor_blanks_secrets_and_tokens_but_keeps_the_rest():
    redact = _Redactor({"9d1f7c3a-key", "58203917", "abc"})
    text = 'body {"key": "9d1f7c3a-key"} pin 58203917 token eyJhbGciOi.eyJzdWIi.c2ln ok abc'
    assert redact(text) == 'body {"key": "[hidden]"} pin [hidden] token [hidden] ok abc'
    assert redact(None) is None


def test_the_pins_current_command_decides_which_change_is_newest(things):
    gateway, mailbox, pin = things
    old = _command(pin=pin, mailbox=mailbox, gateway_id=gateway.id)
    pin.command_id = uuid.uuid4()  # a later change of this PIN, outside the trace shown
    assert _refusal(old, Job(state="failed"), [old], pin, gateway, mailbox) == "A newer change replaced this one."
    pin.command_id = old.id
    assert _refusal(old, Job(state="failed"), [old], pin, gateway, mailbox) is None


def test_a_pin_is_not_requeued_to_a_box_whose_set_up_failed(things):
    gateway, mailbox, pin = things
    command = _command(pin=pin, mailbox=mailbox, gateway_id=gateway.id)
    mailbox.status = "failed"
    assert "set-up failed" in _refusal(command, Job(state="failed"), [command], pin, gateway, mailbox)
