"""Stored Responses-API answers: a conversation continues by ``previous_response_id`` from any replica.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "responses",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("response", sa.Text, nullable=False),
        sa.Column("conversation", sa.Text, nullable=False),
    )
    op.create_index("ix_responses_expires", "responses", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_responses_expires", "responses")
    op.drop_table("responses")
