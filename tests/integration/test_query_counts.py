"""The dashboard, a gateway page, a mailbox page and the activity log cost the same number of
SQL queries for a household with one box as for one with 50 boxes of 10 PINs each, and a
support search the same for one household found as for a full page (and lazy relationship
loads raise in tests, so nothing can sneak in a query per row)."""
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from portal import crypto
from portal.extensions import db
from portal.jobs import outbox
from portal.models import ActivityEvent, Command, Gateway, Job, Mailbox, Membership, Pin, utcnow
from portal.services import api_tokens, pins
from portal.services.errors import ValidationFailed
from tests.plugins.accounts import PASSWORD, Auth
from tests.plugins.queries import statements_of
from tests.plugins.support import StaffHelper, isolated_client
from tests.plugins.text import visible_text

PIN_STATES = [("active", "confirmed"), ("adding", "queued"), ("adding", "sent"), ("adding", "failed"),
              ("removing", "sent")]


def _household_with(make_household, email, boxes, pins_per_box):
    """Rows made directly: a linked household with one gateway and its boxes and PINs."""
    user, account = make_household(email, f"House of {boxes}")
    account.link_state = "connected"
    gateway = Gateway(id=uuid.uuid4(), account_id=account.id, name="Hallway", public_key=crypto.generate_keypair()[0],
                      status="active", thing_id=str(uuid.uuid4()), channel_id=str(uuid.uuid4()),
                      progress={"thing": True, "channel": True, "connect": True, "key": True},
                      last_heartbeat_at=utcnow())
    db.session.add(gateway)
    db.session.flush()
    for action in ("CONNECT", "REGISTER"):
        db.session.add(Command(account_id=account.id, gateway_id=gateway.id, action=action, channel_key="gateway",
                               state="confirmed", channel_id=gateway.channel_id))
    mailboxes = []
    for b in range(boxes):
        mailbox = Mailbox(id=uuid.uuid4(), account_id=account.id, gateway_id=gateway.id, name=f"Box {b}",
                          public_key=crypto.generate_keypair()[0], status="active", channel_id=str(uuid.uuid4()),
                          progress={"channel": True, "connect": True, "add_sent": True, "mailbox_sent": True,
                                    "mailbox_confirmed": True})
        db.session.add(mailbox)
        db.session.flush()
        mailboxes.append(mailbox)
        for p in range(pins_per_box):
            status, state = PIN_STATES[p % len(PIN_STATES)]
            pin_id, command_id, digits = uuid.uuid4(), uuid.uuid4(), str(20000 + 37 * p)
            # Each PIN in a group of its own, as pins.add_pin makes a PIN for one box.
            db.session.add(Pin(id=pin_id, account_id=account.id, mailbox_id=mailbox.id, label=f"Person {p}",
                               group_id=uuid.uuid4(),
                               digits_enc=crypto.encrypt(digits, table="pins", column="digits_enc", row_id=pin_id),
                               digits_digest=crypto.keyed_digest("pin", f"{mailbox.id}:{digits}"), status=status,
                               command_id=command_id))
            db.session.flush()
            db.session.add(Command(id=command_id, account_id=account.id, gateway_id=gateway.id,
                                   mailbox_id=mailbox.id, pin_id=pin_id,
                                   action="UNAUTH" if status == "removing" else "AUTH", channel_key="mailbox",
                                   state=state, reason="slots full" if state == "failed" else None))
        for _ in range(4):
            db.session.add(Command(account_id=account.id, gateway_id=gateway.id, mailbox_id=mailbox.id,
                                   action="UNLOCK", channel_key="mailbox", state="confirmed"))
        for _e in range(3):
            db.session.add(ActivityEvent(account_id=account.id, actor_kind="box", actor_label=mailbox.name,
                                         kind="box.closed", summary="Closed", gateway_id=gateway.id,
                                         mailbox_id=mailbox.id))
    db.session.commit()
    return user, gateway, mailboxes[-1]


# What each page costs now (docs/architecture.md): a change that reads more must say so here.
# "mailbox-poll": the live part polled after a change, with the version it showed (which no
# longer holds), as htmx asks: the household's mark then rides with the login's statement.
BUDGET = {"dashboard": 5, "gateway": 8, "mailbox": 7, "mailbox-live": 5, "mailbox-poll": 4, "mailbox-box": 3,
          "activity": 3, "activity-box-events": 3}


def _queries(app, client, path) -> int:
    client.get(path)  # warm up: first-request work (session touch, household choice) is not the page's
    app.extensions["drawn_parts"].clear()  # the page drawn, not a part kept (test_drawn_parts.py)
    count, response = statements_of(client, path)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return count


@pytest.fixture
def two_households(app, make_household):
    small = _household_with(make_household, "small@example.com", boxes=1, pins_per_box=1)
    big = _household_with(make_household, "big@example.com", boxes=50, pins_per_box=10)
    return small, big


def _client(app, user):
    auth = Auth(app.test_client())
    assert auth.login(user.email, PASSWORD).status_code == 302
    return auth.client


@pytest.mark.parametrize("page", ["dashboard", "gateway", "mailbox", "mailbox-live", "mailbox-poll", "mailbox-box",
                                  "activity", "activity-box-events"])
def test_a_page_costs_the_same_queries_for_one_box_and_for_fifty_boxes_of_ten_pins(app, two_households, page):
    counts = []
    for user, gateway, mailbox in two_households:
        path = {
            "dashboard": "/gateways/",
            "gateway": f"/gateways/{gateway.id}",
            "mailbox": f"/mailboxes/{mailbox.id}",
            "mailbox-live": f"/mailboxes/{mailbox.id}",
            "mailbox-poll": f"/mailboxes/{mailbox.id}",
            "mailbox-box": f"/mailboxes/{mailbox.id}/box",
            "activity": "/activity",
            "activity-box-events": f"/activity?kind=box&mailbox={mailbox.id}",
        }[page]
        client = _client(app, user)
        if page in ("mailbox-live", "mailbox-poll"):
            client.environ_base["HTTP_HX_REQUEST"] = "true"
        if page == "mailbox-poll":
            client.environ_base.update(HTTP_X_IOTLOCK_POLL="1", HTTP_IF_NONE_MATCH='"a version that no longer holds"')
        counts.append(_queries(app, client, path))
    small, big = counts
    assert small == big, f"{page}: {small} queries for 1 box, {big} for 50 boxes of 10 PINs"
    print(f"{page}: {small} queries ({db.engine.dialect.name})")
    assert small <= BUDGET[page], f"{page}: {small} queries, over its {BUDGET[page]}"


def test_a_box_page_reads_a_pin_s_twins_only_when_it_has_some(kit, member_client):
    """Every PIN has a group (pins.add_pin), most of them one box's alone: a box whose PINs
    are on no other box reads no twins; one added to two boxes costs the two statements that
    read its twins and their changes."""
    gateway, front = kit.ready_mailbox("Front box")
    _gw, side = kit.ready_mailbox("Side gate", gateway=gateway)
    path, part = f"/mailboxes/{front.id}", {"HX-Request": "true"}
    pins.add_pin(kit.account.id, [front.id], kit.user, label="Alone", digits="4821")
    member_client.get(path, headers=part)  # warm up: first-request work is not the part's
    alone, response = statements_of(member_client, path, headers=part)
    assert response.status_code == 200 and "Also on" not in visible_text(response.get_data(as_text=True))
    pins.add_pin(kit.account.id, [front.id, side.id], kit.user, label="Both", digits="7310")
    both, response = statements_of(member_client, path, headers=part)
    assert "Also on: Side gate" in visible_text(response.get_data(as_text=True))
    assert both == alone + 2, (alone, both)


def test_adding_a_pin_to_two_boxes_writes_each_row_once(kit):
    """Add-PIN saves its rows itself, one INSERT a table (deliveries.save_new_pins), not
    through the session's unit of work: each PIN is inserted with the id of its change, never
    updated after, and each change with the job that sends it, the jobs in the boxes' order
    (a gateway's jobs run in id order)."""
    gateway, front = kit.ready_mailbox("Front box")
    _gw, side = kit.ready_mailbox("Side gate", gateway=gateway)
    statements: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany):
        statements.append(" ".join(statement.split()[:3]))

    event.listen(db.engine, "before_cursor_execute", note)
    try:
        made = pins.add_pin(kit.account.id, [front.id, side.id], kit.user, label="Both", digits="7310")
    finally:
        event.remove(db.engine, "before_cursor_execute", note)
    inserts = [s for s in statements if s.startswith("INSERT INTO")]
    assert not [s for s in statements if s.startswith("UPDATE pins")], statements
    for table in ("pins", "commands", "activity_events"):
        assert inserts.count(f"INSERT INTO {table}") == 1, statements  # both boxes' in one
    # PostgreSQL: one; SQLite's RETURNING keeps no order, so SQLAlchemy inserts them one by one.
    assert inserts.count("INSERT INTO jobs") == (1 if db.engine.dialect.name == "postgresql" else 2), statements
    # The PINs came back as the session's objects, as read after their INSERT.
    assert [sa.inspect(pin).persistent for pin in made] == [True, True]
    assert [pin.mailbox_id for pin in made] == [front.id, side.id]
    assert [pin.uses for pin in made] == [0, 0]  # left to its default: loaded when read
    jobs = []
    for pin in made:
        command = db.session.get(Command, pin.command_id)
        assert (command.pin_id, command.mailbox_id, command.action, command.state) == (pin.id, pin.mailbox_id,
                                                                                        "AUTH", "queued")
        job = db.session.get(Job, command.job_id)
        assert (job.payload, job.target, job.state) == ({"command_id": str(command.id)}, f"gateway:{gateway.id}",
                                                        "queued")
        jobs.append(job.id)
    assert jobs == sorted(jobs)
    added = db.session.scalars(sa.select(ActivityEvent.mailbox_id).where(ActivityEvent.kind == "pin.added")
                               .order_by(ActivityEvent.id)).all()
    assert added == [front.id, side.id]


def test_adding_a_pin_wakes_the_worker_once_it_is_saved_and_not_when_refused(kit):
    """The jobs add-PIN saves itself wake an in-process worker at the commit, as enqueue's
    do; a refused add-PIN (digits taken) saves nothing and wakes nothing."""
    _gateway, mailbox = kit.ready_mailbox("Front box")
    outbox.wakeup.clear()
    pins.add_pin(kit.account.id, [mailbox.id], kit.user, label="Grandma", digits="4821")
    assert outbox.wakeup.is_set()
    outbox.wakeup.clear()
    jobs = db.session.scalar(sa.select(sa.func.count()).select_from(Job))
    with pytest.raises(ValidationFailed):
        pins.add_pin(kit.account.id, [mailbox.id], kit.user, label="Again", digits="4821")
    assert not outbox.wakeup.is_set()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Job)) == jobs


def test_the_api_reads_a_box_and_its_pins_without_their_events(kit, app):
    """A box and its PINs, as the API gives them, show none of the box's events: their reads
    read none (mailbox_page(events=0))."""
    _gateway, mailbox = kit.ready_mailbox("Front box")
    [pin] = pins.add_pin(kit.account.id, [mailbox.id], kit.user, label="Grandma", digits="4821")
    membership = db.session.scalars(sa.select(Membership).filter_by(user_id=kit.user.id)).one()
    _token, secret = api_tokens.create_token(membership, kit.user, name="counts", scopes=["read"])
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    for path in (f"/api/v1/boxes/{mailbox.id}", f"/api/v1/boxes/{mailbox.id}/pins", f"/api/v1/pins/{pin.id}"):
        client.get(path)  # warm up
        statements: list[str] = []

        def note(conn, cursor, statement, parameters, context, executemany, into=statements):
            into.append(statement)

        event.listen(db.engine, "before_cursor_execute", note)
        try:
            response = client.get(path)
        finally:
            event.remove(db.engine, "before_cursor_execute", note)
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
        assert statements and not [s for s in statements if "FROM activity_events" in s], (path, statements)


@pytest.mark.parametrize("part", ["mailbox-live", "dashboard", "gateway-live"])
def test_an_unchanged_poll_costs_one_statement_for_one_box_and_for_fifty(app, two_households, time_machine, part):
    """The answer most polls get: who is asking, read with the household's change count and
    StreamIoT's state (visitors.AtStart), against which the part's version holds: one
    statement."""
    # The clock stands still: the boxes were just added, and while their newest event is
    # young the part's words (and so its version) change every second.
    time_machine.move_to(utcnow(), tick=False)
    counts = []
    for user, gateway, mailbox in two_households:
        client, path = _client(app, user), {"mailbox-live": f"/mailboxes/{mailbox.id}", "dashboard": "/gateways/",
                                            "gateway-live": f"/gateways/{gateway.id}"}[part]
        headers = {"HX-Request": "true", "X-IoTLock-Poll": "1"}
        etag = client.get(path, headers=headers).headers["ETag"]
        count, response = statements_of(client, path, headers={**headers, "If-None-Match": etag})
        assert response.status_code == 304
        counts.append(count)
    assert counts == [1, 1], counts


def test_the_big_household_s_dashboard_lists_ten_boxes_a_gateway_and_its_page_all_fifty(app, two_households):
    (_, _, _), (user, gateway, mailbox) = two_households
    client = _client(app, user)
    dashboard = visible_text(client.get("/gateways/").get_data(as_text=True))
    shown = [f"Box {b}" for b in range(50) if f"Box {b} " in dashboard]
    assert shown == [f"Box {b}" for b in range(10)], shown  # the first ten, in the order they were added
    assert "50 Boxes" in dashboard  # the totals count every box, listed or not
    assert "See all 50 boxes (40 more)" in dashboard
    html = client.get("/gateways/").get_data(as_text=True)
    assert f'href="/gateways/{gateway.id}#boxes" aria-label="See all 50 boxes on Hallway"' in html
    gateway_page = visible_text(client.get(f"/gateways/{gateway.id}").get_data(as_text=True))
    assert all(f"Box {b} " in gateway_page for b in range(50)) and "See all" not in gateway_page
    page = client.get(f"/mailboxes/{mailbox.id}").get_data(as_text=True)
    assert page.count("••••••") == 10
    assert "20000" not in visible_text(page) and "20037" not in visible_text(page)


def test_a_support_search_costs_the_same_queries_for_one_household_as_for_a_full_page(app, make_household):
    for n in range(25):
        _household_with(make_household, f"owner{n:02d}@many.example", boxes=2, pins_per_box=1)
    _household_with(make_household, "solo@one.example", boxes=1, pins_per_box=1)
    client = isolated_client(app)
    StaffHelper(client).sign_in()
    one = _queries(app, client, "/support/?q=one.example")
    page = _queries(app, client, "/support/?q=many.example")
    assert "25 households match" in client.get("/support/?q=many.example").get_data(as_text=True)
    assert one == page, f"{one} queries for one household found, {page} for a page of 20"
