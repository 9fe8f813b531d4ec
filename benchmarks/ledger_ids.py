"""What the form of request ids costs a SQLite ledger's inserts as it grows.

    python benchmarks/ledger_ids.py [--rows 400000]

Two fresh ledgers (the project's migrations: its indexes and roll-up triggers), filled in 500-row
batches of ledger rows (`tests/test_ledger_stores.synthetic_records`, their times in order) by one
multi-row statement per batch, as the live writer inserts them, through Python's sqlite3 alone (no
event loop, no thread). One gets random 128-bit request ids (the form before 2026-12-01), the other
time-ordered ones (milliseconds first, as `router.app.RequestIds` draws them). Printed: CPU
microseconds per row for each successive 50,000 rows.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from router.ledger.schema import to_row  # noqa: E402
from router.ledger.store import LedgerStore, sqlite_url  # noqa: E402
from tests.test_ledger_stores import synthetic_records  # noqa: E402

BATCH = 500
STEP = 50_000


def fill(style: str, rows: int, protos: list[dict]) -> list[float]:
    work = tempfile.mkdtemp(prefix="bench-ids-")

    async def migrate() -> None:
        store = LedgerStore(sqlite_url(work))
        await store.migrate()
        await store.dispose()

    asyncio.run(migrate())
    db = sqlite3.connect(os.path.join(work, "ledger.db"), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    cols = [c for c in protos[0] if c != "_calls"]
    one = "(" + ", ".join("?" * len(cols)) + ")"
    sql = f"INSERT INTO requests ({', '.join(cols)}) VALUES {', '.join([one] * BATCH)} ON CONFLICT (request_id) DO NOTHING"
    rng = random.Random(1)
    t0 = time.time()
    out, mark = [], time.process_time()
    for b in range(rows // BATCH):
        params: list = []
        for i in range(BATCH):
            n = b * BATCH + i
            row = dict(protos[n % len(protos)])
            row["ts"] = t0 + n * 0.0002  # 5,000 requests a second
            if style == "random":
                row["request_id"] = "req_%032x" % rng.getrandbits(128)
            else:
                row["request_id"] = "req_%012x%020x" % (int(row["ts"] * 1000), rng.getrandbits(80))
            params += [row.get(c) for c in cols]
        db.execute("BEGIN")
        db.execute(sql, params)
        db.execute("COMMIT")
        if ((b + 1) * BATCH) % STEP == 0:
            now = time.process_time()
            out.append((now - mark) / STEP * 1e6)
            mark = now
    db.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=400_000)
    args = ap.parse_args()
    protos = [to_row(r) for r in synthetic_records(2000)]
    for style in ("random", "ordered"):
        per = fill(style, args.rows, protos)
        print(f"{style:8} us per row, each {STEP:,} rows: " + " ".join(f"{x:.1f}" for x in per), flush=True)


if __name__ == "__main__":
    main()
