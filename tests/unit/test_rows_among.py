"""rows.among: a fixed IN list compiled with the statement, not rendered at each execution,
and selecting what `in_` selects."""
import sqlalchemy as sa

from portal.services import dashboard
from portal.services.rows import among


def _table():
    metadata = sa.MetaData()
    return sa.Table("t", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("state", sa.String(16)))


def test_among_binds_one_parameter_per_value_and_needs_no_rendering_at_execution():
    t = _table()
    compiled = sa.select(t.c.id).where(among(t.c.state, ("a", "b", "c"))).compile()
    assert "POSTCOMPILE" not in str(compiled)
    assert sorted(compiled.params.values()) == ["a", "b", "c"]
    # The hot statements of the box page and the dashboard use it for their states
    # (what remains expanding there is a list that varies: the household's gateways, say).
    dialect = sa.create_engine("sqlite://").dialect
    for statement in (dashboard._PAGE_PINS_AND_ENDED, dashboard._PINS_COUNT, dashboard._GATEWAY_CHANGES,
                      dashboard._BOXES[(True, True)]):
        sql = str(statement.compile(dialect=dialect))
        assert "POSTCOMPILE_status" not in sql and "POSTCOMPILE_state" not in sql, sql


def test_among_selects_what_in_selects():
    t = _table()
    engine = sa.create_engine("sqlite://")
    t.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(t.insert(), [{"id": i, "state": s} for i, s in enumerate("abcdab")])
        wanted = ("a", "d")
        fixed = connection.execute(sa.select(t.c.id).where(among(t.c.state, wanted)).order_by(t.c.id)).scalars().all()
        expanding = connection.execute(sa.select(t.c.id).where(t.c.state.in_(wanted)).order_by(t.c.id)).scalars().all()
    assert fixed == expanding == [0, 3, 4]
