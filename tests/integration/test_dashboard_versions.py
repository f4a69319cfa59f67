"""The dashboard's live part (gateways/_dashboard.html) polls every 3 s while something is on
its way, with the version it shows (services/versions.py): a 304 while nothing moved and its
words read the same, drawn again on any change of the household, when a time it shows in
words turns, or the second a gateway's last heartbeat grows stale."""
import re
from datetime import timedelta

import pytest

from portal.extensions import db
from portal.models import GatewayKeyHolder, PlatformHealth, utcnow
from portal.models.platform import PLATFORM_DOWN, STREAMIOT
from tests.plugins.accounts import PASSWORD, Auth
from tests.plugins.text import visible_text

POLL = {"HX-Request": "true", "X-IoTLock-Poll": "1"}


def _poll(client, etag=None):
    return client.get("/gateways/", headers=dict(POLL, **({"If-None-Match": etag} if etag else {})))


def _shown(response) -> str:
    return visible_text(response.get_data(as_text=True))


def test_the_dashboard_answers_304_until_something_changes(kit, member_client, settled):
    gateway, mailbox = settled
    kit.add_pin(mailbox, "Grandma", "4821")  # sent, waiting for the box: the dashboard polls
    first = _poll(member_client)
    etag = first.headers["ETag"]
    assert first.status_code == 200 and "1 change on the way" in _shown(first)
    assert f'"If-None-Match": "\\"{etag[1:-1]}\\""' in first.get_data(as_text=True)

    again = _poll(member_client, etag)
    assert again.status_code == 304 and again.get_data() == b""

    kit.confirm_all(gateway)  # the box takes the PIN
    changed = _poll(member_client, etag)
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert "All delivered" in _shown(changed)
    assert 'hx-trigger="every 3s"' not in changed.get_data(as_text=True)  # nothing left on its way: it stops


def test_a_gateway_goes_offline_on_the_dashboard_the_second_its_heartbeat_grows_stale(app, kit, member_client,
                                                                                         settled, time_machine):
    gateway, mailbox = settled
    kit.add_pin(mailbox, "Grandma", "4821", run=False)
    heard = kit.reload(gateway).last_heartbeat_at
    window = timedelta(seconds=app.config["HEARTBEAT_WINDOW_SECONDS"])
    time_machine.move_to(heard + window - timedelta(seconds=2), tick=False)
    seen = _poll(member_client)
    assert "Online" in _shown(seen)
    time_machine.move_to(heard + window - timedelta(seconds=1), tick=False)
    assert _poll(member_client, seen.headers["ETag"]).status_code == 304
    time_machine.move_to(heard + window + timedelta(seconds=1), tick=False)
    stale = _poll(member_client, seen.headers["ETag"])
    assert stale.status_code == 200 and "Offline" in _shown(stale)


def test_the_dashboard_s_words_follow_the_clock(kit, member_client, settled, time_machine):
    """Over an hour, whenever a poll gets a 304 the dashboard drawn afresh reads the same."""
    _gateway, mailbox = settled
    kit.add_pin(mailbox, "Grandma", "4821", run=False)
    start = utcnow()
    seen = _poll(member_client)
    drawn = 0
    for seconds in (1, 2, 9, 10, 11, 30, 59, 60, 61, 62, 119, 120, 121, 600, 3599, 3600, 3601):
        time_machine.move_to(start + timedelta(seconds=seconds), tick=False)
        now = _poll(member_client, seen.headers["ETag"])
        if now.status_code == 304:
            assert _shown(_poll(member_client)) == _shown(seen), seconds
        else:
            drawn += 1
            seen = now
    assert 0 < drawn < 17  # some polls held, and the words did turn


def test_while_the_device_service_is_away_the_dashboard_is_drawn_each_second(kit, member_client, settled,
                                                                            time_machine):
    _gateway, mailbox = settled
    kit.add_pin(mailbox, "Grandma", "4821", run=False)
    db.session.merge(PlatformHealth(name=STREAMIOT, state=PLATFORM_DOWN, next_probe_at=utcnow() + timedelta(seconds=30)))
    db.session.commit()
    seen = _poll(member_client)
    assert _poll(member_client, seen.headers["ETag"]).status_code == 304  # the same second
    time_machine.move_to(utcnow() + timedelta(seconds=1), tick=False)
    assert _poll(member_client, seen.headers["ETag"]).status_code == 200  # its next try counts down


def test_a_message_to_flash_is_never_answered_304_on_the_dashboard(kit, member_client, settled):
    _gateway, mailbox = settled
    kit.add_pin(mailbox, "Grandma", "4821", run=False)
    etag = _poll(member_client).headers["ETag"]
    with member_client.session_transaction() as session:
        session["_flashes"] = [("info", "Open sent.")]
    flashed = _poll(member_client, etag)
    assert flashed.status_code == 200 and "Open sent." in flashed.get_data(as_text=True)


def test_a_former_member_with_the_keys_moves_an_owner_s_dashboard(kit, member_client, settled):
    gateway, mailbox = settled
    kit.add_pin(mailbox, "Grandma", "4821", run=False)
    etag = _poll(member_client).headers["ETag"]
    db.session.add(GatewayKeyHolder(account_id=kit.account.id, gateway_id=gateway.id, user_id=None,
                                    email="gone@example.com", departed_at=utcnow()))
    db.session.commit()
    changed = _poll(member_client, etag)
    assert changed.status_code == 200 and "gone@example.com" in _shown(changed)


def test_a_dashboard_version_holds_only_for_its_household_and_who_is_asking(app, kit, member_client, settled,
                                                                           add_member, make_household):
    _gateway, mailbox = settled
    kit.add_pin(mailbox, "Grandma", "4821", run=False)
    etag = _poll(member_client).headers["ETag"]
    member, _membership = add_member(kit.account, "kim@example.com")
    owner_etag = _poll(member_client).headers["ETag"]  # a member joined: the count moved
    assert owner_etag != etag
    as_member = app.test_client()
    assert Auth(as_member).login(member.email, PASSWORD).status_code == 302
    assert _poll(as_member, owner_etag).status_code == 200  # members don't see who left with keys
    member_etag = _poll(as_member).headers["ETag"]
    assert _poll(as_member, member_etag).status_code == 304

    _user, neighbour = make_household("next@example.com", "Next door")
    db.session.commit()
    next_door = app.test_client()
    assert Auth(next_door).login("next@example.com", PASSWORD).status_code == 302
    assert _poll(next_door, owner_etag).status_code == 200
    assert _poll(member_client, owner_etag).status_code == 304  # a neighbour's changes leave it alone


@pytest.mark.parametrize("etag", ["", "garbage", '"1.99999999999.abc"', '"0.0.0"'])
def test_a_dashboard_version_the_portal_did_not_sign_draws_it(kit, member_client, settled, etag):
    _gateway, mailbox = settled
    kit.add_pin(mailbox, "Grandma", "4821", run=False)
    assert _poll(member_client, etag).status_code == 200


def test_the_full_dashboard_page_carries_its_part_s_version_so_its_first_poll_gets_a_304(kit, member_client,
                                                                                         settled):
    _gateway, mailbox = settled
    kit.add_pin(mailbox, "Grandma", "4821", run=False)
    page = member_client.get("/gateways/")
    assert page.status_code == 200 and "ETag" not in page.headers  # the page is more than its part
    version = re.search(r'id="dashboard" hx-get="/gateways/"[^>]*"If-None-Match": "\\"([^\\]+)\\""',
                        page.get_data(as_text=True)).group(1)
    assert _poll(member_client, f'"{version}"').status_code == 304


# --- a gateway's page: its live part polls every 1-3 s while something moves -------------

def _gateway_poll(client, gateway, etag=None):
    return client.get(f"/gateways/{gateway.id}", headers=dict(POLL, **({"If-None-Match": etag} if etag else {})))


def test_a_gateway_page_answers_304_until_something_changes(kit, member_client, settled):
    gateway, mailbox = settled
    kit.add_pin(mailbox, "Grandma", "4821")
    first = _gateway_poll(member_client, gateway)
    etag = first.headers["ETag"]
    assert first.status_code == 200 and 'id="gateway-live"' in first.get_data(as_text=True)
    assert f'"If-None-Match": "\\"{etag[1:-1]}\\""' in first.get_data(as_text=True)
    assert _gateway_poll(member_client, gateway, etag).status_code == 304
    kit.confirm_all(gateway)
    changed = _gateway_poll(member_client, gateway, etag)
    assert changed.status_code == 200 and "All delivered" in _shown(changed)


def test_a_gateway_page_s_words_follow_the_clock(kit, member_client, settled, time_machine):
    gateway, mailbox = settled
    kit.add_pin(mailbox, "Grandma", "4821", run=False)
    start = utcnow()
    seen = _gateway_poll(member_client, gateway)
    drawn = 0
    for seconds in (1, 2, 9, 10, 11, 30, 59, 60, 61, 62, 119, 120, 121, 600, 3599, 3600, 3601):
        time_machine.move_to(start + timedelta(seconds=seconds), tick=False)
        now = _gateway_poll(member_client, gateway, seen.headers["ETag"])
        if now.status_code == 304:
            assert _shown(_gateway_poll(member_client, gateway)) == _shown(seen), seconds
        else:
            drawn += 1
            seen = now
    assert 0 < drawn < 17


def test_a_set_up_step_tried_again_soon_counts_its_seconds_down(kit, member_client, time_machine):
    """A gateway whose set-up waits on a retry shows "trying again in 30 s": its page is drawn
    each second until then."""
    time_machine.move_to(utcnow(), tick=False)
    gateway = kit.add_gateway(run=False)
    step = kit.commands(gateway)[0]
    step.retry_at = utcnow() + timedelta(seconds=30)
    db.session.commit()
    seen = _gateway_poll(member_client, gateway)
    assert "trying again in 30 s" in seen.get_data(as_text=True)
    assert _gateway_poll(member_client, gateway, seen.headers["ETag"]).status_code == 304
    time_machine.move_to(utcnow() + timedelta(seconds=1), tick=False)
    ticked = _gateway_poll(member_client, gateway, seen.headers["ETag"])
    assert ticked.status_code == 200 and "trying again in 29 s" in ticked.get_data(as_text=True)


def test_one_part_s_version_holds_for_no_other(kit, member_client, settled):
    gateway, mailbox = settled
    kit.add_pin(mailbox, "Grandma", "4821")
    other = kit.add_gateway("Garage")
    board = _poll(member_client).headers["ETag"]
    page = _gateway_poll(member_client, gateway).headers["ETag"]
    assert _gateway_poll(member_client, gateway, page).status_code == 304
    assert _gateway_poll(member_client, gateway, board).status_code == 200
    assert _gateway_poll(member_client, other, page).status_code == 200
    assert _poll(member_client, page).status_code == 200
    live = member_client.get(f"/mailboxes/{mailbox.id}", headers=dict(POLL, **{"If-None-Match": page}))
    assert live.status_code == 200
