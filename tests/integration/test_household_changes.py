"""The household change count (portal/models/changes.py): the database moves it on every
change to what a box page's live part shows, whoever makes the change and however (services,
the worker, raw SQL), and only for the household the change belongs to; a gateway's heartbeat
moves the household's heartbeats count instead. On PostgreSQL it is
moved when a transaction commits, once however many rows it changed, so it never queues two
transactions of one household before then, a bulk change costs one step, and concurrent
commits never lose one."""
import threading

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import ActivityEvent, GatewayKeyHolder, HouseholdChanges, Membership, Pin, utcnow
from portal.models.changes import WATCHED


def _count(account_id) -> int:
    db.session.expire_all()
    return db.session.get(HouseholdChanges, account_id).count


def _counts(account_id) -> tuple[int, int]:
    """(count, heartbeats)."""
    db.session.expire_all()
    row = db.session.get(HouseholdChanges, account_id)
    return row.count, row.heartbeats


@pytest.fixture
def neighbour(make_household):
    _user, account = make_household("neighbour@example.com", "Next door")
    db.session.commit()
    return account


def test_a_new_household_gets_its_count_with_its_first_member(make_household):
    _user, account = make_household("new@example.com", "New home")
    db.session.commit()
    assert _count(account.id) == 1  # from zero, moved once by the owner's membership


@pytest.mark.parametrize("table", WATCHED)
def test_an_update_of_any_watched_row_moves_only_its_household_s_count(kit, neighbour, table):
    gateway, mailbox = kit.ready_mailbox()
    kit.add_pin(mailbox, "Grandma", "4821", run=False)
    kit.device(kit.add_gateway()).heartbeat()
    db.session.add(GatewayKeyHolder(account_id=kit.account.id, gateway_id=gateway.id, user_id=kit.user.id,
                                    email=kit.user.email))
    db.session.commit()
    here, there = _count(kit.account.id), _count(neighbour.id)
    rows_of = db.metadata.tables[table]
    rows = db.session.execute(sa.update(rows_of).where(rows_of.c.account_id == kit.account.id)
                              .values(account_id=rows_of.c.account_id)).rowcount
    db.session.commit()
    assert rows >= 1
    # Once for the transaction on PostgreSQL, once a row on SQLite.
    assert _count(kit.account.id) == here + (1 if db.engine.dialect.name == "postgresql" else rows)
    assert _count(neighbour.id) == there


def test_a_gateway_s_heartbeat_moves_only_the_heartbeats_count_and_any_other_column_the_count(kit, neighbour):
    gateway = kit.add_gateway()
    kit.device(gateway).heartbeat()
    kit.poll()
    db.session.commit()
    gateways = db.metadata.tables["gateways"]
    mine = gateways.c.id == gateway.id

    def moved(**values) -> tuple[int, int]:
        count, heartbeats = _counts(kit.account.id)
        db.session.execute(sa.update(gateways).where(mine).values(**values))  # raw SQL: the database does it
        db.session.commit()
        now_count, now_heartbeats = _counts(kit.account.id)
        return now_count - count, now_heartbeats - heartbeats

    there = _counts(neighbour.id)
    assert moved(last_heartbeat_at=utcnow()) == (0, 1)
    assert moved(name="Porch") == (1, 0)
    assert moved(online_since=utcnow()) == (1, 0)
    assert moved(last_heartbeat_at=utcnow(), status=gateways.c.status) == (1, 1)
    assert _counts(neighbour.id) == there


def test_adding_and_removing_rows_moves_the_count(kit, neighbour):
    gateway, mailbox = kit.ready_mailbox()
    there = _count(neighbour.id)
    before = _count(kit.account.id)
    pin = kit.add_pin(mailbox, "Grandma", "4821", run=False)
    assert _count(kit.account.id) > before
    before = _count(kit.account.id)
    db.session.add(ActivityEvent(account_id=kit.account.id, actor_kind="box", actor_label=mailbox.name,
                                 kind="box.closed", summary="Closed", gateway_id=gateway.id, mailbox_id=mailbox.id))
    db.session.commit()
    assert _count(kit.account.id) == before + 1
    before = _count(kit.account.id)
    db.session.execute(sa.delete(ActivityEvent).where(ActivityEvent.account_id == kit.account.id))
    db.session.commit()
    assert _count(kit.account.id) > before
    before = _count(kit.account.id)
    db.session.execute(sa.update(Pin).where(Pin.id == pin.id).values(command_id=None))
    db.session.execute(sa.delete(Pin).where(Pin.id == pin.id))
    db.session.commit()
    assert _count(kit.account.id) > before
    assert _count(neighbour.id) == there


def test_a_member_s_name_moves_the_count_of_each_of_their_households(kit, neighbour, add_member):
    user, _membership = add_member(neighbour, kit.user.email)  # one person in both households
    here, there = _count(kit.account.id), _count(neighbour.id)
    user.display_name = "Sam"
    db.session.commit()
    assert (_count(kit.account.id), _count(neighbour.id)) == (here + 1, there + 1)
    user.totp_last_counter = 7  # not shown on any box page
    db.session.commit()
    assert (_count(kit.account.id), _count(neighbour.id)) == (here + 1, there + 1)


def test_a_member_leaving_moves_the_count(kit, add_member):
    _user, membership = add_member(kit.account, "kim@example.com")
    before = _count(kit.account.id)
    db.session.delete(db.session.get(Membership, membership.id))
    db.session.commit()
    assert _count(kit.account.id) == before + 1


def test_the_household_s_zone_moves_its_count_and_its_link_bookkeeping_does_not(kit):
    before = _count(kit.account.id)
    kit.account.link_updated_at = kit.account.created_at
    db.session.commit()
    assert _count(kit.account.id) == before
    kit.account.time_zone = "Europe/Paris"
    db.session.commit()
    assert _count(kit.account.id) == before + 1


@pytest.mark.parametrize("backend", ["postgresql"])
def test_the_count_does_not_queue_a_household_s_transactions_before_they_commit(app, backend, kit):
    """Two transactions of one household write in opposite orders, interleaved: the first
    holds a PIN row while the second writes and commits. With the count moved at each write
    the second would wait for the first's lock on the count (lock_timeout: an error here);
    moved at commit, it does not wait."""
    _gateway, mailbox = kit.ready_mailbox()
    first_pin = kit.add_pin(mailbox, "A", "1357", run=False)
    second_pin = kit.add_pin(mailbox, "B", "2468", run=False)
    before = _count(kit.account.id)
    rename = sa.text("UPDATE pins SET label = :label WHERE id = :id")
    with db.engine.connect() as one, db.engine.connect() as two:
        for conn in (one, two):
            conn.exec_driver_sql("SET lock_timeout = '3s'")
            conn.commit()
        one.execute(rename, {"label": "A1", "id": first_pin.id})
        two.execute(rename, {"label": "B2", "id": second_pin.id})
        two.execute(rename, {"label": "C2", "id": second_pin.id})
        two.commit()
        one.execute(rename, {"label": "B1", "id": second_pin.id})
        one.commit()
    assert _count(kit.account.id) == before + 2  # once for each transaction


@pytest.mark.parametrize("backend", ["postgresql"])
def test_concurrent_commits_of_one_household_each_move_the_count(app, backend, kit):
    _gateway, mailbox = kit.ready_mailbox()
    made = [kit.add_pin(mailbox, f"P{n}", f"{3000 + n}", run=False) for n in range(8)]
    before = _count(kit.account.id)
    engine = db.engine
    start = threading.Barrier(len(made))
    failures = []

    def rename(pin_id):
        try:
            start.wait(10)
            for n in range(10):
                with engine.begin() as conn:
                    conn.execute(sa.text("UPDATE pins SET label = :label WHERE id = :id"),
                                 {"label": f"round {n}", "id": pin_id})
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=rename, args=(pin.id,)) for pin in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    assert _count(kit.account.id) == before + 80


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_bulk_change_of_one_household_moves_its_count_once_a_transaction(app, backend, kit, neighbour):
    """10,000 rows in one statement: one step, not 10,000 updates of one row at commit (those
    took 1.6-3.7 s to delete 10,000 events, against 7 ms without the count)."""
    rows = [{"account_id": kit.account.id, "actor_kind": "box", "actor_label": "Front box", "kind": "box.closed",
             "summary": "Closed"} for _ in range(10_000)]
    here, there = _count(kit.account.id), _count(neighbour.id)
    db.session.execute(sa.insert(ActivityEvent), rows)
    db.session.commit()
    assert _count(kit.account.id) == here + 1
    db.session.execute(sa.insert(ActivityEvent), rows[:2] + [{**rows[0], "account_id": neighbour.id}] + rows[:2])
    db.session.commit()  # ours, theirs, ours: each household moved, ours twice at most
    assert _count(kit.account.id) in (here + 2, here + 3) and _count(neighbour.id) == there + 1
    db.session.execute(sa.delete(ActivityEvent).where(ActivityEvent.account_id == kit.account.id))
    db.session.commit()
    assert _count(kit.account.id) in (here + 3, here + 4)
