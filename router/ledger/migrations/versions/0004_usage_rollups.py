"""Hourly and daily roll-ups of the ledger, backfilled from existing rows and kept by an insert trigger;
covering indexes for top-cost queries.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

DIMS = (
    "tenant",
    "key_id",
    "alias",
    "model",
    "provider",
    "status",
    "policy",
    "rule",
    "category",
    "endpoint",
    "prompt_size",
)
COUNTS = (
    "requests",
    "errors",
    "unpriced",
    "estimated",
    "fallbacks",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
MONEY = (
    "cost_usd",
    "charge_usd",
    "app_margin_usd",
    "paas_margin_usd",
    "model_lab_usd",
    "iaas_margin_usd",
    "electricity_usd",
    "colocation_usd",
    "other_capex_usd",
    "chip_cost_usd",
    "chip_margin_usd",
    "gpu_hours",
    "latency_s_sum",
)


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
            *[
                sa.Column(c, sa.Integer if c in ("status", "prompt_size") else sa.String(256), nullable=False)
                for c in DIMS
            ],
            *[sa.Column(c, sa.Integer, nullable=False) for c in COUNTS],
            *[sa.Column(c, sa.Float, nullable=False) for c in MONEY],
            sa.Column("latency_s_max", sa.Float, nullable=False),
        )
        op.create_index(f"ux_{table}", table, ["t", *DIMS], unique=True)
        dims, row = _dims("", period, postgres), _measures("")
        values = [f"SUM({m})" for m in row[:-1]] + [f"MAX({row[-1]})"]
        op.execute(
            f"INSERT INTO {table} (t, {', '.join(DIMS)}, {', '.join(COUNTS)}, {', '.join(MONEY)}, latency_s_max) "
            f"SELECT {', '.join(dims)}, {', '.join(values)} FROM requests GROUP BY {', '.join(dims)}"
        )
    _create_triggers(postgres)


def _dims(p: str, period: int, postgres: bool) -> list[str]:
    """A ledger row's period start and roll-up dimensions, as SQL over columns prefixed ``p`` ('' or 'NEW.')."""
    start = (
        f"floor({p}ts / {period}) * {period}"
        if postgres
        else f"CAST(CAST({p}ts / {period} AS INTEGER) * {period} AS REAL)"
    )
    size = (
        "CASE "
        + " ".join(f"WHEN {p}prompt_tokens < {b} THEN {b}" for b in (256, 1024, 4096, 16384, 65536))
        + " ELSE 1048576 END"
    )
    return [
        start,
        *[f"COALESCE({p}{c}, '')" for c in ("tenant", "key_id", "alias", "model", "provider")],
        f"{p}status",
        f"COALESCE({p}policy, '')",
        f"COALESCE({p}rule, '')",
        f"COALESCE({p}category, '')",
        f"{p}endpoint",
        size,
    ]


def _measures(p: str) -> list[str]:
    """One ledger row's contribution to COUNTS, MONEY and latency_s_max (summed, or max for the last)."""
    return [
        "1",
        f"CASE WHEN {p}status >= 400 THEN 1 ELSE 0 END",
        f"CASE WHEN {p}cost_usd IS NULL THEN 1 ELSE 0 END",
        f"CASE WHEN {p}usage_source = 'estimated' THEN 1 ELSE 0 END",
        f"COALESCE({p}fallbacks, 0)",
        *[f"COALESCE({p}{c}, 0)" for c in COUNTS[5:]],
        *[f"COALESCE({p}{c}, 0)" for c in MONEY[:-1]],
        f"COALESCE({p}latency_s, 0)",
        f"COALESCE({p}latency_s, 0)",
    ]


def _upsert(table: str, period: int, postgres: bool) -> str:
    measures = [*COUNTS, *MONEY]
    sets = [f"{c} = {table}.{c} + excluded.{c}" for c in measures]
    bigger = "GREATEST" if postgres else "max"
    sets.append(f"latency_s_max = {bigger}({table}.latency_s_max, excluded.latency_s_max)")
    return (
        f"INSERT INTO {table} (t, {', '.join(DIMS)}, {', '.join(measures)}, latency_s_max) "
        f"VALUES ({', '.join(_dims('NEW.', period, postgres) + _measures('NEW.'))}) ON CONFLICT (t, {', '.join(DIMS)}) DO UPDATE SET {', '.join(sets)};"
    )


def _create_triggers(postgres: bool) -> None:
    # A row the insert skips (a replayed request id: ON CONFLICT DO NOTHING) fires no trigger, so
    # the roll-ups count every request exactly once, whichever path wrote it.
    body = "\n".join(_upsert(t, p, postgres) for t, p in (("usage_hourly", 3600), ("usage_daily", 86400)))
    if postgres:
        op.execute(
            f"CREATE OR REPLACE FUNCTION requests_rollup() RETURNS trigger AS $$ BEGIN\n{body}\n"
            "RETURN NULL; END $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER requests_rollup AFTER INSERT ON requests FOR EACH ROW EXECUTE FUNCTION requests_rollup()"
        )
    else:
        op.execute(f"CREATE TRIGGER requests_rollup AFTER INSERT ON requests BEGIN\n{body}\nEND")


def downgrade() -> None:
    op.execute(
        "DROP TRIGGER IF EXISTS requests_rollup"
        + (" ON requests" if op.get_bind().dialect.name == "postgresql" else "")
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS requests_rollup()")
    op.drop_table("usage_daily")
    op.drop_table("usage_hourly")
    op.drop_index("ix_requests_tenant_ts_charge", "requests")
    op.drop_index("ix_requests_ts_charge", "requests")
    op.create_index("ix_requests_ts", "requests", ["ts"])
    op.create_index("ix_requests_tenant_ts", "requests", ["tenant", "ts"])
    op.create_index("ix_requests_charge", "requests", ["tenant", "charge_usd"])
