"""commands carry a value when it is not their device's current one (the old key of the
DELETE that makes a gateway forget a box which got a new key pair)

Revision ID: 8d4b2e6f1a73
Revises: 3f9c2b7d5e14
Create Date: 2026-12-04 16:30:00

"""
import sqlalchemy as sa
from alembic import op

revision = '8d4b2e6f1a73'
down_revision = '3f9c2b7d5e14'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('commands', schema=None) as batch_op:
        batch_op.add_column(sa.Column('value', sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table('commands', schema=None) as batch_op:
        batch_op.drop_column('value')
