"""The requests ledger.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_SLICES = (
    "app_margin_usd",
    "paas_margin_usd",
    "model_lab_usd",
    "iaas_margin_usd",
    "electricity_usd",
    "colocation_usd",
    "other_capex_usd",
    "chip_cost_usd",
    "chip_margin_usd",
)


def upgrade() -> None:
    op.create_table(
        "requests",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("tenant", sa.String(128)),
        sa.Column("key_id", sa.String(64)),
        sa.Column("endpoint", sa.String(32), nullable=False),
        sa.Column("alias", sa.String(256)),
        sa.Column("policy", sa.String(128)),
        sa.Column("decision", sa.Text),
        sa.Column("model", sa.String(256)),
        sa.Column("deployment", sa.String(256)),
        sa.Column("provider", sa.String(64)),
        sa.Column("stream", sa.Boolean, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("error", sa.String(64)),
        sa.Column("attempts", sa.Text),
        sa.Column("fallbacks", sa.Integer, nullable=False),
        sa.Column("prompt_tokens", sa.Integer, nullable=False),
        sa.Column("completion_tokens", sa.Integer, nullable=False),
        sa.Column("cached_tokens", sa.Integer, nullable=False),
        sa.Column("cache_write_tokens", sa.Integer, nullable=False),
        sa.Column("reasoning_tokens", sa.Integer, nullable=False),
        sa.Column("usage_source", sa.String(16)),
        sa.Column("latency_s", sa.Float),
        sa.Column("ttft_s", sa.Float),
        sa.Column("upstream_s", sa.Float),
        sa.Column("overhead_s", sa.Float),
        sa.Column("price_version", sa.String(128)),
        sa.Column("cost_usd", sa.Float),
        sa.Column("charge_usd", sa.Float),
        sa.Column("serving", sa.String(16)),
        sa.Column("model_class", sa.String(32)),
        sa.Column("gpu_hours", sa.Float),
        *[sa.Column(c, sa.Float) for c in _SLICES],
    )
    op.create_index("ix_requests_ts", "requests", ["ts"])
    op.create_index("ix_requests_tenant_ts", "requests", ["tenant", "ts"])
    op.create_index("ix_requests_model_ts", "requests", ["model", "ts"])
    op.create_index("ix_requests_alias_ts", "requests", ["alias", "ts"])
    op.create_index("ix_requests_charge", "requests", ["tenant", "charge_usd"])


def downgrade() -> None:
    op.drop_table("requests")
