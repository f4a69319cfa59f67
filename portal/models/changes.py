"""A household's change count: one number the database moves with every change to what the
parts of its pages that poll show (services/versions.py), so that a poll asks "anything new?"
in one narrow statement instead of reading (and hashing) everything the part shows.

The database keeps it, by triggers on the tables the parts read; no code path can change a
box, a PIN, a change, an event or a member without moving it, raw SQL and bulk statements
included. On PostgreSQL the triggers are deferred to commit: the counter's row lock is the
last a transaction takes and is held only while it commits, so two transactions of one
household queue there instead of locking each other's rows in opposite orders; and a
transaction moves a household's count once however many of its rows it changed (SQLite:
once per row, which costs it little). The count only ever grows; its value means nothing
beyond "not what it was".

A gateway's heartbeat (every 30 s) moves a second number, `heartbeats`, and not the count:
only the parts that show when a gateway was last heard (the dashboard, a gateway's page)
follow it, so a box page's parts are not drawn again twice a minute for a heartbeat that
changes nothing they show. A heartbeat that brings a gateway online writes its
`online_since` too, which moves the count (services/device_reports.py)."""
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from portal.models.base import Base


class HouseholdChanges(Base):
    __tablename__ = "household_changes"

    account_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    count: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    heartbeats: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")


# Every change to these tables' rows moves the count of the household named by account_id.
# (gateway_key_holders: former members who still hold a gateway's keys, on the dashboard.)
WATCHED = ("mailboxes", "gateways", "pins", "commands", "activity_events", "memberships", "gateway_key_holders")
# Columns whose updates move `heartbeats` instead of the count: an update of any other
# column moves the count (a gateway's update trigger lists the other columns).
HEARTBEAT_COLUMNS = {"gateways": ("last_heartbeat_at",)}
# What the part shows of the household itself and of its members.
ACCOUNT_COLUMNS = ("name", "time_zone")
USER_COLUMNS = ("display_name", "email")

_BUMP = "UPDATE household_changes SET count = count + 1 WHERE account_id = {row}.account_id"
# PostgreSQL: once per transaction and household, not once per row. A deferred trigger runs
# for every row at commit, and each UPDATE of the one count row in one transaction leaves a
# version behind that the next must step over: 10,000 rows deleted at once took 1.6-3.7 s
# (7 ms without). The transaction remembers the household it last moved (a setting local to
# it), so a bulk change of one household moves its count once.
SETTING = "iotlock.household_changed"
_BUMP_ONCE = f"""DECLARE
  household uuid;
BEGIN
IF TG_OP = 'DELETE' THEN household := OLD.account_id; ELSE household := NEW.account_id; END IF;
IF current_setting('{SETTING}', true) IS DISTINCT FROM household::text THEN
  UPDATE household_changes SET count = count + 1 WHERE account_id = household;
  PERFORM set_config('{SETTING}', household::text, true);
END IF;
RETURN NULL;
END"""
_BUMP_HEARD = "UPDATE household_changes SET heartbeats = heartbeats + 1 WHERE account_id = NEW.account_id"
_BUMP_ACCOUNT = "UPDATE household_changes SET count = count + 1 WHERE account_id = NEW.id"
_BUMP_MEMBER = ("UPDATE household_changes SET count = count + 1 "
                "WHERE account_id IN (SELECT account_id FROM memberships WHERE user_id = NEW.id)")
_START = "INSERT INTO household_changes (account_id, count) VALUES (NEW.id, 0)"


def _counted_columns(table: str) -> str:
    """The columns of `table` whose updates move the count: all but its heartbeat columns."""
    return ", ".join(c.name for c in Base.metadata.tables[table].columns if c.name not in HEARTBEAT_COLUMNS[table])


def _postgresql() -> list[str]:
    def function(name: str, body: str) -> str:
        return f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n{body} $$"

    def block(body: str) -> str:
        return f"BEGIN\n{body}\nRETURN NULL;\nEND"

    def deferred(name: str, events: str, table: str, function_name: str) -> str:
        return (f"CREATE CONSTRAINT TRIGGER {name} AFTER {events} ON {table} "
                f"DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {function_name}()")

    statements = [
        function("household_changed", _BUMP_ONCE),
        function("household_account_changed", block(_BUMP_ACCOUNT + ";")),
        function("household_member_changed", block(_BUMP_MEMBER + ";")),
        function("household_started", block(_START + " ON CONFLICT (account_id) DO NOTHING;")),
        function("household_heard", block(_BUMP_HEARD + ";")),
        "CREATE TRIGGER household_started AFTER INSERT ON accounts FOR EACH ROW EXECUTE FUNCTION household_started()",
        deferred("household_changed", f"UPDATE OF {', '.join(ACCOUNT_COLUMNS)}", "accounts",
                 "household_account_changed"),
        deferred("household_changed", f"UPDATE OF {', '.join(USER_COLUMNS)}", "users", "household_member_changed"),
    ]
    for table in WATCHED:
        if table in HEARTBEAT_COLUMNS:
            statements += [
                deferred("household_changed", f"INSERT OR DELETE OR UPDATE OF {_counted_columns(table)}", table,
                         "household_changed"),
                deferred("household_heard", f"UPDATE OF {', '.join(HEARTBEAT_COLUMNS[table])}", table,
                         "household_heard"),
            ]
        else:
            statements.append(deferred("household_changed", "INSERT OR UPDATE OR DELETE", table, "household_changed"))
    return statements


def _sqlite() -> list[str]:
    def trigger(name: str, event: str, table: str, body: str) -> str:
        return f"CREATE TRIGGER {name} AFTER {event} ON {table} BEGIN {body}; END"

    statements = [
        trigger("household_started", "INSERT", "accounts", "INSERT OR IGNORE" + _START[len("INSERT"):]),
        trigger("household_changed_accounts", f"UPDATE OF {', '.join(ACCOUNT_COLUMNS)}", "accounts", _BUMP_ACCOUNT),
        trigger("household_changed_users", f"UPDATE OF {', '.join(USER_COLUMNS)}", "users", _BUMP_MEMBER),
    ]
    for table in WATCHED:
        quiet = HEARTBEAT_COLUMNS.get(table)
        for event in ("INSERT", "UPDATE", "DELETE"):
            when = f"UPDATE OF {_counted_columns(table)}" if quiet and event == "UPDATE" else event
            statements.append(trigger(f"household_changed_{table}_{event.lower()}", when, table,
                                      _BUMP.format(row="OLD" if event == "DELETE" else "NEW")))
        if quiet:
            statements.append(trigger(f"household_heard_{table}", f"UPDATE OF {', '.join(quiet)}", table, _BUMP_HEARD))
    return statements


def trigger_statements(dialect: str) -> list[str]:
    """The statements that make the database keep the counts, as create_all makes them (the
    migration keeps its own copy; tests/integration/test_migrations.py checks they agree)."""
    return _postgresql() if dialect == "postgresql" else _sqlite()


@sa.event.listens_for(Base.metadata, "after_create")
def _install(target, connection, **kw) -> None:
    """create_all (the tests, the benchmarks' seeded databases) makes the triggers with the
    tables, as the migration does."""
    if HouseholdChanges.__table__ in kw.get("tables", target.sorted_tables):
        for statement in trigger_statements(connection.dialect.name):
            connection.exec_driver_sql(statement)
