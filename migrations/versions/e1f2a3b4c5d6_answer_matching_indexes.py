"""answer matching indexes: a device answer finds its command by index (issue 15)

Revision ID: e1f2a3b4c5d6
Revises: d5e8f1a2b3c4
Create Date: 2026-12-05 05:15:00.000000

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = 'e1f2a3b4c5d6'
down_revision = 'd5e8f1a2b3c4'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('pins', schema=None) as batch_op:
        batch_op.create_index('ix_pins_mailbox_ref', ['mailbox_id', 'ref'], unique=False)
    with op.batch_alter_table('commands', schema=None) as batch_op:
        batch_op.create_index('ix_commands_gateway_action_state', ['gateway_id', 'action', 'state'], unique=False)


def downgrade():
    with op.batch_alter_table('commands', schema=None) as batch_op:
        batch_op.drop_index('ix_commands_gateway_action_state')
    with op.batch_alter_table('pins', schema=None) as batch_op:
        batch_op.drop_index('ix_pins_mailbox_ref')
