"""Cost lines: one row per priced upstream call of a request that made several (a cascade's steps and
checks, a call cut off after another answered). A request with one priced call is its own line, so
existing ledgers need no backfill: each of their rows already is one line.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SLICES = (
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
LINES = ("cost_input_usd", "cost_cached_input_usd", "cost_cache_write_usd", "cost_output_usd", "cost_reasoning_usd")


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("tenant", sa.String(128)),
        sa.Column("key_id", sa.String(64)),
        sa.Column("alias", sa.String(256)),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("model", sa.String(256)),
        sa.Column("deployment", sa.String(256)),
        sa.Column("provider", sa.String(64)),
        *[
            sa.Column(c, sa.Integer, nullable=False, server_default="0")
            for c in ("prompt_tokens", "completion_tokens", "cached_tokens", "cache_write_tokens", "reasoning_tokens")
        ],
        sa.Column("usage_source", sa.String(16)),
        sa.Column("price_version", sa.String(128)),
        sa.Column("cost_usd", sa.Float),
        sa.Column("charge_usd", sa.Float),
        sa.Column("serving", sa.String(16)),
        sa.Column("model_class", sa.String(32)),
        sa.Column("gpu_hours", sa.Float),
        *[sa.Column(c, sa.Float) for c in SLICES + LINES],
    )
    op.create_index("ix_calls_ts", "calls", ["ts"])


def downgrade() -> None:
    op.drop_index("ix_calls_ts", "calls")
    op.drop_table("calls")
