"""The routing rule and request category as columns, so dashboards can group by why a model was picked.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("rule", sa.String(64)))
        batch.add_column(sa.Column("category", sa.String(32)))


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("category")
        batch.drop_column("rule")
