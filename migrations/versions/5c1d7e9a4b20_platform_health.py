"""platform health: StreamIoT up or down, shared by every worker (portal/jobs/platform.py);
when a queued command is tried next

Revision ID: 5c1d7e9a4b20
Revises: 5c1d2e7f9a30
Create Date: 2026-12-04 15:30:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '5c1d7e9a4b20'
down_revision = '5c1d2e7f9a30'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('platform_health',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('state', sa.String(length=8), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('down_since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('probes', sa.Integer(), nullable=False),
    sa.Column('next_probe_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('probe_interval', sa.Float(), nullable=False),
    sa.Column('probe_by', sa.String(length=64), nullable=True),
    sa.Column('probe_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('up_since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_platform_health'))
    )
    with op.batch_alter_table('commands', schema=None) as batch_op:
        batch_op.add_column(sa.Column('retry_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('commands', schema=None) as batch_op:
        batch_op.drop_column('retry_at')
    op.drop_table('platform_health')
