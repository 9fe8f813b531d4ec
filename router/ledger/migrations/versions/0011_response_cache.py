"""The exact response cache: a request answered from the cache is a ledger record with ``cache`` =
'hit', no upstream cost or charge, and ``saved_usd``, the API cost its first answer had (what the
cache saved). ALTER TABLE ADD COLUMN, so SQLite keeps the roll-up trigger.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("requests", sa.Column("cache", sa.String(8)))
    op.add_column("requests", sa.Column("saved_usd", sa.Float))


def downgrade() -> None:
    op.drop_column("requests", "saved_usd")
    op.drop_column("requests", "cache")
