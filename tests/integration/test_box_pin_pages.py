"""A box page lists its live PINs 25 at a time, oldest first: a box of hundreds of PINs
drew them all in its live part every few seconds (125 ms of CPU a poll at 500). Each page
links to the next; a change made on a PIN lands back on the page that lists it; a new PIN
on the last page; the live part polls its own page, and its version covers that page and
the total. The API still lists every PIN of the box."""
import re
import uuid
from datetime import timedelta

import pytest

from portal.extensions import db
from portal.models import Membership, Pin, User, utcnow
from portal.services import api_tokens, dashboard, versions
from tests.plugins.devices import live_version_of
from tests.plugins.text import visible_text

POLL = {"HX-Request": "true", "X-IoTLock-Poll": "1"}
ZOE = 'zoë "z" o\'neil \\ ☂'  # read back through JSON: quotes, a backslash, not ASCII
LABEL = re.compile(r'<strong class="name" title="(P\d\d)">')


@pytest.fixture
def box(kit):
    _gateway, mailbox = kit.ready_mailbox()
    for n in range(60):
        kit.add_pin(mailbox, f"P{n:02d}", f"{4000 + n}", run=False)
    db.session.commit()
    return mailbox


def _labels(response) -> list[str]:
    return LABEL.findall(response.get_data(as_text=True))


def _pin(label) -> Pin:
    return db.session.scalars(db.select(Pin).where(Pin.label == label)).one()


def test_the_page_lists_25_pins_oldest_first_and_links_the_next(box, member_client):
    first = member_client.get(f"/mailboxes/{box.id}")
    assert _labels(first) == [f"P{n:02d}" for n in range(25)]
    text = visible_text(first.get_data(as_text=True))
    assert "PINs 1–25 of 60" in text and "← Older" not in text
    html = first.get_data(as_text=True)
    assert f'href="/mailboxes/{box.id}?pins=2#pins" rel="next"' in html
    assert '<h2 id="pins-title">PINs</h2>\n      <span class="muted small">60</span>' in html  # all of them

    middle = member_client.get(f"/mailboxes/{box.id}?pins=2")
    assert _labels(middle) == [f"P{n:02d}" for n in range(25, 50)]
    assert f'href="/mailboxes/{box.id}#pins" rel="prev"' in middle.get_data(as_text=True)

    last = member_client.get(f"/mailboxes/{box.id}?pins=3")
    assert _labels(last) == [f"P{n:02d}" for n in range(50, 60)]
    text = visible_text(last.get_data(as_text=True))
    assert "PINs 51–60 of 60" in text and "Newer →" not in text


@pytest.mark.parametrize("asked, shown", [("99", 50), ("last", 50), ("0", 0), ("-3", 0), ("two", 0),
                                          ("99999999999999999999", 50)])
def test_a_page_past_the_end_shows_the_last_and_nonsense_the_first(box, member_client, asked, shown):
    response = member_client.get(f"/mailboxes/{box.id}?pins={asked}")
    assert response.status_code == 200
    assert _labels(response)[0] == f"P{shown:02d}"


def test_a_box_of_few_pins_shows_them_all_without_pages(kit, member_client):
    _gateway, mailbox = kit.ready_mailbox()
    for n in range(25):
        kit.add_pin(mailbox, f"P{n:02d}", f"{4000 + n}", run=False)
    response = member_client.get(f"/mailboxes/{mailbox.id}")
    assert len(_labels(response)) == 25
    assert "More PINs" not in response.get_data(as_text=True)


def test_a_new_pin_lands_on_the_last_page_where_it_is_listed(box, member_client):
    page = member_client.get(f"/mailboxes/{box.id}").get_data(as_text=True)
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page).group(1)
    added = member_client.post(f"/mailboxes/{box.id}/pins", data={
        "csrf_token": token, "label": "Newest", "digits": "918273", "kind": "always"})
    assert added.status_code == 303, re.findall(r'class="field-error[^>]*>([^<]+)', added.get_data(as_text=True))
    assert added.headers["Location"] == f"/mailboxes/{box.id}?pins=last#pins"
    landed = member_client.get(added.headers["Location"])
    assert "Newest" in visible_text(landed.get_data(as_text=True))
    assert "PINs 51–61 of 61" in visible_text(landed.get_data(as_text=True))


def test_removing_a_pin_of_the_second_page_lands_on_the_second_page(box, member_client):
    pin = _pin("P30")
    page = member_client.get(f"/mailboxes/{box.id}?pins=2").get_data(as_text=True)
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page).group(1)
    removed = member_client.post(f"/mailboxes/pins/{pin.id}/remove", data={"csrf_token": token})
    assert removed.status_code == 303
    assert removed.headers["Location"] == f"/mailboxes/{box.id}?pins=2#pins"
    # htmx follows it for the live part: the part of page 2, polling page 2.
    part = member_client.get(removed.headers["Location"], headers=POLL).get_data(as_text=True)
    assert "P30" in part and f'hx-get="/mailboxes/{box.id}?pins=2"' in part


def test_each_page_of_pins_has_its_own_live_version_and_any_change_moves_them_all(box, kit, member_client,
                                                                                 time_machine):
    time_machine.move_to(utcnow(), tick=False)  # while the box's events are young its words turn each second
    account, mailbox = box.account_id, box.id
    second = live_version_of(account, mailbox, pins_page=2)
    first = live_version_of(account, mailbox, pins_page=1)
    assert second != first
    mark = versions.mark(account)
    assert versions.holds(dashboard.live_part(account, mailbox, 2), second, mark)
    assert not versions.holds(dashboard.live_part(account, mailbox, 1), second, mark)  # page 2's, polled for page 1
    _pin("P03").label = "Renamed on page one"
    db.session.commit()
    # The household's count moved: every open part of it draws itself again, once.
    assert not versions.holds(dashboard.live_part(account, mailbox, 2), second, versions.mark(account))
    assert live_version_of(account, mailbox, pins_page=1) != first
    second = live_version_of(account, mailbox, pins_page=2)
    kit.add_pin(db.session.get(type(box), mailbox), "P60", "4060", run=False)  # lands on page 3
    assert live_version_of(account, mailbox, pins_page=2) != second  # the total moved


def test_the_api_still_lists_every_pin_of_the_box_and_reads_one_from_any_page(app, kit, box):
    membership = db.session.query(Membership).filter_by(user_id=kit.user.id).one()
    _token, secret = api_tokens.create_token(membership, kit.user, name="list", scopes=["read"])
    client, auth = app.test_client(), {"Authorization": f"Bearer {secret}"}
    listed, path = [], f"/api/v1/boxes/{box.id}/pins?limit=50"
    while path:
        response = client.get(path, headers=auth)
        assert response.status_code == 200
        listed += [item["label"] for item in response.json["items"]]
        path = response.json["next"]
    assert listed == [f"P{n:02d}" for n in range(60)]
    # The cursor pages come from the database: a limit that does not divide the offset too.
    response = client.get(f"/api/v1/boxes/{box.id}/pins?limit=7", headers=auth)
    second = client.get(response.json["next"].replace("limit=7", "limit=20"), headers=auth).json
    assert [item["label"] for item in second["items"]] == [f"P{n:02d}" for n in range(7, 27)]
    pin = _pin("P55")
    one = client.get(f"/api/v1/pins/{pin.id}", headers=auth)
    assert one.status_code == 200 and one.json["label"] == "P55"
    assert client.get(f"/api/v1/boxes/{box.id}", headers=auth).json["name"] == box.name


def test_a_page_of_pins_comes_with_the_latest_ended_ones_and_the_members_by_name(app, kit, box):
    """The box page reads its page of live PINs with the box's latest ended PINs in one
    statement, and the household's members with the box: each keeps its own order (live
    oldest first, ended newest first, members by name), on every page, past the end, and
    when no live PIN is read at all (the API's box)."""
    now = utcnow()
    for n in range(8):  # P00..P07 ended, P07 last
        pin = _pin(f"P{n:02d}")
        pin.status, pin.removed_at = "removed", now - timedelta(minutes=10 - n)
    zoe = User(email="zoe@example.com", password_hash="x", display_name=ZOE)
    adam = User(email="adam@example.com", password_hash="x", display_name=None)
    db.session.add_all([zoe, adam])
    db.session.flush()
    db.session.add_all([Membership(account_id=kit.account.id, user_id=zoe.id, role="member"),
                        Membership(account_id=kit.account.id, user_id=adam.id, role="member")])
    _pin("P30").assigned_to_id = zoe.id
    db.session.commit()
    ended = ["P07", "P06", "P05", "P04", "P03"]

    def labels(page):
        return [row.pin.label for row in page.pins], [pin.label for pin, _state in page.ended]

    for asked, live in ((1, range(8, 33)), (2, range(33, 58)), (3, range(58, 60)), (99, range(58, 60))):
        page = dashboard.mailbox_page(kit.account.id, box.id, pins_page=asked)
        assert labels(page) == ([f"P{n:02d}" for n in live], ended), asked
        assert page.pins_total == 52
    assert [state for _pin_row, state in page.ended] == ["removed"] * 5
    whole = dashboard.mailbox_page(kit.account.id, box.id)
    assert labels(whole) == ([f"P{n:02d}" for n in range(8, 60)], ended)
    none = dashboard.mailbox_page(kit.account.id, box.id, pins_slice=(0, 0))
    assert labels(none) == ([], ended)
    names = [name for _id, name in whole.members]
    assert names == sorted([kit.user.display_name or kit.user.email, ZOE, "adam@example.com"], key=str.lower)
    assert dict(whole.members)[zoe.id] == ZOE and all(isinstance(uid, uuid.UUID) for uid, _ in whole.members)
    assert [row.owner for row in whole.pins if row.pin.label == "P30"] == [ZOE]
