"""Unpriced tokens in the roll-ups: the usage API reports unpriced traffic as its request count and
its tokens (never as $0). The roll-ups are rebuilt from the ledger and the insert trigger recreated
with the new measure.

Revision ID: 0006
Revises: 0005
"""

import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_spec = importlib.util.spec_from_file_location("rollups_0004", Path(__file__).with_name("0004_usage_rollups.py"))
assert _spec is not None and _spec.loader is not None
r4 = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(r4)  # the roll-up dimensions and measures of migration 0004

TABLES = (("usage_hourly", 3600), ("usage_daily", 86400))


def _columns(extra: bool) -> list[str]:
    return [*r4.COUNTS, *r4.MONEY, *(["unpriced_tokens"] if extra else []), "latency_s_max"]


def _values(p: str, extra: bool) -> list[str]:
    m = r4._measures(p)  # counts, money, then latency_s_max
    unpriced = (
        f"CASE WHEN {p}cost_usd IS NULL THEN COALESCE({p}prompt_tokens, 0) + COALESCE({p}completion_tokens, 0) "
        "ELSE 0 END"
    )
    return [*m[:-1], *([unpriced] if extra else []), m[-1]]


def _rebuild(extra: bool) -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.execute("DROP TRIGGER IF EXISTS requests_rollup" + (" ON requests" if postgres else ""))
    if postgres:
        op.execute("DROP FUNCTION IF EXISTS requests_rollup()")
    cols = _columns(extra)
    upserts = []
    for table, period in TABLES:
        op.execute(f"DELETE FROM {table}")
        values = [f"SUM({v})" for v in _values("", extra)[:-1]] + [f"MAX({_values('', extra)[-1]})"]
        dims = r4._dims("", period, postgres)
        op.execute(
            f"INSERT INTO {table} (t, {', '.join(r4.DIMS)}, {', '.join(cols)}) "
            f"SELECT {', '.join(dims)}, {', '.join(values)} FROM requests GROUP BY {', '.join(dims)}"
        )
        sets = [f"{c} = {table}.{c} + excluded.{c}" for c in cols[:-1]]
        sets.append(
            f"latency_s_max = {'GREATEST' if postgres else 'max'}({table}.latency_s_max, excluded.latency_s_max)"
        )
        upserts.append(
            f"INSERT INTO {table} (t, {', '.join(r4.DIMS)}, {', '.join(cols)}) "
            f"VALUES ({', '.join(r4._dims('NEW.', period, postgres) + _values('NEW.', extra))}) "
            f"ON CONFLICT (t, {', '.join(r4.DIMS)}) DO UPDATE SET {', '.join(sets)};"
        )
    # as in 0004: a row the insert skips (a replayed request id) fires no trigger
    body = "\n".join(upserts)
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


def upgrade() -> None:
    for table, _ in TABLES:
        op.add_column(table, sa.Column("unpriced_tokens", sa.Integer, nullable=False, server_default="0"))
    _rebuild(extra=True)


def downgrade() -> None:
    for table, _ in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("unpriced_tokens")
    _rebuild(extra=False)
