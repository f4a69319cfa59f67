"""sealed protocol level: gateways say which level they speak, households get a link key
pair, PINs a reference, and commands and reports carry counters

Revision ID: 7e3a91c0d5b2
Revises: 5c1d7e9a4b20
Create Date: 2026-12-04 15:20:00

"""
import sqlalchemy as sa
from alembic import op

revision = '7e3a91c0d5b2'
down_revision = '5c1d7e9a4b20'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('gateways', schema=None) as batch_op:
        # Gateways added before this speak the first protocol: their firmware was told so.
        batch_op.add_column(sa.Column('protocol', sa.String(length=8), nullable=False, server_default='seed'))
        batch_op.add_column(sa.Column('command_counter', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('mailboxes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('command_counter', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('pins', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ref', sa.String(length=16), nullable=True))
    with op.batch_alter_table('commands', schema=None) as batch_op:
        batch_op.add_column(sa.Column('counter', sa.Integer(), nullable=True))
    with op.batch_alter_table('channel_cursors', schema=None) as batch_op:
        batch_op.add_column(sa.Column('report_counter', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('link_public_key', sa.String(length=44), nullable=True))
        batch_op.add_column(sa.Column('link_private_key_enc', sa.LargeBinary(), nullable=True))


def downgrade():
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('link_private_key_enc')
        batch_op.drop_column('link_public_key')
    with op.batch_alter_table('channel_cursors', schema=None) as batch_op:
        batch_op.drop_column('report_counter')
    with op.batch_alter_table('commands', schema=None) as batch_op:
        batch_op.drop_column('counter')
    with op.batch_alter_table('pins', schema=None) as batch_op:
        batch_op.drop_column('ref')
    with op.batch_alter_table('mailboxes', schema=None) as batch_op:
        batch_op.drop_column('command_counter')
    with op.batch_alter_table('gateways', schema=None) as batch_op:
        batch_op.drop_column('command_counter')
        batch_op.drop_column('protocol')
