"""Unlock now: UNLOCK exactly as the protocol says, a time to live so it never opens the
box late, and the result shown as opened, refused or expired."""
from datetime import timedelta

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import ActivityEvent, utcnow
from portal.services import commands, mailboxes
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
    assert commands.unlock_shown(command).label == "Waiting to be sent"
    kit.drain()
    assert _unlocks(kit, mailbox) == [{"bn": f"{gateway.thing_id}_", "n": "UNLOCK", "u": "Requested", "vb": True}]
    kit.device(gateway).answer(kit.reload(command))
    kit.poll()
    command = kit.reload(command)
    assert (command.state, commands.unlock_shown(command).label) == ("confirmed", "Opened")
    summary = db.session.scalar(sa.select(ActivityEvent.summary).where(ActivityEvent.kind == "unlock.requested"))
    assert summary == "Asked “Front box” to open now"


def test_a_refused_unlock_says_refused_with_the_reason(kit):
    gateway, mailbox = kit.ready_mailbox()
    command = commands.unlock(kit.account.id, mailbox.id, kit.user)
    kit.drain()
    kit.device(gateway).answer(kit.reload(command), done=False, reason="door jammed")
    kit.poll()
    shown = commands.unlock_shown(kit.reload(command))
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
    assert commands.unlock_shown(command).label == "Expired"


def test_an_unanswered_unlock_expires_after_its_time_to_live(kit):
    gateway, mailbox = kit.ready_mailbox()
    command = commands.unlock(kit.account.id, mailbox.id, kit.user)
    kit.drain()
    command = kit.reload(command)
    command.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    kit.poll()
    command = kit.reload(command)
    assert command.state == "expired" and "did not answer" in command.reason
    # A box that answers after all did open: the page says so, rather than hide it.
    kit.device(gateway).answer(command)
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
