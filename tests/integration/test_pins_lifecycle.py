"""PINs: stored encrypted, unique per box, AUTH/UNAUTH exactly as the protocol says and
only after the box is registered, every delivery state, retry and withdraw, removal that
counts until the box confirms it, and showing the digits behind a fresh password check."""
import hashlib
from datetime import timedelta

import pytest
import sqlalchemy as sa

from portal import crypto
from portal.extensions import db
from portal.models import ActivityEvent, Command, Gateway, Job, LoginSession, Mailbox, Pin, utcnow
from portal.services import commands, dashboard, pins
from portal.services.commands import retry_command, withdraw_command
from portal.services.deliveries import pin_shown
from portal.services.errors import Conflict, ValidationFailed
from tests.plugins.accounts import PASSWORD, csrf_from
from tests.plugins.text import visible_text, without_ids


def _records(kit, channel_id, name):
    from portal.streamiot import messages

    found = []
    for message in kit.published_by_portal(channel_id):
        base, n = messages.split_name(message["name"])
        if n == name:
            found.append((messages.record_from_message(message, base), message["time"]))
    return found


def _shown(kit, pin):
    pin = kit.reload(pin)
    command = db.session.get(Command, pin.command_id) if pin.command_id else None
    return pin_shown(pin, command)


def test_digits_are_stored_encrypted_with_a_keyed_digest(kit):
    gateway, mailbox = kit.ready_mailbox()
    pin = kit.add_pin(mailbox, "Grandma", "4821", run=False)
    assert b"4821" not in pin.digits_enc
    assert crypto.decrypt(pin.digits_enc, table="pins", column="digits_enc", row_id=pin.id) == "4821"
    assert pin.digits_digest == crypto.keyed_digest("pin", f"{mailbox.id}:4821")
    assert pin.digits_digest != hashlib.sha256(f"{mailbox.id}:4821".encode()).hexdigest()  # keyed


def test_auth_goes_out_on_the_box_channel_and_the_pin_counts_once_the_box_confirms(kit):
    gateway, mailbox = kit.ready_mailbox()
    pin = kit.add_pin(mailbox, "Grandma", "4821", run=False)
    assert (_shown(kit, pin).label, _shown(kit, pin).live) == ("Queued", True)
    kit.drain()
    assert [r for r, _t in _records(kit, mailbox.channel_id, "AUTH")] == [
        {"bn": f"{gateway.thing_id}_", "n": "AUTH", "u": "PIN", "v": 4821}]
    assert _shown(kit, pin).label == "Sent, waiting for the box"
    kit.confirm_all(gateway)
    assert kit.reload(pin).status == "active"
    shown = _shown(kit, pin)
    assert (shown.key, shown.label, shown.live) == ("confirmed", "Confirmed on the box", False)


def test_a_pin_added_before_the_box_is_registered_goes_out_after_its_registration(kit):
    gateway = kit.add_gateway()
    mailbox = kit.add_mailbox(gateway, run=False)
    kit.add_pin(mailbox, run=False)
    kit.drain()
    mailbox = kit.reload(mailbox)
    [(_, registered_at)] = [(r, t) for r, t in _records(kit, gateway.channel_id, "Mailbox")]
    [(_, auth_at)] = _records(kit, mailbox.channel_id, "AUTH")
    assert registered_at <= auth_at
    assert [c.action for c in kit.commands(gateway) if c.state == "sent"] == [
        "CONNECT", "REGISTER", "ADD", "Mailbox", "AUTH"]


def test_a_pin_for_a_box_whose_registration_failed_waits_and_goes_with_the_retry(kit):
    from portal.services import mailboxes

    gateway = kit.add_gateway()
    mailbox = kit.add_mailbox(gateway)
    kit.device(gateway).answer(kit.command(gateway, "ADD"), done=False, reason="mailbox slots full")
    kit.poll()
    with pytest.raises(Conflict):  # a failed box takes no new PINs...
        kit.add_pin(mailbox)
    mailboxes.retry_mailbox(kit.account.id, mailbox.id, kit.user)
    pin = kit.add_pin(mailbox)  # ...a box being set up again does
    kit.confirm_all(gateway)
    assert kit.reload(pin).status == "active"


def test_the_same_digits_twice_on_one_box_are_refused_but_fine_on_another(kit):
    gateway, mailbox = kit.ready_mailbox()
    other = kit.add_mailbox(gateway, "Back box")
    kit.add_pin(mailbox, "Grandma", "4821", run=False)
    with pytest.raises(ValidationFailed) as refused:
        pins.add_pin(kit.account.id, mailbox.id, kit.user, label="Courier", digits=" 4821")
    assert refused.value.field == "digits" and "already has a PIN with these digits" in refused.value.message
    db.session.rollback()
    assert kit.add_pin(other, "Courier", "4821", run=False).status == "adding"


def test_a_refused_auth_shows_failed_with_the_box_reason_and_retry_sends_it_again(kit):
    gateway, mailbox = kit.ready_mailbox()
    pin = kit.add_pin(mailbox)
    kit.device(gateway).answer(kit.command(gateway, "AUTH"), done=False, reason="slots full")
    kit.poll()
    shown = _shown(kit, pin)
    assert (shown.key, shown.label, shown.reason) == ("failed", "Failed", "slots full")
    failures = db.session.scalars(sa.select(ActivityEvent.summary).where(ActivityEvent.kind == "delivery.failed")).all()
    assert failures == ["Adding PIN “Grandma” was refused by the box: slots full"]

    retry_command(kit.account.id, kit.reload(pin).command_id, kit.user)
    assert _shown(kit, pin).label == "Queued"
    kit.drain()
    assert len(_records(kit, mailbox.channel_id, "AUTH")) == 2
    kit.confirm_all(gateway)
    assert kit.reload(pin).status == "active"


def test_a_queued_pin_can_be_withdrawn_and_is_never_sent(kit, app):
    gateway, mailbox = kit.ready_mailbox()
    pin = kit.add_pin(mailbox, run=False)
    command_id = kit.reload(pin).command_id
    withdraw_command(kit.account.id, command_id, kit.user)
    pin = kit.reload(pin)
    assert pin.status == "removed" and pin.digits_enc == b""
    job = db.session.scalars(sa.select(Job).where(Job.kind == "device.send_command").order_by(Job.id.desc())).first()
    assert job.state == "cancelled"
    kit.drain()
    assert _records(kit, mailbox.channel_id, "AUTH") == []
    # Its digits are free again.
    assert kit.add_pin(mailbox, "Grandma again", "4821", run=False).status == "adding"


def test_withdrawing_an_add_already_on_its_way_removes_the_pin_right_after_it_lands(kit):
    gateway, mailbox = kit.ready_mailbox()
    pin = kit.add_pin(mailbox)  # AUTH published: it may reach the box whatever we do now
    outcome = withdraw_command(kit.account.id, kit.reload(pin).command_id, kit.user)
    assert "on its way" in outcome.message and "removed" in outcome.message
    assert kit.reload(pin).status == "removing"
    kit.drain()
    kit.confirm_all(gateway)  # the box answers the AUTH, then the UNAUTH queued behind it
    assert [c.state for c in kit.commands(gateway, action="AUTH")] == ["confirmed"]
    assert [c.state for c in kit.commands(gateway, action="UNAUTH")] == ["confirmed"]
    assert kit.reload(pin).status == "removed"


def test_an_unlock_already_on_its_way_cannot_be_withdrawn(kit):
    gateway, mailbox = kit.ready_mailbox()
    command = commands.unlock(kit.account.id, mailbox.id, kit.user)
    kit.drain()
    with pytest.raises(Conflict) as refused:
        withdraw_command(kit.account.id, command.id, kit.user)
    assert "on its way" in refused.value.message
    assert kit.reload(command).state == "sent"


def test_removal_sends_unauth_and_the_pin_counts_until_the_box_confirms(kit):
    gateway, mailbox = kit.ready_mailbox()
    pin = kit.add_pin(mailbox)
    kit.confirm_all(gateway)
    pins.remove_pin(kit.account.id, pin.id, kit.user)
    assert kit.reload(pin).status == "removing"
    assert (_shown(kit, pin).label, _shown(kit, pin).live) == ("Removal queued", True)
    kit.drain()
    assert [r for r, _t in _records(kit, mailbox.channel_id, "UNAUTH")] == [
        {"bn": f"{gateway.thing_id}_", "n": "UNAUTH", "u": "PIN", "v": 4821}]
    page = dashboard.mailbox_page(kit.account.id, mailbox.id)
    assert [row.pin.label for row in page.pins] == ["Grandma"]  # still active on the box
    assert dashboard.dashboard(kit.account).gateways[0].mailboxes[0].pins == 1

    kit.confirm_all(gateway)
    pin = kit.reload(pin)
    assert pin.status == "removed" and pin.digits_enc == b"" and pin.removed_at is not None
    assert dashboard.mailbox_page(kit.account.id, mailbox.id).pins == []


def test_a_box_page_shows_its_pins_changes_and_events_as_rows_that_cannot_be_changed(kit):
    """The box page reads what it only shows as rows (rows.read_as, rows.Record), not as
    objects of the session: a template or the API writing to one by mistake raises instead
    of saving it. The box and gateway rows say what the models say (kind_label, channel_name)."""
    gateway, mailbox = kit.ready_mailbox()
    kit.add_pin(mailbox)
    page = dashboard.mailbox_page(kit.account.id, mailbox.id)
    [row] = page.pins
    assert (row.pin.label, row.command.action, row.command.pin_id) == ("Grandma", "AUTH", row.pin.id)
    assert any(event.kind == "pin.added" for event in page.events)
    assert (page.mailbox.id, page.mailbox.name, page.gateway.id, page.gateway.name) \
        == (mailbox.id, mailbox.name, gateway.id, gateway.name)
    assert (page.mailbox.kind_label, page.mailbox.channel_name, page.gateway.thing_name, page.gateway.channel_name) \
        == (mailbox.kind_label, mailbox.channel_name, gateway.thing_name, gateway.channel_name)
    for shown, model in ((row.pin, Pin), (row.command, Command), (page.events[0], ActivityEvent),
                         (page.mailbox, Mailbox), (page.gateway, Gateway)):
        assert not isinstance(shown, model)
        with pytest.raises(AttributeError):
            shown.label = "Changed"
        with pytest.raises(AttributeError):
            shown.name = "Changed"
    db.session.commit()
    assert db.session.scalar(sa.select(Pin.label).where(Pin.id == row.pin.id)) == "Grandma"
    assert db.session.scalar(sa.select(Mailbox.name).where(Mailbox.id == mailbox.id)) == mailbox.name


def test_a_refused_removal_can_be_withdrawn_and_the_pin_stays_active(kit):
    gateway, mailbox = kit.ready_mailbox()
    pin = kit.add_pin(mailbox)
    kit.confirm_all(gateway)
    pins.remove_pin(kit.account.id, pin.id, kit.user)
    kit.drain()
    kit.device(gateway).answer(kit.command(gateway, "UNAUTH"), done=False, reason="busy")
    kit.poll()
    assert _shown(kit, pin).label == "Removal failed"
    withdraw_command(kit.account.id, kit.reload(pin).command_id, kit.user)
    assert kit.reload(pin).status == "active"


def test_removing_a_pin_that_never_left_the_portal_just_withdraws_it(kit):
    gateway, mailbox = kit.ready_mailbox()
    pin = kit.add_pin(mailbox, run=False)
    pins.remove_pin(kit.account.id, pin.id, kit.user)
    assert kit.reload(pin).status == "removed"
    kit.drain()
    assert _records(kit, mailbox.channel_id, "AUTH") == [] and _records(kit, mailbox.channel_id, "UNAUTH") == []


def test_summaries_in_the_log_never_hold_the_digits(kit):
    gateway, mailbox = kit.ready_mailbox()
    pin = kit.add_pin(mailbox, "Grandma", "4821")
    kit.confirm_all(gateway)
    pins.remove_pin(kit.account.id, pin.id, kit.user)
    kit.drain()
    kit.confirm_all(gateway)
    events = db.session.scalars(sa.select(ActivityEvent)).all()
    assert {"pin.added", "pin.removed"} <= {e.kind for e in events}
    assert all("4821" not in e.summary and "4821" not in without_ids(str(e.details)) for e in events)


# --- showing the digits -------------------------------------------------------------------

def _login_session(user, minutes_ago):
    login = db.session.scalars(sa.select(LoginSession).where(LoginSession.user_id == user.id)).first()
    login.reauthenticated_at = utcnow() - timedelta(minutes=minutes_ago)
    db.session.commit()
    return login


def test_showing_digits_needs_a_fresh_password_and_is_recorded(kit, member_client):
    gateway, mailbox = kit.ready_mailbox()
    pin = kit.add_pin(mailbox, "Grandma", "4821")
    _login_session(kit.user, minutes_ago=6)
    page = member_client.get(f"/mailboxes/{mailbox.id}").get_data(as_text=True)
    assert "4821" not in visible_text(page)  # masked in the list
    token = csrf_from(page)

    asked = member_client.post(f"/mailboxes/pins/{pin.id}/show", data={"csrf_token": token})
    assert asked.status_code == 200
    assert "4821" not in visible_text(asked.get_data(as_text=True)) and "Confirm it’s you" in asked.get_data(as_text=True)
    wrong = member_client.post(f"/mailboxes/pins/{pin.id}/show", data={"csrf_token": token, "password": "nope"},
                               headers={"HX-Request": "true"})
    assert "That is not your password" in wrong.get_data(as_text=True)
    assert "4821" not in visible_text(wrong.get_data(as_text=True))

    shown = member_client.post(f"/mailboxes/pins/{pin.id}/show", data={"csrf_token": token, "password": PASSWORD},
                               headers={"HX-Request": "true"})
    body = shown.get_data(as_text=True)
    assert "4821" in body and "<html" not in body  # the row's cell only
    # Within five minutes no new question.
    again = member_client.post(f"/mailboxes/pins/{pin.id}/show", data={"csrf_token": token})
    assert "4821" in again.get_data(as_text=True)
    events = db.session.scalars(sa.select(ActivityEvent).where(ActivityEvent.kind == "pin.shown")).all()
    assert [e.summary for e in events] == ["Looked at the digits of PIN “Grandma” of “Front box”"] * 2


def test_the_add_form_says_why_a_pin_is_refused_on_the_digits_field_and_never_echoes_them(kit, member_client):
    gateway, mailbox = kit.ready_mailbox()
    page = member_client.get(f"/mailboxes/{mailbox.id}").get_data(as_text=True)
    response = member_client.post(f"/mailboxes/{mailbox.id}/pins",
                                  data={"csrf_token": csrf_from(page), "label": "Courier", "digits": "7777"})
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert 'id="digits-error"' in body and "One digit repeated" in body
    assert 'value="7777"' not in body
    assert 'value="Courier"' in body
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Pin)) == 0
