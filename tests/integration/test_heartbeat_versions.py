"""A gateway's heartbeat (every 30 s) moves the household's heartbeats count, not the count
every polled part follows (models/changes.py): a box page's parts and the activity feed
answer 304 across a heartbeat of a gateway already online, since they show it online or
offline and not when it was last heard; the dashboard and a gateway's page, which say when
it was last heard, are drawn again. The heartbeat that brings a gateway online moves the
count, so a box page shows it online at its next poll."""
import re
from datetime import timedelta

import pytest

from portal.models import utcnow
from tests.plugins.text import visible_text

POLL = {"HX-Request": "true", "X-IoTLock-Poll": "1"}
CSRF = re.compile(r'(name="csrf_token" value=")[^"]+|("X-CSRFToken": ")[^"]+')


def _get(client, url, etag=None):
    return client.get(url, headers=dict(POLL, **({"If-None-Match": etag} if etag else {})))


def _shown(response) -> str:
    """The part as a person sees it (CSRF tokens, signed each second, left out)."""
    return CSRF.sub(r"\1\2", response.get_data(as_text=True))


def _heartbeat(kit, gateway):
    kit.device(gateway).heartbeat()
    kit.poll()


@pytest.fixture
def online(kit, time_machine):
    """A box set up ten minutes ago, its gateway heard from just now; the clock stands."""
    time_machine.move_to(utcnow().replace(second=5, microsecond=0) + timedelta(minutes=1), tick=False)
    gateway, mailbox = kit.ready_mailbox()
    time_machine.move_to(utcnow() + timedelta(minutes=10), tick=False)
    _heartbeat(kit, gateway)
    kit.add_pin(mailbox, "Grandma", "4821", run=False)  # on its way: the dashboard polls too
    return gateway, mailbox


def test_a_heartbeat_of_a_gateway_online_leaves_the_box_page_alone_and_draws_the_dashboard_again(
        kit, member_client, online, time_machine):
    gateway, mailbox = online
    urls = {"box": f"/mailboxes/{mailbox.id}", "events": f"/mailboxes/{mailbox.id}/box", "feed": "/activity",
            "dashboard": "/gateways/", "gateway": f"/gateways/{gateway.id}"}
    time_machine.move_to(utcnow() + timedelta(seconds=30), tick=False)
    seen = {name: _get(member_client, url) for name, url in urls.items()}
    assert "Online" in visible_text(seen["box"].get_data(as_text=True))
    _heartbeat(kit, gateway)  # at the same instant: only the heartbeat moved
    again = {name: _get(member_client, url, seen[name].headers["ETag"]) for name, url in urls.items()}
    assert {name: r.status_code for name, r in again.items()} == {
        "box": 304, "events": 304, "feed": 304, "dashboard": 200, "gateway": 200}
    for name in ("box", "events", "feed"):  # a 304 hides nothing: drawn afresh, each reads the same
        assert _shown(_get(member_client, urls[name])) == _shown(seen[name]), name


def test_the_heartbeat_that_brings_a_gateway_back_online_draws_the_box_again(app, kit, member_client, online,
                                                                            time_machine):
    gateway, mailbox = online
    time_machine.move_to(utcnow() + timedelta(seconds=app.config["HEARTBEAT_WINDOW_SECONDS"] + 10), tick=False)
    offline = _get(member_client, f"/mailboxes/{mailbox.id}")
    assert "Offline" in visible_text(offline.get_data(as_text=True))
    _heartbeat(kit, gateway)
    back = _get(member_client, f"/mailboxes/{mailbox.id}", offline.headers["ETag"])
    assert back.status_code == 200 and "Online" in visible_text(back.get_data(as_text=True))
    assert kit.reload(gateway).online_since == kit.reload(gateway).last_heartbeat_at


def test_a_heartbeat_read_late_that_leaves_the_gateway_offline_draws_the_box_not_again(app, kit, member_client,
                                                                                       online, time_machine):
    """Sent while the gateway was online, read after a gap (the reader was away) when it
    already reads offline: the box shows what it showed, the gateway's page when it was heard."""
    gateway, mailbox = online
    window = timedelta(seconds=app.config["HEARTBEAT_WINDOW_SECONDS"])
    time_machine.move_to(utcnow() + timedelta(seconds=60), tick=False)
    kit.device(gateway).heartbeat()  # published now, not read yet
    time_machine.move_to(utcnow() + window + timedelta(seconds=10), tick=False)
    box, page = _get(member_client, f"/mailboxes/{mailbox.id}"), _get(member_client, f"/gateways/{gateway.id}")
    assert "Offline" in visible_text(box.get_data(as_text=True))
    kit.poll()
    assert kit.reload(gateway).online_since is not None and \
        kit.reload(gateway).online_since < kit.reload(gateway).last_heartbeat_at  # heard, not back online
    assert _get(member_client, f"/mailboxes/{mailbox.id}", box.headers["ETag"]).status_code == 304
    assert _shown(_get(member_client, f"/mailboxes/{mailbox.id}")) == _shown(box)
    assert _get(member_client, f"/gateways/{gateway.id}", page.headers["ETag"]).status_code == 200


def test_a_box_page_watched_for_five_minutes_is_drawn_at_the_minute_s_turns_not_at_each_heartbeat(
        kit, member_client, online, time_machine):
    """The box's live part polls every 2 s and its events every 4 s; the gateway sends a
    heartbeat every 30 s. Before heartbeats had a count of their own, each of the 10
    heartbeats drew both parts again: 15 drawings each in these 5 minutes, not 5."""
    gateway, mailbox = online
    time_machine.move_to(utcnow() + timedelta(hours=1), tick=False)  # every time shown reads "1 hour ago"
    _heartbeat(kit, gateway)
    start = utcnow()
    urls = {"box": f"/mailboxes/{mailbox.id}", "events": f"/mailboxes/{mailbox.id}/box"}
    every = {"box": 2, "events": 4}
    etags = {name: _get(member_client, url).headers["ETag"] for name, url in urls.items()}
    drawn = {name: 0 for name in urls}
    for second in range(1, 301):
        time_machine.move_to(start + timedelta(seconds=second), tick=False)
        if second % 30 == 0:
            _heartbeat(kit, gateway)
        for name, url in urls.items():
            if second % every[name] == 0:
                answer = _get(member_client, url, etags[name])
                if answer.status_code == 200:
                    drawn[name] += 1
                    etags[name] = answer.headers["ETag"]
    # Each part is drawn when its words may turn: the clock's minute (5 in 5 minutes), and
    # the box's also when its gateway's window would end (the last heartbeat it was drawn with
    # plus 2 minutes, which the next minute's drawing always comes before).
    assert drawn == {"box": 5, "events": 5}
