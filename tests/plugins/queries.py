"""Counting the SQL statements a request makes (pages cost a fixed number, however many
devices a household has)."""
from sqlalchemy import event

from portal.extensions import db


def statements_of(client, path: str, **kwargs):
    """(how many statements one GET of `path` sent to the database, the response)."""
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        response = client.get(path, **kwargs)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    return len(statements), response
