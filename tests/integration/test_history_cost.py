"""A household's pages cost the database the same work however many PINs it has ended.
Ended PINs are kept (a box page lists its latest ones), and a household with parcel codes
ends a few a day. Before ix_pins_box_state, a box's page and live part read every PIN the
household ever had, and a gateway's page and the dashboard did so for each box: a box with
2,000 ended PINs took 18 ms to draw where a new one took 11."""
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from portal import crypto
from portal.extensions import db
from portal.models import ActivityEvent, Command, Pin, utcnow
from tests.plugins.queries import database_work_of

POLL = {"HX-Request": "true", "X-IoTLock-Poll": "1"}
STALE = {"If-None-Match": '"0.0.stale"'}


def end_pins(account_id, mailbox, how_many: int) -> None:
    """`how_many` parcel codes the box had, as rows: each added, used once and taken off
    (its two changes confirmed, its opening in the log), a minute before the last."""
    now = utcnow()
    pins, commands, events = [], [], []
    for n in range(how_many):
        pin_id, digits = uuid.uuid4(), str(100000 + n)
        added, ended = now - timedelta(days=30, minutes=n), now - timedelta(days=29, minutes=n)
        pins.append({
            "id": pin_id, "account_id": account_id, "mailbox_id": mailbox.id, "label": f"Parcel {n}",
            "digits_enc": crypto.encrypt(digits, table="pins", column="digits_enc", row_id=pin_id),
            "digits_digest": crypto.keyed_digest("pin", f"{mailbox.id}:{digits}:{pin_id}"), "status": "removed",
            "group_id": pin_id, "purpose": "courier", "ended": "used up", "created_at": added, "removed_at": ended})
        commands += [{"id": uuid.uuid4(), "account_id": account_id, "gateway_id": mailbox.gateway_id,
                      "mailbox_id": mailbox.id, "pin_id": pin_id, "action": action, "channel_key": "mailbox",
                      "channel_id": mailbox.channel_id, "state": "confirmed", "created_at": at}
                     for action, at in (("AUTH", added), ("UNAUTH", ended))]
        events.append({"account_id": account_id, "occurred_at": ended, "recorded_at": ended, "actor_kind": "box",
                       "actor_label": mailbox.name, "kind": "box.opened", "summary": f"Opened with Parcel {n}",
                       "gateway_id": mailbox.gateway_id, "mailbox_id": mailbox.id, "details": {}})
    db.session.execute(sa.insert(Pin), pins)
    db.session.execute(sa.insert(Command), commands)
    db.session.execute(sa.insert(ActivityEvent), events)
    db.session.commit()


def _analyzed() -> None:
    """PostgreSQL plans by the tables' sizes: tell it what they are now."""
    if db.engine.dialect.name == "postgresql":
        db.session.execute(sa.text("ANALYZE pins, commands, activity_events"))
        db.session.commit()


@pytest.fixture
def boxes(kit):
    """Two boxes on a gateway, each with live PINs and a month of parcels."""
    gateway, front = kit.ready_mailbox()
    _gateway, side = kit.ready_mailbox("Side gate", gateway=gateway)
    for box in (front, side):
        for n in range(3):
            kit.add_pin(box, f"Person {n}", f"{4100 + n}", run=False)
        end_pins(kit.account.id, box, MONTH)  # full lists already: events and the log a page each
    return gateway, front, side


MONTH = 60  # a month of parcels: more than a page of each list a page shows
ENDED = 1200
PAGES = {
    "box page": (lambda gateway, box: f"/mailboxes/{box.id}", {}),
    "box's live part": (lambda gateway, box: f"/mailboxes/{box.id}", {**POLL, **STALE}),
    "box's last page of PINs": (lambda gateway, box: f"/mailboxes/{box.id}?pins=last", {}),
    "box's events": (lambda gateway, box: f"/mailboxes/{box.id}/box", {**POLL, **STALE}),
    "gateway page": (lambda gateway, box: f"/gateways/{gateway.id}", {}),
    "dashboard": (lambda gateway, box: "/gateways/", {}),
    "activity log": (lambda gateway, box: "/activity", {}),
    "activity log of a box": (lambda gateway, box: f"/activity?mailbox={box.id}", {}),
    "activity log of a kind": (lambda gateway, box: "/activity?kind=box", {}),
}


def _work(app, client, path, headers) -> int:
    client.get(path, headers=headers)  # warm up: first-request work is not the page's
    app.extensions["drawn_parts"].clear()  # the page drawn, not a part kept
    work, response = database_work_of(client, path, headers=headers)
    assert response.status_code == 200, response.status_code
    return work


@pytest.mark.parametrize("page", PAGES)
def test_a_page_s_database_work_does_not_grow_with_the_household_s_ended_pins(app, kit, member_client, boxes,
                                                                             page):
    gateway, front, side = boxes
    url, headers = PAGES[page]
    path = url(gateway, front)
    _analyzed()
    new = _work(app, member_client, path, headers)
    for box in (front, side):  # a year of parcels on each box: PINs, changes, openings
        end_pins(kit.account.id, box, ENDED // 2)
    _analyzed()
    aged = _work(app, member_client, path, headers)
    # Reading the household's history would cost a row (a step) for each ended PIN at least.
    # Allowed: one for each 20 of them (PostgreSQL's plans change with the table's size).
    assert aged - new <= ENDED // 20, f"{page}: {new} before, {aged} with {ENDED} more ended PINs"
