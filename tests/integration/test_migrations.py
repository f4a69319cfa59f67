"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL,
so `make run` on a fresh machine gets the same tables (and triggers) the tests use."""
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from portal.extensions import db


def _fresh_schema(app):
    db.session.remove()
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
        else:
            db.drop_all()
            conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))


def _triggers() -> set[tuple[str, ...]]:
    with db.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            rows = conn.execute(sa.text("SELECT tgname, tgrelid::regclass::text, pg_get_triggerdef(oid) "
                                        "FROM pg_trigger WHERE NOT tgisinternal"))
        else:
            rows = conn.execute(sa.text("SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger'"))
        return {tuple(row) for row in rows}


# The support search's trigram indexes exist on PostgreSQL only (portal/models/base.py).
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based index")
def test_migrations_match_the_models(app):
    made_by_models = _triggers()  # the app's schema comes from create_all
    assert {name for name, *_ in made_by_models} >= {"household_started"}
    _fresh_schema(app)
    try:
        upgrade()
        assert _triggers() == made_by_models
        with db.engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "render_as_batch": True}
            )
            diff = compare_metadata(context, db.metadata)
        assert diff == []
        downgrade(revision="base")
        assert sa.inspect(db.engine).get_table_names() in ([], ["alembic_version"])
    finally:
        _fresh_schema(app)
        db.create_all()
