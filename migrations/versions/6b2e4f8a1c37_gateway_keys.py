"""gateway keys: who downloaded a gateway's settings (key holders), and the replacement of
its StreamIoT thing (key_state, its steps, the new and the old thing)

Revision ID: 6b2e4f8a1c37
Revises: 5c1d7e9a4b20
Create Date: 2026-12-04 15:30:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '6b2e4f8a1c37'
down_revision = '5c1d7e9a4b20'
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade():
    op.create_table('gateway_key_holders',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('account_id', sa.Uuid(), nullable=False),
    sa.Column('gateway_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=True),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('first_downloaded_at', _TS, nullable=False),
    sa.Column('last_downloaded_at', _TS, nullable=False),
    sa.Column('departed_at', _TS, nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'],
                            name=op.f('fk_gateway_key_holders_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['gateway_id'], ['gateways.id'],
                            name=op.f('fk_gateway_key_holders_gateway_id_gateways'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'],
                            name=op.f('fk_gateway_key_holders_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gateway_key_holders')),
    sa.UniqueConstraint('gateway_id', 'user_id', name=op.f('uq_gateway_key_holders_gateway_id'))
    )
    with op.batch_alter_table('gateway_key_holders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_gateway_key_holders_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_gateway_key_holders_gateway_id'), ['gateway_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_gateway_key_holders_user_id'), ['user_id'], unique=False)

    with op.batch_alter_table('gateways', schema=None) as batch_op:
        batch_op.add_column(sa.Column('key_state', sa.String(length=16), server_default='current', nullable=False))
        batch_op.add_column(sa.Column('key_progress', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('key_error', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('new_thing_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('new_thing_key_enc', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('old_thing_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('keys_replaced_at', _TS, nullable=True))
    op.execute("UPDATE gateways SET key_progress = '{}'")
    with op.batch_alter_table('gateways', schema=None) as batch_op:
        batch_op.alter_column('key_progress', existing_type=sa.JSON(), nullable=False)


def downgrade():
    with op.batch_alter_table('gateways', schema=None) as batch_op:
        for column in ('keys_replaced_at', 'old_thing_id', 'new_thing_key_enc', 'new_thing_id', 'key_error',
                       'key_progress', 'key_state'):
            batch_op.drop_column(column)
    with op.batch_alter_table('gateway_key_holders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_gateway_key_holders_user_id'))
        batch_op.drop_index(batch_op.f('ix_gateway_key_holders_gateway_id'))
        batch_op.drop_index(batch_op.f('ix_gateway_key_holders_account_id'))
    op.drop_table('gateway_key_holders')
