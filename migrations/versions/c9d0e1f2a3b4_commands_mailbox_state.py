"""commands (mailbox_id, state): the dashboard counts a listed box's changes on their way
and failed by index, however long the box's history (issue 15)

Revision ID: c9d0e1f2a3b4
Revises: b8d9e0f1a2c3
Create Date: 2026-12-05 19:05:00.000000

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = 'c9d0e1f2a3b4'
down_revision = 'b8d9e0f1a2c3'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('commands', schema=None) as batch_op:
        batch_op.create_index('ix_commands_mailbox_state', ['mailbox_id', 'state'], unique=False)


def downgrade():
    with op.batch_alter_table('commands', schema=None) as batch_op:
        batch_op.drop_index('ix_commands_mailbox_state')
