"""household_changes: a count per household the database moves on every change a box page's
live part shows (triggers), so an unchanged poll reads one number

Revision ID: d1e2f3a4b5c6
Revises: c9d0e1f2a3b4
Create Date: 2026-12-06 08:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'd1e2f3a4b5c6'
down_revision = 'c9d0e1f2a3b4'
branch_labels = None
depends_on = None

# The triggers as this revision makes them, frozen here (portal/models/changes.py keeps the
# current ones for create_all; a later change to them is a revision of its own).
WATCHED = ("mailboxes", "gateways", "pins", "commands", "activity_events", "memberships")
BUMP = "UPDATE household_changes SET count = count + 1 WHERE account_id = {row}.account_id"
BUMP_ACCOUNT = "UPDATE household_changes SET count = count + 1 WHERE account_id = NEW.id"
BUMP_MEMBER = ("UPDATE household_changes SET count = count + 1 "
               "WHERE account_id IN (SELECT account_id FROM memberships WHERE user_id = NEW.id)")
START = "INTO household_changes (account_id, count) VALUES (NEW.id, 0)"
# Once per transaction and household (a setting local to the transaction remembers the last).
BUMP_ONCE = """DECLARE
  household uuid;
BEGIN
IF TG_OP = 'DELETE' THEN household := OLD.account_id; ELSE household := NEW.account_id; END IF;
IF current_setting('iotlock.household_changed', true) IS DISTINCT FROM household::text THEN
  UPDATE household_changes SET count = count + 1 WHERE account_id = household;
  PERFORM set_config('iotlock.household_changed', household::text, true);
END IF;
RETURN NULL;
END"""
FUNCTIONS = {
    "household_changed": BUMP_ONCE,
    "household_account_changed": f"BEGIN\n{BUMP_ACCOUNT};\nRETURN NULL;\nEND",
    "household_member_changed": f"BEGIN\n{BUMP_MEMBER};\nRETURN NULL;\nEND",
    "household_started": f"BEGIN\nINSERT {START} ON CONFLICT (account_id) DO NOTHING;\nRETURN NULL;\nEND",
}


def _postgresql() -> list[str]:
    def deferred(events: str, table: str, function: str) -> str:
        return (f"CREATE CONSTRAINT TRIGGER household_changed AFTER {events} ON {table} "
                f"DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {function}()")

    statements = [f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n{body} $$"
                  for name, body in FUNCTIONS.items()]
    statements += [
        "CREATE TRIGGER household_started AFTER INSERT ON accounts FOR EACH ROW EXECUTE FUNCTION household_started()",
        deferred("UPDATE OF name, time_zone", "accounts", "household_account_changed"),
        deferred("UPDATE OF display_name, email", "users", "household_member_changed"),
    ]
    return statements + [deferred("INSERT OR UPDATE OR DELETE", table, "household_changed") for table in WATCHED]


def _sqlite() -> list[str]:
    statements = [
        f"CREATE TRIGGER household_started AFTER INSERT ON accounts BEGIN INSERT OR IGNORE {START}; END",
        f"CREATE TRIGGER household_changed_accounts AFTER UPDATE OF name, time_zone ON accounts "
        f"BEGIN {BUMP_ACCOUNT}; END",
        f"CREATE TRIGGER household_changed_users AFTER UPDATE OF display_name, email ON users BEGIN {BUMP_MEMBER}; END",
    ]
    return statements + [
        f"CREATE TRIGGER household_changed_{table}_{event.lower()} AFTER {event} ON {table} "
        f"BEGIN {BUMP.format(row='OLD' if event == 'DELETE' else 'NEW')}; END"
        for table in WATCHED for event in ("INSERT", "UPDATE", "DELETE")
    ]


def _drops() -> list[str]:
    if op.get_bind().dialect.name == "postgresql":
        return ([f"DROP TRIGGER IF EXISTS household_changed ON {table}" for table in (*WATCHED, "accounts", "users")]
                + ["DROP TRIGGER IF EXISTS household_started ON accounts"]
                + [f"DROP FUNCTION IF EXISTS {name}()" for name in FUNCTIONS])
    names = ["household_started", "household_changed_accounts", "household_changed_users"]
    names += [f"household_changed_{table}_{event}" for table in WATCHED for event in ("insert", "update", "delete")]
    return [f"DROP TRIGGER IF EXISTS {name}" for name in names]


def upgrade():
    op.create_table(
        'household_changes',
        sa.Column('account_id', sa.Uuid(), nullable=False),
        sa.Column('count', sa.BigInteger(), server_default='0', nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('account_id'),
    )
    op.execute("INSERT INTO household_changes (account_id, count) SELECT id, 0 FROM accounts")
    for statement in _postgresql() if op.get_bind().dialect.name == "postgresql" else _sqlite():
        op.execute(statement)


def downgrade():
    for statement in _drops():
        op.execute(statement)
    op.drop_table('household_changes')
