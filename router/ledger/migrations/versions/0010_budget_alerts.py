"""Budget alerts: every alert a budget raised (a threshold crossed, a forecast to exceed), what its
delivery to the webhooks did, and the dead letters (router/accounting/alerts.py).

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),  # threshold | forecast | test
        sa.Column("budget", sa.String(300), nullable=False),  # the budget's state key: scope, id, period
        sa.Column("threshold", sa.Integer),  # percent
        sa.Column("payload", sa.Text, nullable=False),  # JSON: the body the webhooks get
        sa.Column("status", sa.String(16), nullable=False),  # pending | sent | dead
        sa.Column("attempts", sa.Integer, nullable=False, default=0),
        sa.Column("last_error", sa.String(300)),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_alerts_ts", "alerts", ["ts"])


def downgrade() -> None:
    op.drop_index("ix_alerts_ts", "alerts")
    op.drop_table("alerts")
