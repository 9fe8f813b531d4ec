"""Virtual keys issued over HTTP, and the audit log of admin actions.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("name", sa.String(128)),
        sa.Column("hash", sa.String(200), nullable=False),
        sa.Column("previous_hash", sa.String(200)),
        sa.Column("previous_until", sa.Float),
        sa.Column("models", sa.Text),
        sa.Column("rpm", sa.Integer),
        sa.Column("tpm", sa.Integer),
        sa.Column("budget_usd", sa.Float),
        sa.Column("budget_period", sa.String(8)),
        sa.Column("budget_soft", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("expires_at", sa.Float),
        sa.Column("metadata", sa.Text),
        sa.Column("revoked", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_api_keys_updated", "api_keys", ["updated_at"])
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(128)),
        sa.Column("detail", sa.Text),
    )
    op.create_index("ix_audit_ts", "audit", ["ts"])


def downgrade() -> None:
    op.drop_index("ix_audit_ts", "audit")
    op.drop_table("audit")
    op.drop_index("ix_api_keys_updated", "api_keys")
    op.drop_table("api_keys")
