"""support search indexes: trigram indexes over lower() of member emails and household, gateway
and box names (PostgreSQL; no pending list, as those rows are written all day), and the
household's StreamIoT user id, so a search is index lookups at 10,000 households (issue 15,
benchmarks/scale.py)

Revision ID: f2a3b4c5d6e7
Revises: f7a8b9c0d1e2
Create Date: 2026-12-05 08:20:00.000000

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = 'f2a3b4c5d6e7'
down_revision = 'f7a8b9c0d1e2'
branch_labels = None
depends_on = None

TRIGRAM = [
    ("ix_users_email_trgm", "users", "email"),
    ("ix_accounts_name_trgm", "accounts", "name"),
    ("ix_gateways_name_trgm", "gateways", "name"),
    ("ix_mailboxes_name_trgm", "mailboxes", "name"),
]


def upgrade():
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_accounts_streamiot_user_id'), ['streamiot_user_id'], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for name, table, column in TRIGRAM:
            op.execute(f"CREATE INDEX {name} ON {table} USING gin (lower({column}) gin_trgm_ops) "
                       "WITH (fastupdate = off)")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for name, _table, _column in TRIGRAM:
            op.execute(f"DROP INDEX IF EXISTS {name}")
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_accounts_streamiot_user_id'))
