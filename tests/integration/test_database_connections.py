"""PostgreSQL connections without a ping per request: a connection the database dropped while
it sat idle in the pool (a restart, pg_terminate_backend, a firewall) is replaced before a
request uses it, so the page is served as usual."""
from datetime import timedelta

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import utcnow
from tests.conftest import PG_URL
from tests.plugins.accounts import PASSWORD, Auth


def _terminate_every_connection_of(database: str) -> int:
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            return len(conn.execute(sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": database}).all())
    finally:
        admin.dispose()


@pytest.mark.postgres_only
@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_page_after_the_database_dropped_the_idle_connections_is_served(app, client, make_household,
                                                                        time_machine):
    make_household("owner@example.com", "Elm Street")
    assert Auth(client).login("owner@example.com", PASSWORD).status_code == 302
    assert client.get("/gateways/").status_code == 200
    db.session.remove()
    assert _terminate_every_connection_of(db.engine.url.database) >= 1
    time_machine.move_to(utcnow() + timedelta(seconds=app.config["DATABASE_PING_AFTER_IDLE_SECONDS"] + 1),
                         tick=False)

    response = client.get("/gateways/")

    assert response.status_code == 200
    assert "Elm Street" in response.get_data(as_text=True)
