"""What one ledger record costs to insert into SQLite, and which part of the schema costs it.

    python benchmarks/ledger_insert_cost.py [--records 20000] [--prefill 50000] [--uniform]

The live writer's path (``LedgerStore.insert(fresh=True)``, batches of 500, rows already built by
``to_row``) into a fresh SQLite ledger that already holds ``--prefill`` rows, four ways: the full
schema; without the roll-up trigger (``requests_rollup``, which adds each row to its hour and day);
without the five secondary indexes of ``requests``; without both. Reports process CPU (all threads:
the driver's included) per record, two rounds. ``--uniform``: every record of one tenant, key and
model with increasing times, as under benchmarks/sizes.py; by default the synthetic records of the
ledger tests (tenants, models and three days of times at random). Dropping the trigger or the
indexes is for measuring only: the usage API and the dashboard read the roll-ups and the indexes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from router.ledger.schema import to_row  # noqa: E402
from router.ledger.store import LedgerStore, sqlite_url  # noqa: E402
from tests.test_ledger_stores import synthetic_records  # noqa: E402

INDEXES = (
    "ix_requests_ts_charge",
    "ix_requests_tenant_ts_charge",
    "ix_requests_model_ts",
    "ix_requests_alias_ts",
    "ix_requests_user_ts",
)
VARIANTS = {"full": (), "no trigger": ("trigger",), "no indexes": ("indexes",), "neither": ("trigger", "indexes")}


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def per_record_us(without: tuple[str, ...], rows: list[dict], prefill: int) -> float:
    store = LedgerStore(sqlite_url(os.path.join(tempfile.mkdtemp(prefix="ledger-cost-"), "ledger.db")))
    await store.migrate()
    async with store.engine.begin() as conn:
        if "trigger" in without:
            await conn.exec_driver_sql("DROP TRIGGER IF EXISTS requests_rollup")
        for ix in INDEXES if "indexes" in without else ():
            await conn.exec_driver_sql(f"DROP INDEX IF EXISTS {ix}")
    for i in range(0, prefill, 500):
        await store.insert([dict(r, request_id=f"prefill-{i}-{j}") for j, r in enumerate(rows[:500])], fresh=True)
    c0 = cpu_s()
    for i in range(0, len(rows), 500):
        await store.insert(rows[i : i + 500], fresh=True)
    spent = cpu_s() - c0
    assert await store.count() == prefill + len(rows)
    await store.dispose()
    return spent / len(rows) * 1e6


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=20_000)
    ap.add_argument("--prefill", type=int, default=50_000)
    ap.add_argument("--uniform", action="store_true")
    args = ap.parse_args()
    records = synthetic_records(args.records)
    if args.uniform:
        now = time.time()
        for i, r in enumerate(records):
            r.update(tenant="bench", key_id="bench", model="mock-gpt", requested_model="mock-gpt", ts=now + i / 2500)
    rows = [to_row(r) for r in records]
    for _ in range(2):
        for name, without in VARIANTS.items():
            print(
                f"{name:<11} {await per_record_us(without, rows, args.prefill):6.1f} us of CPU per record", flush=True
            )


if __name__ == "__main__":
    asyncio.run(main())
