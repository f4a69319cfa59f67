"""key offers kept for the member: the generated private key is stored encrypted in the
offer (bound to its row, device and member) instead of the login session's cookie

Revision ID: 3f8c2a9d6e14
Revises: 6b2e4f8a1c37
Create Date: 2026-12-05 10:00:00

The open offers of before held no key (it was in a cookie, which is no longer read), so
they are dropped: a member who had not downloaded yet makes a new key pair, as after a
logout before.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '3f8c2a9d6e14'
down_revision = '6b2e4f8a1c37'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('key_offers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_key_offers_login_session_id'))
    op.drop_table('key_offers')
    op.create_table('key_offers',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('device_kind', sa.String(length=16), nullable=False),
    sa.Column('device_id', sa.Uuid(), nullable=False),
    sa.Column('private_key_enc', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'],
                            name=op.f('fk_key_offers_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_key_offers')),
    sa.UniqueConstraint('user_id', 'device_kind', 'device_id', name=op.f('uq_key_offers_user_id'))
    )
    with op.batch_alter_table('key_offers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_key_offers_user_id'), ['user_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_key_offers_device_id'), ['device_id'], unique=False)


def downgrade():
    with op.batch_alter_table('key_offers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_key_offers_device_id'))
        batch_op.drop_index(batch_op.f('ix_key_offers_user_id'))
    op.drop_table('key_offers')
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
