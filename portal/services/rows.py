"""Plain rows for the hot read paths: a statement built once (module level, with bound
parameters) executed through the session's connection. The session's ORM execution layer
costs as much as the query itself for a few columns; these rows are tuples, never objects."""
import sqlalchemy as sa
from sqlalchemy import orm

from portal.extensions import db


def among(column: sa.ColumnElement | orm.QueryableAttribute, values: tuple) -> sa.ColumnElement[bool]:
    """`column IN (values)` for a fixed tuple of values, with a bound parameter of its own for
    each: compiled once and cached with the statement. `column.in_(values)` makes one
    "expanding" parameter, whose SQL is rendered again at every execution (20-25 us of a
    statement on SQLite, for a hot statement that runs on every poll)."""
    return column.in_([sa.bindparam(None, value, type_=column.type) for value in values])


def read(statement: sa.Executable, params: dict | None = None) -> sa.CursorResult:
    """Execute `statement` in the request's transaction, after writing out what the session
    holds unsaved (as the session's own queries do), so the rows see the request's changes."""
    session = db.session()
    session.flush()
    return session.connection().execute(statement, params or {})
