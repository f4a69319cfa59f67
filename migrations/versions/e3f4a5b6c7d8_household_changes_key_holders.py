"""household_changes: who holds a gateway's keys moves the count too (the dashboard and a
gateway's page show former members who still have them, and now answer 304 while their
version holds)

Revision ID: e3f4a5b6c7d8
Revises: d1e2f3a4b5c6
Create Date: 2026-12-06 21:30:00.000000

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = 'e3f4a5b6c7d8'
down_revision = 'd1e2f3a4b5c6'
branch_labels = None
depends_on = None

# Frozen as this revision makes them (portal/models/changes.py keeps the current ones). The
# function household_changed comes from d1e2f3a4b5c6.
TABLE = "gateway_key_holders"
BUMP = "UPDATE household_changes SET count = count + 1 WHERE account_id = {row}.account_id"
EVENTS = ("INSERT", "UPDATE", "DELETE")


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"CREATE CONSTRAINT TRIGGER household_changed AFTER INSERT OR UPDATE OR DELETE ON {TABLE} "
                   "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION household_changed()")
        return
    for event in EVENTS:
        op.execute(f"CREATE TRIGGER household_changed_{TABLE}_{event.lower()} AFTER {event} ON {TABLE} "
                   f"BEGIN {BUMP.format(row='OLD' if event == 'DELETE' else 'NEW')}; END")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS household_changed ON {TABLE}")
        return
    for event in EVENTS:
        op.execute(f"DROP TRIGGER IF EXISTS household_changed_{TABLE}_{event.lower()}")
