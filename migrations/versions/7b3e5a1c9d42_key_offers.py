"""key offers: a generated private key is downloadable once per offer, server-side

Revision ID: 7b3e5a1c9d42
Revises: 7e3a91c0d5b2
Create Date: 2026-12-04 16:00:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '7b3e5a1c9d42'
down_revision = '7e3a91c0d5b2'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('key_offers',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('login_session_id', sa.Uuid(), nullable=False),
    sa.Column('device_kind', sa.String(length=16), nullable=False),
    sa.Column('device_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['login_session_id'], ['login_sessions.id'],
                            name=op.f('fk_key_offers_login_session_id_login_sessions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_key_offers')),
    sa.UniqueConstraint('login_session_id', 'device_kind', 'device_id', name=op.f('uq_key_offers_login_session_id'))
    )
    with op.batch_alter_table('key_offers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_key_offers_login_session_id'), ['login_session_id'], unique=False)


def downgrade():
    with op.batch_alter_table('key_offers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_key_offers_login_session_id'))
    op.drop_table('key_offers')
