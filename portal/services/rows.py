"""Plain rows for the hot read paths: a statement built once (module level, with bound
parameters) executed through the session's connection. The session's ORM execution layer
costs as much as the query itself for a few columns; these rows are tuples, never objects."""
import sqlalchemy as sa

from portal.extensions import db


def read(statement: sa.Executable, params: dict | None = None) -> sa.CursorResult:
    """Execute `statement` in the request's transaction, after writing out what the session
    holds unsaved (as the session's own queries do), so the rows see the request's changes."""
    session = db.session()
    session.flush()
    return session.connection().execute(statement, params or {})
