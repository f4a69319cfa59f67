"""The device pages as a member sees them: the next step for an empty household, every
state at a glance with pending and failed changes counted, and live regions that poll
while something can still change by itself and stop when everything is final."""
import re
from datetime import timedelta

import sqlalchemy as sa

from portal.extensions import db
from portal.models import ActivityEvent, utcnow
from portal.services import activity, dashboard, gateways, pins
from tests.plugins.accounts import csrf_from
from tests.plugins.text import visible_text


def _live_region(html: str, region_id: str) -> str:
    match = re.search(rf'<div id="{region_id}"[^>]*>', html)
    assert match, f"no #{region_id} on the page"
    return match.group(0)


def test_an_empty_household_is_shown_its_first_step_and_its_link_state(kit, member_client):
    body = member_client.get("/gateways/").get_data(as_text=True)
    assert "Add your first gateway" in body
    assert 'href="/gateways/new"' in body
    assert "link-state" in body  # templates/account/_link_state.html, included


def test_the_dashboard_shows_each_gateway_and_box_with_state_and_counts(kit, member_client):
    gateway, mailbox = kit.ready_mailbox()
    kit.add_pin(mailbox, "Grandma", "4821")
    kit.add_pin(mailbox, "Courier", "5938")  # stays on its way
    first_auth = kit.commands(gateway, action="AUTH")[0]
    kit.device(gateway).answer(first_auth, done=False, reason="slots full")
    kit.poll()
    body = member_client.get("/gateways/").get_data(as_text=True)
    assert "Hallway" in body and "Front box" in body
    assert ">Online<" in body and ">Ready<" in body
    assert "1 on the way" in body and "1 failed" in body
    assert '<strong>1</strong><span>Changes on their way</span>' in body
    assert '<strong>1</strong><span>Failed changes</span>' in body


def test_the_dashboard_polls_while_something_moves_and_stops_when_all_is_final(kit, member_client):
    gateway = kit.add_gateway(run=False)
    live = member_client.get("/gateways/", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert live.lstrip().startswith('<div id="dashboard"')  # the partial alone
    assert "<html" not in live
    assert 'hx-trigger="every 3s"' in _live_region(live, "dashboard")
    kit.drain()
    kit.device(gateway).heartbeat()
    kit.confirm_all(gateway)
    final = member_client.get("/gateways/", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "hx-trigger" not in _live_region(final, "dashboard")


def test_the_gateway_page_shows_each_step_live_and_then_its_state(kit, member_client):
    gateway = kit.add_gateway(run=False)
    page = member_client.get(f"/gateways/{gateway.id}").get_data(as_text=True)
    assert "Setting up" in page
    assert '<li class="current">Sign the gateway up with the device service' in page
    assert 'hx-trigger="every 1s"' in _live_region(page, "gateway-live")
    kit.drain()
    partial = member_client.get(f"/gateways/{gateway.id}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert '<li class="done">Introduce the gateway to your household</li>' in partial
    assert "Waiting for the device" in partial
    kit.device(gateway).heartbeat()
    kit.confirm_all(gateway)
    partial = member_client.get(f"/gateways/{gateway.id}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert ">Online<" in partial
    assert "hx-trigger" not in _live_region(partial, "gateway-live")


def test_a_failed_gateway_shows_its_reason_and_a_retry_button(kit, member_client):
    gateway = kit.add_gateway()
    kit.device(gateway).answer(kit.command(gateway, "CONNECT"), done=False, reason="wrong firmware")
    kit.poll()
    page = member_client.get(f"/gateways/{gateway.id}").get_data(as_text=True)
    assert "Set-up failed" in page and "wrong firmware" in page
    assert f'action="/gateways/{gateway.id}/retry"' in page
    retried = member_client.post(f"/gateways/{gateway.id}/retry", data={"csrf_token": csrf_from(page)})
    assert retried.status_code == 303
    assert kit.reload(gateway).status == "provisioning"


def test_a_removed_gateway_sends_its_live_page_back_to_the_dashboard(kit, member_client):
    gateway = kit.add_gateway()
    gateway_id = gateway.id
    gateways.remove_gateway(kit.account.id, gateway.id, kit.user)
    removing = member_client.get(f"/gateways/{gateway_id}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "Removing" in removing and "hx-trigger" in _live_region(removing, "gateway-live")
    kit.drain()
    gone = member_client.get(f"/gateways/{gateway_id}", headers={"HX-Request": "true"})
    assert gone.status_code == 200 and gone.headers["HX-Redirect"] == "/gateways/"
    assert member_client.get(f"/gateways/{gateway_id}").status_code == 404


def test_the_mailbox_page_polls_while_a_pin_travels_and_stops_once_the_box_confirms(kit, member_client):
    gateway, mailbox = kit.ready_mailbox()
    pin = kit.add_pin(mailbox, "Grandma", "4821")
    page = member_client.get(f"/mailboxes/{mailbox.id}").get_data(as_text=True)
    assert "Sent, waiting for the box" in page
    assert 'hx-trigger="every 1s"' in _live_region(page, "mailbox-live")
    kit.confirm_all(gateway)
    partial = member_client.get(f"/mailboxes/{mailbox.id}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "Confirmed on the box" in partial
    # No polling once final; only the keypad's "box changed" event refreshes it.
    assert 'hx-trigger="every' not in _live_region(partial, "mailbox-live")
    assert 'hx-trigger="box-changed from:body delay:1s"' in _live_region(partial, "mailbox-live")
    assert "4821" not in visible_text(partial)
    pins.remove_pin(kit.account.id, pin.id, kit.user)
    partial = member_client.get(f"/mailboxes/{mailbox.id}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "Removal queued" in partial and "hx-trigger" in _live_region(partial, "mailbox-live")


def test_a_failed_pin_offers_retry_and_withdraw_and_both_work_without_javascript(kit, member_client):
    gateway, mailbox = kit.ready_mailbox()
    pin = kit.add_pin(mailbox, "Grandma", "4821")
    auth = kit.command(gateway, "AUTH")
    kit.device(gateway).answer(auth, done=False, reason="slots full")
    kit.poll()
    page = member_client.get(f"/mailboxes/{mailbox.id}").get_data(as_text=True)
    assert "slots full" in page
    assert f'action="/mailboxes/changes/{auth.id}/retry"' in page
    assert f'action="/mailboxes/changes/{auth.id}/withdraw"' in page
    token = csrf_from(page)
    withdrawn = member_client.post(f"/mailboxes/changes/{auth.id}/withdraw", data={"csrf_token": token})
    assert withdrawn.status_code == 303 and withdrawn.headers["Location"].endswith(f"/mailboxes/{mailbox.id}#pins")
    assert kit.reload(pin).status == "removed"
    after = member_client.get(f"/mailboxes/{mailbox.id}#pins").get_data(as_text=True)
    assert f'id="pin-{pin.id}"' not in after  # off the list of PINs...
    ended = after.split('class="ended-pins')[1].split("</ul>")[0]
    assert "Grandma" in ended and ">removed<" in ended  # ... and under "Ended and removed"


def test_the_mailbox_page_lists_the_box_events(kit, member_client):
    from portal.streamiot import messages

    gateway, mailbox = kit.ready_mailbox()
    kit.device(gateway).publish(messages.closed(gateway.thing_id), mailbox.channel_id)
    kit.poll()
    box = member_client.get(f"/mailboxes/{mailbox.id}/box", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert 'id="box-events"' in box and "Closed" in box
    assert "Added mailbox “Front box” to gateway “Hallway”" in box


def test_a_second_member_of_the_household_has_the_same_control(kit, app, add_member):
    from tests.plugins.accounts import PASSWORD, Auth

    gateway, mailbox = kit.ready_mailbox()
    user, _membership = add_member(kit.account, "second@example.com")
    auth = Auth(app.test_client())
    assert auth.login("second@example.com", PASSWORD).status_code == 302
    page = auth.client.get(f"/mailboxes/{mailbox.id}").get_data(as_text=True)
    response = auth.client.post(f"/mailboxes/{mailbox.id}/pins",
                                data={"csrf_token": csrf_from(page), "label": "Neighbour", "digits": "60517"})
    assert response.status_code == 303
    db.session.expire_all()
    assert [c.action for c in kit.commands(mailbox=mailbox, state="queued")] == ["AUTH"]


def test_an_offline_gateway_says_since_when_on_its_page_and_the_dashboard(kit, app, member_client):
    from datetime import timedelta

    from portal.models import utcnow

    gateway = kit.add_gateway(name="Porch hub")
    kit.device(gateway).heartbeat()
    kit.poll()
    gateway = kit.reload(gateway)
    gateway.last_heartbeat_at = utcnow() - timedelta(hours=3)
    db.session.commit()
    page = member_client.get(f"/gateways/{gateway.id}").get_data(as_text=True)
    assert "Offline" in page
    assert re.search(r"since\s*<time[^>]*>3 hours ago</time>", page)
    assert "Offline" in member_client.get("/gateways/").get_data(as_text=True)


def test_a_box_s_live_part_reads_its_latest_event_with_the_box_as_owners_and_members_may_see_it(kit, member_client):
    """The live part shows one event, read in the box's row (activity.latest_of_box): the one
    the box's event list starts with, newest by when it happened; a duress opening for an
    owner only, the event before it for a member; none for a box with no events."""
    gateway, mailbox = kit.ready_mailbox()
    _gw, quiet = kit.ready_mailbox("Side gate", gateway=gateway)
    db.session.execute(sa.delete(ActivityEvent).where(ActivityEvent.mailbox_id == quiet.id))
    now = utcnow() + timedelta(minutes=10)  # after the boxes' own "added" events
    for kind, summary, ago in (("box.opened_pin", "Opened with the PIN “Grandma”", 2),
                               ("box.closed", "Closed, read late", 5),
                               ("box.duress", "Opened under duress", 1)):
        db.session.add(ActivityEvent(account_id=kit.account.id, actor_kind="box", actor_label=mailbox.name,
                                     kind=kind, summary=summary, gateway_id=gateway.id, mailbox_id=mailbox.id,
                                     occurred_at=now - timedelta(minutes=ago), recorded_at=now))
    db.session.commit()
    for owner, expected in ((True, "Opened under duress"), (False, "Opened with the PIN “Grandma”")):
        page = dashboard.mailbox_page(kit.account.id, mailbox.id, owner=owner, pins_page=1, events=1)
        [listed] = activity.recent_for_mailbox(kit.account.id, mailbox.id, limit=1, owner=owner)
        assert page.events == [activity.LatestEvent(expected, listed.occurred_at)]
        assert listed.summary == expected
        assert page.last_event.occurred_at == now - timedelta(minutes=1 if owner else 2)
    assert dashboard.mailbox_page(kit.account.id, quiet.id, owner=True, pins_page=1, events=1).events == []
    part = visible_text(member_client.get(f"/mailboxes/{mailbox.id}", headers={"HX-Request": "true"})
                        .get_data(as_text=True))
    assert "Last event Opened under duress" in part  # the household's owner
    empty = visible_text(member_client.get(f"/mailboxes/{quiet.id}", headers={"HX-Request": "true"})
                         .get_data(as_text=True))
    assert "Last event Nothing yet" in empty


def test_the_dashboard_shows_each_box_s_newest_event_as_its_page_does(kit, member_client):
    """Newest by when it happened, as on the box's page: an event read late (recorded after,
    happened before) is not the box's last event."""
    gateway, mailbox = kit.ready_mailbox()
    now = utcnow()
    for summary, occurred_at in (("Opened with the PIN “Grandma”", now), ("Closed, read late", now - timedelta(minutes=3))):
        db.session.add(ActivityEvent(account_id=kit.account.id, actor_kind="box", actor_label=mailbox.name,
                                     kind="box.opened_pin", summary=summary, gateway_id=gateway.id,
                                     mailbox_id=mailbox.id, occurred_at=occurred_at, recorded_at=now))
    db.session.commit()
    dashboard = visible_text(member_client.get("/gateways/").get_data(as_text=True))
    box_page = visible_text(member_client.get(f"/mailboxes/{mailbox.id}").get_data(as_text=True))
    assert "Last: Opened with the PIN “Grandma”" in dashboard
    assert "Closed, read late" not in dashboard
    assert "Last event Opened with the PIN “Grandma”" in box_page
