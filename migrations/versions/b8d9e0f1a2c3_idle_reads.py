"""idle_reads: when the idle sweep last took each linked household, shared by every worker
process, so extra workers share the sweep instead of repeating it

Revision ID: b8d9e0f1a2c3
Revises: a7c8d9e0f1a2
Create Date: 2026-12-05 18:30:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'b8d9e0f1a2c3'
down_revision = 'a7c8d9e0f1a2'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('idle_reads',
    sa.Column('account_id', sa.Uuid(), nullable=False),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_idle_reads_account_id_accounts'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id', name=op.f('pk_idle_reads'))
    )
    with op.batch_alter_table('idle_reads', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_idle_reads_read_at'), ['read_at'], unique=False)


def downgrade():
    with op.batch_alter_table('idle_reads', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_idle_reads_read_at'))

    op.drop_table('idle_reads')
