"""Counting the SQL statements a request makes (pages cost a fixed number, however many
devices a household has), and the work the database does for them (however long its
history)."""
from sqlalchemy import event

from portal.extensions import db


def statements_of(client, path: str, **kwargs):
    """(how many statements one GET of `path` sent to the database, the response)."""
    statements, response = _sent(client, path, **kwargs)
    return len(statements), response


def _sent(client, path: str, **kwargs):
    """([(statement, parameters)] one GET of `path` sent to the database, the response)."""
    statements: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        response = client.get(path, **kwargs)
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    return statements, response


def database_work_of(client, path: str, **kwargs):
    """(the work the database did for the reads of one GET of `path`, the response): its
    SELECTs replayed, on SQLite the virtual machine's steps, on PostgreSQL the rows its
    scans visited (EXPLAIN ANALYZE). Both count rows read, not time, so a busy machine
    moves neither; on PostgreSQL, ANALYZE the tables first (the plan follows their sizes)."""
    statements, response = _sent(client, path, **kwargs)
    reads = [(statement, parameters) for statement, parameters in statements
             if statement.lstrip().upper().startswith("SELECT")]
    raw = db.engine.raw_connection()
    try:
        if db.engine.dialect.name == "sqlite":
            return _sqlite_steps(raw.driver_connection, reads), response
        return _postgres_rows(raw.driver_connection, reads), response
    finally:
        raw.close()


def _sqlite_steps(connection, reads) -> int:
    steps = 0

    def step() -> int:
        nonlocal steps
        steps += 1
        return 0  # go on

    connection.set_progress_handler(step, 1)
    try:
        for statement, parameters in reads:
            connection.execute(statement, parameters).fetchall()
    finally:
        connection.set_progress_handler(None, 1)
    return steps


def _postgres_rows(connection, reads) -> int:
    rows = 0
    with connection.cursor() as cursor:
        for statement, parameters in reads:
            cursor.execute("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) " + statement, parameters, prepare=False)
            [plan] = cursor.fetchone()[0]  # psycopg parses EXPLAIN's JSON
            rows += _visited(plan["Plan"])
    connection.rollback()
    return rows


def _visited(node: dict) -> int:
    """The rows the scans under `node` read from tables: kept or filtered out, each loop."""
    here = 0
    if "Relation Name" in node:
        read = node["Actual Rows"] + node.get("Rows Removed by Filter", 0) + node.get("Rows Removed by Index Recheck", 0)
        here = read * node["Actual Loops"]
    return here + sum(_visited(child) for child in node.get("Plans", ()))
