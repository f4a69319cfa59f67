"""The portal's psycopg cursor (portal/pgcursor.py): a result's description is built only
when something reads it, and then reads as psycopg's own."""
import psycopg
import psycopg._cursor_base
import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import Mailbox
from portal.pgcursor import Cursor, LazyDescription

pytestmark = pytest.mark.parametrize("backend", ["postgresql"])


@pytest.fixture
def columns_built(monkeypatch):
    """How many psycopg Column objects were built since the fixture began."""
    built = []
    real = psycopg._cursor_base.Column

    class Counted(real):
        def __init__(self, cursor, index):
            built.append(index)
            super().__init__(cursor, index)

    monkeypatch.setattr(psycopg._cursor_base, "Column", Counted)
    return built


def test_the_engine_s_cursors_describe_their_rows_as_psycopg_does(app, backend):
    with db.engine.connect() as connection:
        cursor = connection.connection.dbapi_connection.cursor()
        assert isinstance(cursor, Cursor)
        cursor.execute("SELECT 1 AS one, 'x'::text AS letter, now() AS moment")
        description = cursor.description
        assert isinstance(description, LazyDescription) and len(description) == 3
        expected = psycopg.Cursor.description.fget(cursor)
        assert [tuple(c) for c in description] == [tuple(c) for c in expected]
        assert (description[1].name, description[-1].type_display) == ("letter", "timestamptz")
        cursor.execute("SET LOCAL statement_timeout = 0")  # no rows: no description
        assert cursor.description is None
        cursor.close()


def test_a_description_read_after_the_cursor_moved_on_refuses_to_describe_the_new_result(app, backend):
    with db.engine.connect() as connection:
        cursor = connection.connection.dbapi_connection.cursor()
        cursor.execute("SELECT 1 AS one")
        stale = cursor.description
        cursor.execute("SELECT 2 AS two, 3 AS three")
        with pytest.raises(RuntimeError, match="no longer holds"):
            list(stale)
        cursor.close()


def test_a_statement_run_again_builds_no_column_descriptions(app, backend, columns_built):
    """SQLAlchemy reads the description of a statement it compiled before only to see that
    rows came back: the second run of the same SELECT builds no Column at all (psycopg's own
    cursor built one per column each time)."""
    statement = sa.select(*Mailbox.__table__.c).where(Mailbox.name == sa.bindparam("name"))
    with db.engine.connect() as connection:
        connection.execute(statement, {"name": "first"}).all()
        first = len(columns_built)
        rows = connection.execute(statement, {"name": "second"}).all()
    assert first >= len(Mailbox.__table__.c)  # the first run builds its result's metadata
    assert len(columns_built) == first and rows == []
