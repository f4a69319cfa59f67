"""PINs for real life: rules (from/until, weekly windows, uses), purposes (courier,
duress), several boxes, owners; the household's time zone; safe mode and parcel state
of a box

Revision ID: b7c4e2a9f1d3
Revises: 8d4b2e6f1a73
Create Date: 2026-12-04 17:45:00

"""
import sqlalchemy as sa
from alembic import op

import portal.models.base

revision = 'b7c4e2a9f1d3'
down_revision = '8d4b2e6f1a73'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('time_zone', sa.String(length=64), server_default='UTC', nullable=False))

    with op.batch_alter_table('mailboxes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('safe_settings', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('safe_version', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('safe_command_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('locked_until', portal.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('parcel_since', portal.models.base.UTCDateTime(timezone=True), nullable=True))

    with op.batch_alter_table('pins', schema=None) as batch_op:
        batch_op.add_column(sa.Column('group_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('purpose', sa.String(length=16), server_default='household', nullable=False))
        batch_op.add_column(sa.Column('assigned_to_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('time_zone', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('starts_at', portal.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('ends_at', portal.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('windows', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('max_uses', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('uses', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('ended', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('delivery_state', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('delivered_at', portal.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('collected_at', portal.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_pins_group_id'), ['group_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_pins_assigned_to_id'), ['assigned_to_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_pins_assigned_to_id_users'), 'users', ['assigned_to_id'], ['id'],
                                    ondelete='SET NULL')


def downgrade():
    with op.batch_alter_table('pins', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_pins_assigned_to_id_users'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_pins_assigned_to_id'))
        batch_op.drop_index(batch_op.f('ix_pins_group_id'))
        for column in ('collected_at', 'delivered_at', 'delivery_state', 'ended', 'uses', 'max_uses', 'windows',
                       'ends_at', 'starts_at', 'time_zone', 'assigned_to_id', 'purpose', 'group_id'):
            batch_op.drop_column(column)

    with op.batch_alter_table('mailboxes', schema=None) as batch_op:
        for column in ('parcel_since', 'locked_until', 'safe_command_id', 'safe_version', 'safe_settings'):
            batch_op.drop_column(column)

    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('time_zone')
