"""Ledger writer throughput: records/s from submit() to committed rows, into SQLite and PostgreSQL.

    python benchmarks/ledger_writer.py [--records 50000] [--database-url postgresql://...]

Prints one line per store. Target (issue 5): at least 5,000 records/s into each store.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from router.ledger.store import LedgerStore, sqlite_url  # noqa: E402
from router.ledger.writer import LedgerWriter  # noqa: E402
from router.metrics import Metrics  # noqa: E402
from tests.test_ledger_stores import synthetic_records  # noqa: E402


async def measure(url: str, records: list[dict], spill: Path) -> tuple[float, int]:
    store = LedgerStore(url)
    await store.migrate()
    writer = LedgerWriter(store, spill, Metrics(), batch_size=1000, max_queue=len(records) + 10)
    await writer.start()
    t0 = time.perf_counter()
    for r in records:
        writer.submit(r)
    await writer.close()
    elapsed = time.perf_counter() - t0
    n = await store.count()
    await store.dispose()
    return len(records) / elapsed, n


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=50_000)
    ap.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    args = ap.parse_args()
    records = synthetic_records(args.records, seed=9)
    with tempfile.TemporaryDirectory() as d:
        rate, n = await measure(sqlite_url(d), records, Path(d) / "spill")
        print(f"sqlite      {rate:10.0f} records/s  ({n} rows committed)")
    if args.database_url:
        from tests.servers import fresh_database

        url, drop = await asyncio.to_thread(fresh_database, args.database_url)
        try:
            with tempfile.TemporaryDirectory() as d:
                rate, n = await measure(url, records, Path(d) / "spill")
            print(f"postgresql  {rate:10.0f} records/s  ({n} rows committed)")
        finally:
            await asyncio.to_thread(drop)


if __name__ == "__main__":
    asyncio.run(main())
