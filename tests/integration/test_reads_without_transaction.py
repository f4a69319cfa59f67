"""PostgreSQL: a GET reads in autocommit (no BEGIN / ROLLBACK round trips around its
statements), and the first statement that writes or locks switches its connection back to a
transaction, which commits or rolls back as a whole. POSTs run in a transaction throughout."""
from datetime import timedelta

import pytest
import sqlalchemy as sa

from portal import _plain_read
from portal.extensions import db
from portal.models import Account, LoginSession, utcnow
from tests.plugins.accounts import PASSWORD, Auth


@pytest.fixture
def statements(app):
    """(first word, whether the connection was in autocommit) of each statement run."""
    seen: list[tuple[str, bool]] = []

    def record(conn, _cursor, statement, _parameters, _context, _executemany):
        seen.append((statement.split()[0].upper(), conn.connection.dbapi_connection.autocommit))

    sa.event.listen(db.engine, "before_cursor_execute", record)
    yield seen
    sa.event.remove(db.engine, "before_cursor_execute", record)


@pytest.fixture
def owner(client, make_household):
    _user, account = make_household("owner@example.com", "Elm Street")
    account_id = account.id
    assert Auth(client).login("owner@example.com", PASSWORD).status_code == 302
    client.get("/gateways/")  # the first page after login may write (a form token, the watch)
    db.session.remove()  # each request below starts with a session of its own, as served
    return account_id


def test_plain_reads_are_told_from_writes_and_locks():
    assert _plain_read("SELECT users.id FROM users WHERE users.id = %(id)s")
    assert _plain_read("  select 1")
    assert not _plain_read("SELECT jobs.id FROM jobs WHERE jobs.state = 'due' FOR UPDATE SKIP LOCKED")
    assert not _plain_read("SELECT id FROM pins FOR NO KEY UPDATE")
    assert not _plain_read("UPDATE login_sessions SET last_seen_at=%(now)s")
    assert not _plain_read("INSERT INTO activity_events (id) VALUES (%(id)s)")
    assert not _plain_read("WITH due AS (SELECT 1) UPDATE jobs SET state = 'running'")


@pytest.mark.postgres_only
@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_page_reads_in_autocommit(client, owner, statements):
    response = client.get("/gateways/")
    assert response.status_code == 200 and "Elm Street" in response.get_data(as_text=True)
    assert statements and all(word == "SELECT" and autocommit for word, autocommit in statements)


@pytest.mark.postgres_only
@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_write_in_a_get_runs_in_a_transaction_and_is_committed(client, owner, statements, time_machine):
    later = utcnow() + timedelta(seconds=120)  # past the minute after which a request notes the session used
    time_machine.move_to(later, tick=False)
    assert client.get("/gateways/").status_code == 200
    writes = [(word, autocommit) for word, autocommit in statements if word != "SELECT"]
    assert writes and all(not autocommit for _word, autocommit in writes)
    assert statements[0] == ("SELECT", True)  # the login lookup, before the first write
    db.session.remove()
    assert db.session.scalar(sa.select(sa.func.max(LoginSession.last_seen_at))) == later


@pytest.mark.postgres_only
@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_get_that_fails_after_writing_rolls_the_write_back(app, owner):
    with app.test_request_context("/gateways/", method="GET"):
        db.session.remove()
        app.preprocess_request()
        db.session.execute(sa.update(Account).where(Account.id == owner).values(name="Half done"))
        db.session.rollback()  # what the request's teardown does after an error
    db.session.remove()
    assert db.session.get(Account, owner).name == "Elm Street"


@pytest.mark.postgres_only
@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_post_runs_in_a_transaction_throughout(client, owner, statements):
    auth = Auth(client)
    csrf = auth.csrf("/settings")
    db.session.remove()
    statements.clear()
    response = client.post("/settings/household", data={"csrf_token": csrf, "household-name": "Oak Lane"})
    assert response.status_code == 302
    assert statements and not any(autocommit for _word, autocommit in statements)
    db.session.remove()
    assert db.session.get(Account, owner).name == "Oak Lane"


@pytest.mark.postgres_only
@pytest.mark.parametrize("backend", ["postgresql"])
def test_the_csv_export_streams_its_events_inside_a_transaction(client, owner, statements):
    response = client.get("/activity.csv")
    lines = response.get_data(as_text=True).splitlines()  # read while the cursor streams
    assert response.status_code == 200 and lines[0].startswith("time_utc,actor")
    assert ("SELECT", False) in statements  # the streamed SELECT, its server-side cursor in a transaction
