"""gateway keys: who downloaded a gateway's settings (key holders), and the replacement of
its StreamIoT thing (key_state, its steps, the new and the old thing)

Revision ID: 6b2e4f8a1c37
Revises: 7b3e5a1c9d42
Create Date: 2026-12-04 15:30:00

"""
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '6b2e4f8a1c37'
down_revision = '7b3e5a1c9d42'
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
    backfill_key_holders(op.get_bind())

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


def backfill_key_holders(bind):
    """Downloads made before this revision are in the activity log: each downloader becomes a
    key holder of that gateway, and one no longer in the household a departed one (so the
    owners are told about members who left with keys before key holders were recorded)."""
    events = sa.table('activity_events', sa.column('account_id', sa.Uuid()), sa.column('gateway_id', sa.Uuid()),
                      sa.column('actor_user_id', sa.Uuid()), sa.column('kind', sa.String()),
                      sa.column('occurred_at', _TS))
    gateways = sa.table('gateways', sa.column('id', sa.Uuid()), sa.column('account_id', sa.Uuid()))
    users = sa.table('users', sa.column('id', sa.Uuid()), sa.column('email', sa.String()))
    memberships = sa.table('memberships', sa.column('account_id', sa.Uuid()), sa.column('user_id', sa.Uuid()))
    holders = sa.table('gateway_key_holders', sa.column('id', sa.Uuid()), sa.column('account_id', sa.Uuid()),
                       sa.column('gateway_id', sa.Uuid()), sa.column('user_id', sa.Uuid()),
                       sa.column('email', sa.String()), sa.column('first_downloaded_at', _TS),
                       sa.column('last_downloaded_at', _TS), sa.column('departed_at', _TS))
    downloads = bind.execute(
        sa.select(gateways.c.account_id, gateways.c.id, users.c.id, users.c.email,
                  sa.func.min(events.c.occurred_at), sa.func.max(events.c.occurred_at))
        .select_from(events)
        .join(gateways, sa.and_(gateways.c.id == events.c.gateway_id, gateways.c.account_id == events.c.account_id))
        .join(users, users.c.id == events.c.actor_user_id)
        .where(events.c.kind == 'gateway.settings_viewed')
        .group_by(gateways.c.account_id, gateways.c.id, users.c.id, users.c.email)
    ).all()
    if not downloads:
        return
    members = set(bind.execute(sa.select(memberships.c.account_id, memberships.c.user_id)).all())
    now = datetime.now(UTC)
    if bind.dialect.name == 'sqlite':
        now = now.replace(tzinfo=None)  # SQLite keeps UTC naive (portal.models.base.UTCDateTime)
    bind.execute(holders.insert(), [
        {'id': uuid.uuid4(), 'account_id': account_id, 'gateway_id': gateway_id, 'user_id': user_id, 'email': email,
         'first_downloaded_at': first, 'last_downloaded_at': last,
         'departed_at': None if (account_id, user_id) in members else now}
        for account_id, gateway_id, user_id, email, first, last in downloads
    ])


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
