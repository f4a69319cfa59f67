"""household_changes.heartbeats: a gateway's heartbeat moves its own count, not the one every
polled part follows; gateways.online_since: the heartbeat that brings a gateway online moves
that count

Revision ID: a1b2c3d4e5f7
Revises: e3f4a5b6c7d8
Create Date: 2026-12-07 03:30:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'a1b2c3d4e5f7'
down_revision = 'e3f4a5b6c7d8'
branch_labels = None
depends_on = None

# Frozen as this revision makes them (portal/models/changes.py keeps the current ones;
# tests/integration/test_migrations.py checks they agree). The function household_changed
# comes from d1e2f3a4b5c6. An update of any gateway column but last_heartbeat_at moves the
# count; an update of last_heartbeat_at moves heartbeats.
COUNTED = ("id, account_id, name, public_key, key_generated, protocol, command_counter, status, progress, "
           "last_error, thing_id, thing_key_enc, channel_id, online_since, settings_downloaded_at, created_at, "
           "created_by_id, key_state, key_progress, key_error, new_thing_id, new_thing_key_enc, old_thing_id, "
           "keys_replaced_at")
BUMP = "UPDATE household_changes SET count = count + 1 WHERE account_id = NEW.account_id"
BUMP_HEARD = "UPDATE household_changes SET heartbeats = heartbeats + 1 WHERE account_id = NEW.account_id"


def _deferred(name: str, events: str, function: str) -> str:
    return (f"CREATE CONSTRAINT TRIGGER {name} AFTER {events} ON gateways "
            f"DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {function}()")


def upgrade():
    op.add_column('household_changes', sa.Column('heartbeats', sa.BigInteger(), server_default='0', nullable=False))
    op.add_column('gateways', sa.Column('online_since', sa.DateTime(timezone=True), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE OR REPLACE FUNCTION household_heard() RETURNS trigger LANGUAGE plpgsql AS $$\n"
                   f"BEGIN\n{BUMP_HEARD};\nRETURN NULL;\nEND $$")
        op.execute("DROP TRIGGER household_changed ON gateways")
        op.execute(_deferred("household_changed", f"INSERT OR DELETE OR UPDATE OF {COUNTED}", "household_changed"))
        op.execute(_deferred("household_heard", "UPDATE OF last_heartbeat_at", "household_heard"))
        return
    op.execute("DROP TRIGGER household_changed_gateways_update")
    op.execute(f"CREATE TRIGGER household_changed_gateways_update AFTER UPDATE OF {COUNTED} ON gateways "
               f"BEGIN {BUMP}; END")
    op.execute(f"CREATE TRIGGER household_heard_gateways AFTER UPDATE OF last_heartbeat_at ON gateways "
               f"BEGIN {BUMP_HEARD}; END")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER household_heard ON gateways")
        op.execute("DROP TRIGGER household_changed ON gateways")
        op.execute(_deferred("household_changed", "INSERT OR UPDATE OR DELETE", "household_changed"))
        op.execute("DROP FUNCTION household_heard()")
    else:
        op.execute("DROP TRIGGER household_heard_gateways")
        op.execute("DROP TRIGGER household_changed_gateways_update")
        op.execute(f"CREATE TRIGGER household_changed_gateways_update AFTER UPDATE ON gateways BEGIN {BUMP}; END")
    op.drop_column('gateways', 'online_since')
    op.drop_column('household_changes', 'heartbeats')
