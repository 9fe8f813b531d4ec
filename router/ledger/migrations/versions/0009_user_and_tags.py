"""Cost by user and tag: the request's end user (OpenAI's ``user``, Anthropic's ``metadata.user_id``)
and its tags (the operator's listed ``metadata`` keys, or ``x-switchyard-tags``) as columns. Both
are bounded per tenant and day (router/accounting/attribution.py). ALTER TABLE ADD COLUMN, so SQLite keeps the
roll-up trigger (a batch table rebuild would drop it).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("requests", sa.Column("end_user", sa.String(128)))
    op.add_column("requests", sa.Column("tags", sa.Text))  # JSON object: tag key -> value
    op.create_index("ix_requests_user_ts", "requests", ["end_user", "ts"])


def downgrade() -> None:
    op.drop_index("ix_requests_user_ts", "requests")
    op.drop_column("requests", "tags")
    op.drop_column("requests", "end_user")
