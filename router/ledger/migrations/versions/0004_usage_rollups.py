"""Hourly and daily roll-ups of the ledger, backfilled from existing rows; covering indexes for top-cost queries.

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
    for name in ("ix_requests_ts", "ix_requests_tenant_ts", "ix_requests_charge"):
        op.drop_index(name, "requests")
    op.create_index("ix_requests_ts_charge", "requests", ["ts", "charge_usd", "request_id"])
    op.create_index("ix_requests_tenant_ts_charge", "requests", ["tenant", "ts", "charge_usd", "request_id"])
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, period in (("usage_hourly", 3600), ("usage_daily", 86400)):
        op.create_table(
            table,
            sa.Column("t", sa.Float, nullable=False),
            *[sa.Column(c, sa.Integer if c in ("status", "prompt_size") else sa.String(256), nullable=False) for c in DIMS],
            *[sa.Column(c, sa.Integer, nullable=False) for c in COUNTS],
            *[sa.Column(c, sa.Float, nullable=False) for c in MONEY],
            sa.Column("latency_s_max", sa.Float, nullable=False),
        )
        op.create_index(f"ux_{table}", table, ["t", *DIMS], unique=True)
        start = f"floor(ts / {period}) * {period}" if postgres else f"CAST(CAST(ts / {period} AS INTEGER) * {period} AS REAL)"
        size = "CASE " + " ".join(f"WHEN prompt_tokens < {b} THEN {b}" for b in (256, 1024, 4096, 16384, 65536)) + " ELSE 1048576 END"
        dims = [*[f"COALESCE({c}, '')" for c in ("tenant", "key_id", "alias", "model", "provider")], "status",
                "COALESCE(policy, '')", "COALESCE(rule, '')", "COALESCE(category, '')", "endpoint", size]
        sums = ["COUNT(*)", "SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END)", "SUM(CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END)",
                "SUM(CASE WHEN usage_source = 'estimated' THEN 1 ELSE 0 END)", "COALESCE(SUM(fallbacks), 0)",
                *[f"COALESCE(SUM({c}), 0)" for c in COUNTS[5:]],
                *[f"COALESCE(SUM({c}), 0)" for c in MONEY[:-1]], "COALESCE(SUM(latency_s), 0)", "COALESCE(MAX(latency_s), 0)"]
        op.execute(
            f"INSERT INTO {table} (t, {', '.join(DIMS)}, {', '.join(COUNTS)}, {', '.join(MONEY)}, latency_s_max) "
            f"SELECT {start}, {', '.join(dims)}, {', '.join(sums)} FROM requests GROUP BY {start}, {', '.join(dims)}")


def downgrade() -> None:
    op.drop_table("usage_daily")
    op.drop_table("usage_hourly")
    op.drop_index("ix_requests_tenant_ts_charge", "requests")
    op.drop_index("ix_requests_ts_charge", "requests")
    op.create_index("ix_requests_ts", "requests", ["ts"])
    op.create_index("ix_requests_tenant_ts", "requests", ["tenant", "ts"])
    op.create_index("ix_requests_charge", "requests", ["tenant", "charge_usd"])
