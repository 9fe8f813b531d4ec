"""Hourly roll-up of the ledger (usage_hourly), backfilled from existing rows; an index for top-cost queries.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

DIMS = ("tenant", "key_id", "alias", "model", "provider", "status", "policy", "rule", "category", "endpoint", "prompt_size")
COUNTS = ("requests", "errors", "unpriced", "estimated", "fallbacks", "prompt_tokens", "completion_tokens",
          "cached_tokens", "cache_write_tokens", "reasoning_tokens")
MONEY = ("cost_usd", "charge_usd", "app_margin_usd", "paas_margin_usd", "model_lab_usd", "iaas_margin_usd",
         "electricity_usd", "colocation_usd", "other_capex_usd", "chip_cost_usd", "chip_margin_usd", "gpu_hours",
         "latency_s_sum")


def upgrade() -> None:
    op.create_table(
        "usage_hourly",
        sa.Column("hour", sa.Float, nullable=False),
        *[sa.Column(c, sa.Integer if c in ("status", "prompt_size") else sa.String(256), nullable=False) for c in DIMS],
        *[sa.Column(c, sa.Integer, nullable=False) for c in COUNTS],
        *[sa.Column(c, sa.Float, nullable=False) for c in MONEY],
        sa.Column("latency_s_max", sa.Float, nullable=False),
    )
    op.create_index("ux_usage_hourly", "usage_hourly", ["hour", *DIMS], unique=True)
    op.create_index("ix_requests_charge_only", "requests", ["charge_usd"])
    hour = "floor(ts / 3600) * 3600" if op.get_bind().dialect.name == "postgresql" else "CAST(CAST(ts / 3600 AS INTEGER) * 3600 AS REAL)"
    size = "CASE " + " ".join(f"WHEN prompt_tokens < {b} THEN {b}" for b in (256, 1024, 4096, 16384, 65536)) + " ELSE 1048576 END"
    text_dims = [f"COALESCE({c}, '')" for c in ("tenant", "key_id", "alias", "model", "provider")]
    more_dims = ["status", "COALESCE(policy, '')", "COALESCE(rule, '')", "COALESCE(category, '')", "endpoint", size]
    dims = [*text_dims, *more_dims]
    sums = ["COUNT(*)", "SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END)", "SUM(CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END)",
            "SUM(CASE WHEN usage_source = 'estimated' THEN 1 ELSE 0 END)", "COALESCE(SUM(fallbacks), 0)",
            *[f"COALESCE(SUM({c}), 0)" for c in COUNTS[5:]],
            *[f"COALESCE(SUM({c}), 0)" for c in MONEY[:-1]], "COALESCE(SUM(latency_s), 0)", "COALESCE(MAX(latency_s), 0)"]
    op.execute(
        f"INSERT INTO usage_hourly (hour, {', '.join(DIMS)}, {', '.join(COUNTS)}, {', '.join(MONEY)}, latency_s_max) "
        f"SELECT {hour}, {', '.join(dims)}, {', '.join(sums)} FROM requests "
        f"GROUP BY {hour}, {', '.join(dims)}")


def downgrade() -> None:
    op.drop_index("ix_requests_charge_only", "requests")
    op.drop_table("usage_hourly")
