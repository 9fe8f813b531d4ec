"""API cost by token type, so exports can split a request's cost per meter.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

LINES = ("cost_input_usd", "cost_cached_input_usd", "cost_cache_write_usd", "cost_output_usd", "cost_reasoning_usd")


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        for col in LINES:
            batch.add_column(sa.Column(col, sa.Float))


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        for col in LINES:
            batch.drop_column(col)
