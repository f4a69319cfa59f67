"""Unlock now: UNLOCK exactly as the protocol says, a time to live so it never opens the
box late, and the result shown as opened, refused or expired."""
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import ActivityEvent, utcnow
from portal.services import commands, deliveries, mailboxes
from portal.services.errors import Conflict
from portal.streamiot import messages
from tests.plugins.accounts import csrf_from


def _unlocks(kit, mailbox):
    found = []
    for message in kit.published_by_portal(mailbox.channel_id):
        base, n = messages.split_name(message["name"])
        if n == "UNLOCK":
            found.append(messages.record_from_message(message, base))
    return found


def test_unlock_goes_out_with_a_time_to_live_and_opens(kit, app):
    gateway, mailbox = kit.ready_mailbox()
    before = utcnow()
    command = commands.unlock(kit.account.id, mailbox.id, kit.user)
    ttl = timedelta(seconds=app.config["UNLOCK_TTL_SECONDS"])
    assert before + ttl <= command.expires_at <= utcnow() + ttl
    assert deliveries.unlock_shown(command).label == "Waiting to be sent"
    kit.drain()
    # The deadline travels with it, in whole seconds since the epoch: a late box stays shut.
    deadline = int(command.expires_at.timestamp())
    assert _unlocks(kit, mailbox) == [{"bn": f"{gateway.thing_id}_", "n": "UNLOCK", "u": "s", "v": deadline}]
    kit.device(gateway).answer(kit.reload(command))
    kit.poll()
    command = kit.reload(command)
    assert (command.state, deliveries.unlock_shown(command).label) == ("confirmed", "Opened")
    summary = db.session.scalar(sa.select(ActivityEvent.summary).where(ActivityEvent.kind == "unlock.requested"))
    assert summary == "Asked “Front box” to open now"


def test_a_refused_unlock_says_refused_with_the_reason(kit):
    gateway, mailbox = kit.ready_mailbox()
    command = commands.unlock(kit.account.id, mailbox.id, kit.user)
    kit.drain()
    kit.device(gateway).answer(kit.reload(command), done=False, reason="door jammed")
    kit.poll()
    shown = deliveries.unlock_shown(kit.reload(command))
    assert (shown.key, shown.label, shown.reason) == ("refused", "Refused", "door jammed")


def test_an_unlock_that_could_not_be_sent_in_time_expires_and_is_never_sent(kit):
    gateway, mailbox = kit.ready_mailbox()
    command = commands.unlock(kit.account.id, mailbox.id, kit.user)
    command.expires_at = utcnow() - timedelta(seconds=1)  # the queue was stuck for a minute
    db.session.commit()
    kit.drain()
    command = kit.reload(command)
    assert command.state == "expired"
    assert "never sent" in command.reason
    assert _unlocks(kit, mailbox) == []
    assert deliveries.unlock_shown(command).label == "Expired"


def test_an_unanswered_unlock_expires_after_its_time_to_live(kit):
    gateway, mailbox = kit.ready_mailbox()
    command = commands.unlock(kit.account.id, mailbox.id, kit.user)
    kit.drain()
    command = kit.reload(command)
    assert deliveries.expire_overdue_unlocks(now=command.expires_at + timedelta(seconds=1)) == 1
    command = kit.reload(command)
    assert command.state == "expired" and "did not answer" in command.reason
    # The box got it after all, past its deadline: it stayed shut and says so.
    kit.device(gateway).answer(command, done=False, reason="expired")
    kit.poll()
    command = kit.reload(command)
    shown = deliveries.unlock_shown(command)
    assert (command.state, shown.key, shown.label) == ("expired", "expired", "Expired")
    assert "stayed shut" in shown.reason
    assert kit.reload(mailbox).is_open is not True


def test_a_gateway_that_reads_the_unlock_after_its_deadline_keeps_the_box_shut(kit, member_client, monkeypatch):
    from portal.jobs import virtual_gateways as manager

    monkeypatch.setitem(kit.app.config, "VIRTUAL_GATEWAYS", True)
    gateway = kit.add_gateway()
    mailbox = kit.add_mailbox(gateway)
    for _ in range(4):  # the virtual gateway answers the set-up
        kit.drain()
        manager.tick(kit.app)
        kit.poll()
    assert kit.reload(mailbox).status == "active"
    command = commands.unlock(kit.account.id, mailbox.id, kit.user)
    kit.drain()
    command = kit.reload(command)
    assert command.state == "sent"
    deadline = int(command.expires_at.timestamp())
    # StreamIoT took it in time, but the gateway only reads it after the deadline.
    monkeypatch.setattr(manager.virtual_gateway_for(kit.app, gateway), "_clock", lambda: deadline + 5.0)
    manager.tick(kit.app)
    kit.poll()

    command = kit.reload(command)
    shown = deliveries.unlock_shown(command)
    assert (command.state, shown.label) == ("expired", "Expired")
    assert "stayed shut" in command.reason
    names = [msg["name"] for msg in kit.read(mailbox.channel_id, publisher=gateway.thing_id)]
    assert f"{gateway.thing_id}_UNLOCK" in names and f"{gateway.thing_id}_OPENED" not in names
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ActivityEvent)
                             .where(ActivityEvent.kind == "box.opened_remote")) == 0
    assert mailboxes.box_snapshot(kit.reload(gateway), kit.reload(mailbox))["open"] is False
    assert kit.reload(mailbox).is_open is not True
    page = member_client.get(f"/mailboxes/{mailbox.id}").get_data(as_text=True)
    assert "Expired" in page and "the box stayed shut" in page


def test_an_answer_sent_in_time_but_read_after_the_portal_gave_up_says_opened(kit):
    gateway, mailbox = kit.ready_mailbox()
    command = commands.unlock(kit.account.id, mailbox.id, kit.user)
    kit.drain()
    command = kit.reload(command)
    deliveries.expire_overdue_unlocks(now=command.expires_at + timedelta(seconds=1))
    kit.device(gateway).answer(kit.reload(command))  # stamped before the deadline
    kit.poll()
    command = kit.reload(command)
    assert (command.state, deliveries.unlock_shown(command).label, command.reason) == ("confirmed", "Opened", None)


def test_a_box_that_opens_after_the_deadline_anyway_is_shown_as_opened_late(kit, time_machine):
    gateway, mailbox = kit.ready_mailbox()
    command = commands.unlock(kit.account.id, mailbox.id, kit.user)
    kit.drain()
    command = kit.reload(command)
    deadline = int(command.expires_at.timestamp())
    deliveries.expire_overdue_unlocks(now=command.expires_at + timedelta(seconds=1))
    # A box that ignores the deadline (a correct one never does): its Done is received late.
    time_machine.move_to(datetime.fromtimestamp(deadline + 30, UTC), tick=False)
    kit.device(gateway).publish(messages.reply(kit.sent_record(command), True), mailbox.channel_id)
    kit.poll()
    command = kit.reload(command)
    assert command.state == "confirmed" and "late" in command.reason


def test_an_opened_remote_event_settles_an_unlock_whose_answer_was_lost(kit):
    gateway, mailbox = kit.ready_mailbox()
    command = commands.unlock(kit.account.id, mailbox.id, kit.user)
    kit.drain()
    kit.device(gateway).publish(messages.opened_remote(gateway.thing_id), mailbox.channel_id)
    kit.poll()
    assert kit.reload(command).state == "confirmed"
    assert kit.reload(mailbox).is_open is True


def test_an_unlock_is_never_retried_but_a_queued_one_can_be_withdrawn(kit):
    gateway, mailbox = kit.ready_mailbox()
    command = commands.unlock(kit.account.id, mailbox.id, kit.user)
    commands.withdraw_command(kit.account.id, command.id, kit.user)
    assert kit.reload(command).state == "withdrawn"
    kit.drain()
    assert _unlocks(kit, mailbox) == []
    second = commands.unlock(kit.account.id, mailbox.id, kit.user)
    kit.drain()
    kit.device(gateway).answer(kit.reload(second), done=False, reason="door jammed")
    kit.poll()
    with pytest.raises(Conflict) as refused:
        commands.retry_command(kit.account.id, second.id, kit.user)
    assert "never sent again" in refused.value.message


def test_a_box_being_removed_cannot_be_unlocked(kit):
    gateway, mailbox = kit.ready_mailbox()
    mailboxes.remove_mailbox(kit.account.id, mailbox.id, kit.user)
    with pytest.raises(Conflict):
        commands.unlock(kit.account.id, mailbox.id, kit.user)


def test_without_javascript_a_page_asks_for_confirmation(kit, member_client):
    gateway, mailbox = kit.ready_mailbox()
    page = member_client.get(f"/mailboxes/{mailbox.id}/unlock")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "Open “Front box” now?" in body and "<form method=\"post\">" in body
    done = member_client.post(f"/mailboxes/{mailbox.id}/unlock", data={"csrf_token": csrf_from(body)})
    assert done.status_code == 303 and done.headers["Location"].endswith(f"/mailboxes/{mailbox.id}#unlock")
    assert [c.action for c in kit.commands(mailbox=mailbox, state="queued")] == ["UNLOCK"]


def test_the_button_asks_with_hx_confirm_and_htmx_gets_the_live_part_back(kit, member_client):
    gateway, mailbox = kit.ready_mailbox()
    page = member_client.get(f"/mailboxes/{mailbox.id}").get_data(as_text=True)
    assert f'hx-post="/mailboxes/{mailbox.id}/unlock"' in page and "hx-confirm=\"Open “Front box” now?" in page
    response = member_client.post(f"/mailboxes/{mailbox.id}/unlock", data={"csrf_token": csrf_from(page)},
                                  headers={"HX-Request": "true"}, follow_redirects=True)
    body = response.get_data(as_text=True)
    assert body.lstrip().startswith('<div id="mailbox-live"')
    assert "Waiting to be sent" in body and 'hx-trigger="every 1s"' in body
