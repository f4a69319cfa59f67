"""activity box order: a box's events indexed newest first with the id that breaks ties
(mailbox_id, occurred_at, id), so the dashboard's newest event per box is one index probe
however long the household's history (issue 15, benchmarks/scale.py)

Revision ID: a7c8d9e0f1a2
Revises: f2a3b4c5d6e7
Create Date: 2026-12-05 09:00:00.000000

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = 'a7c8d9e0f1a2'
down_revision = 'f2a3b4c5d6e7'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('activity_events', schema=None) as batch_op:
        batch_op.drop_index('ix_activity_mailbox_time')
        batch_op.create_index('ix_activity_mailbox_time', ['mailbox_id', 'occurred_at', 'id'], unique=False)


def downgrade():
    with op.batch_alter_table('activity_events', schema=None) as batch_op:
        batch_op.drop_index('ix_activity_mailbox_time')
        batch_op.create_index('ix_activity_mailbox_time', ['mailbox_id', 'occurred_at'], unique=False)
