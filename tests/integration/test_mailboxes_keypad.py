"""Try it without hardware: with virtual gateways on, the portal's own virtual gateway
answers the set-up, and the mailbox page's keypad opens the box with a PIN it holds."""
import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import ActivityEvent
from portal.services import dashboard, mailboxes, pins
from tests.plugins.accounts import csrf_from


@pytest.fixture
def app_overrides(tmp_path):
    return {"VIRTUAL_GATEWAYS": True}


def _run_everything(kit, rounds=4):
    """The worker's turns: jobs, the virtual gateways, the reply readers."""
    from portal.jobs import virtual_gateways as manager

    for _ in range(rounds):
        kit.drain()
        manager.tick(kit.app)
        kit.poll()


def test_the_keypad_opens_the_box_with_a_confirmed_pin_and_the_log_names_it(kit):
    gateway = kit.add_gateway()
    mailbox = kit.add_mailbox(gateway)
    pin = kit.add_pin(mailbox, "Grandma", "4821")
    _run_everything(kit)
    assert dashboard.gateway_shown(kit.reload(gateway)).label == "Online"
    assert kit.reload(pin).status == "active"
    snapshot = mailboxes.box_snapshot(kit.reload(gateway), kit.reload(mailbox))
    assert snapshot["known"] and snapshot["pins"] == 1 and snapshot["open"] is False

    assert mailboxes.press_keypad(kit.account.id, mailbox.id, "4821") == "opened"
    assert mailboxes.press_keypad(kit.account.id, mailbox.id, "1111") == "rejected"
    _run_everything(kit, rounds=1)
    summaries = db.session.scalars(sa.select(ActivityEvent.summary).where(ActivityEvent.kind.like("box.%"))
                                   .order_by(ActivityEvent.id)).all()
    assert "Opened with PIN “Grandma”" in summaries
    assert "Wrong PIN entered (1 wrong attempt)" in summaries

    pins.remove_pin(kit.account.id, pin.id, kit.user)
    _run_everything(kit)
    assert kit.reload(pin).status == "removed"
    assert mailboxes.press_keypad(kit.account.id, mailbox.id, "4821") == "rejected"


def test_the_keypad_form_types_digit_by_digit_and_enter_tries_them(kit, member_client):
    gateway = kit.add_gateway()
    mailbox = kit.add_mailbox(gateway)
    kit.add_pin(mailbox, "Grandma", "4821")
    _run_everything(kit)
    page = member_client.get(f"/mailboxes/{mailbox.id}").get_data(as_text=True)
    assert "Try the keypad" in page and "PINs on it" in page
    token = csrf_from(page)
    typed = ""
    for key in "482":
        response = member_client.post(f"/mailboxes/{mailbox.id}/keypad",
                                      data={"csrf_token": token, "digits": typed, "key": key},
                                      headers={"HX-Request": "true"})
        typed += key
        assert f'value="{typed}"' in response.get_data(as_text=True)
    opened = member_client.post(f"/mailboxes/{mailbox.id}/keypad",
                                data={"csrf_token": token, "digits": "4821", "key": "enter"},
                                headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "The box opened" in opened and 'value="4821"' not in opened
    # Without JavaScript: a redirect back to the page, which says what happened.
    refused = member_client.post(f"/mailboxes/{mailbox.id}/keypad",
                                 data={"csrf_token": token, "digits": "9999", "key": "enter"})
    assert refused.status_code == 303
    assert "The box refused that PIN" in member_client.get(refused.headers["Location"]).get_data(as_text=True)


def test_a_keypad_press_is_published_by_the_worker_not_by_the_web_request(kit):
    from portal.jobs import virtual_gateways as manager

    gateway = kit.add_gateway()
    mailbox = kit.add_mailbox(gateway)
    kit.add_pin(mailbox, "Grandma", "4821")
    _run_everything(kit)
    mailbox = kit.reload(mailbox)
    gateway = kit.reload(gateway)

    def opened_reports():
        return [m for m in kit.read(mailbox.channel_id, publisher=gateway.thing_id) if m["name"].endswith("_OPENED")]

    assert mailboxes.press_keypad(kit.account.id, mailbox.id, "4821") == "opened"
    assert opened_reports() == []  # nothing left the request
    manager.tick(kit.app)
    assert [m["unit"] for m in opened_reports()] == ["PIN"]


def test_a_pretend_box_s_report_is_drawn_at_each_poll_and_carries_no_version(kit, member_client):
    """What the pretend box holds is read from the virtual gateway itself, which the
    household's change count does not follow: its report never answers 304."""
    gateway = kit.add_gateway()
    mailbox = kit.add_mailbox(gateway)
    _run_everything(kit)
    poll = {"HX-Request": "true", "X-IoTLock-Poll": "1"}
    first = member_client.get(f"/mailboxes/{mailbox.id}/box", headers=poll)
    assert first.status_code == 200 and "What the pretend box holds" in first.get_data(as_text=True)
    assert "ETag" not in first.headers and "If-None-Match" not in first.get_data(as_text=True)
