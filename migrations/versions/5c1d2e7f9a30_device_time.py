"""device time: when an event happened vs when it was recorded; households being watched;
channel cursors that remember a look-back window and device-dated messages

Revision ID: 5c1d2e7f9a30
Revises: ed7217d2ce43
Create Date: 2026-12-04 15:10:00

"""
import json

import sqlalchemy as sa
from alembic import op

revision = '5c1d2e7f9a30'
down_revision = 'ed7217d2ce43'
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade():
    with op.batch_alter_table('activity_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('recorded_at', _TS, nullable=True))
    # Until now an event was written down the moment it was recorded.
    op.execute("UPDATE activity_events SET recorded_at = occurred_at")
    with op.batch_alter_table('activity_events', schema=None) as batch_op:
        batch_op.alter_column('recorded_at', existing_type=_TS, nullable=False)

    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('watched_until', _TS, nullable=True))

    with op.batch_alter_table('channel_cursors', schema=None) as batch_op:
        batch_op.add_column(sa.Column('seen', sa.JSON(), nullable=True))
    # The digests applied at the cursor's time become the first entries of its look-back window.
    conn = op.get_bind()
    cursors = sa.table('channel_cursors', sa.column('channel_id', sa.String), sa.column('last_time', sa.Float),
                       sa.column('seen_at_last_time', sa.JSON), sa.column('seen', sa.JSON))
    for row in conn.execute(sa.select(cursors.c.channel_id, cursors.c.last_time, cursors.c.seen_at_last_time)):
        old = row.seen_at_last_time
        if isinstance(old, str):
            old = json.loads(old)
        digests = (old or {}).get('digests', [])
        seen = {'recent': {d: row.last_time or 0.0 for d in digests}, 'strays': {}, 'stray_total': 0}
        conn.execute(sa.update(cursors).where(cursors.c.channel_id == row.channel_id).values(seen=seen))
    op.execute("UPDATE channel_cursors SET seen = '{}' WHERE seen IS NULL")
    with op.batch_alter_table('channel_cursors', schema=None) as batch_op:
        batch_op.alter_column('seen', existing_type=sa.JSON(), nullable=False)
        batch_op.drop_column('seen_at_last_time')


def downgrade():
    with op.batch_alter_table('channel_cursors', schema=None) as batch_op:
        batch_op.add_column(sa.Column('seen_at_last_time', sa.JSON(), nullable=True))
    op.execute("""UPDATE channel_cursors SET seen_at_last_time = '{"digests": []}'""")
    with op.batch_alter_table('channel_cursors', schema=None) as batch_op:
        batch_op.alter_column('seen_at_last_time', existing_type=sa.JSON(), nullable=False)
        batch_op.drop_column('seen')

    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('watched_until')

    with op.batch_alter_table('activity_events', schema=None) as batch_op:
        batch_op.drop_column('recorded_at')
