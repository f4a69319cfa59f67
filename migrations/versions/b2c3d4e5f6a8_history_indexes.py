"""history indexes: pins by household, box, state and ending (ix_pins_box_state) in place of
the two by household and by box; commands by household, box and action
(ix_commands_account_box_action) in place of the one by household. A box's pages then read
what they show, not every PIN and change the household ever had (issue 15: ended PINs and
their changes are kept, and a box's page grew with them)

Revision ID: b2c3d4e5f6a8
Revises: a1b2c3d4e5f7
Create Date: 2026-12-08 02:45:00.000000

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = 'b2c3d4e5f6a8'
down_revision = 'a1b2c3d4e5f7'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('pins', schema=None) as batch_op:
        batch_op.create_index('ix_pins_box_state', ['account_id', 'mailbox_id', 'status', 'removed_at', 'id'],
                              unique=False)
        batch_op.drop_index(batch_op.f('ix_pins_mailbox_id'))
        batch_op.drop_index(batch_op.f('ix_pins_account_id'))
    with op.batch_alter_table('commands', schema=None) as batch_op:
        batch_op.create_index('ix_commands_account_box_action', ['account_id', 'mailbox_id', 'action', 'created_at'],
                              unique=False)
        batch_op.drop_index(batch_op.f('ix_commands_account_id'))


def downgrade():
    with op.batch_alter_table('commands', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_commands_account_id'), ['account_id'], unique=False)
        batch_op.drop_index('ix_commands_account_box_action')
    with op.batch_alter_table('pins', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pins_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_pins_mailbox_id'), ['mailbox_id'], unique=False)
        batch_op.drop_index('ix_pins_box_state')
