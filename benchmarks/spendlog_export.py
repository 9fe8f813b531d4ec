"""Spend log export at scale: peak memory of `switchyard export requests` over a ledger of N records
(one day), and its totals against the usage API's aggregate for the same range.

    python benchmarks/spendlog_export.py [--records 1000000] [--format jsonl|csv|parquet]

Builds a SQLite ledger of synthetic records (tests/test_ledger_stores.synthetic_records, spread over
one day) in a temporary directory, then runs the export as a child process and reads its peak RSS
(ru_maxrss of that child, from wait4). Prints records, seconds, peak RSS and the totals check.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from router.ledger.schema import to_row  # noqa: E402
from router.ledger.queries import UsageQuery  # noqa: E402
from router.ledger.store import LedgerStore, sqlite_url  # noqa: E402
from tests.test_ledger_stores import synthetic_records  # noqa: E402


async def build(data: Path, n: int, day_start: float) -> dict:
    store = LedgerStore(sqlite_url(data))
    await store.migrate()
    done = 0
    while done < n:
        part = synthetic_records(min(50_000, n - done), seed=done + 1)
        for r in part:  # one day
            r["ts"] = day_start + (r["ts"] % 86400)
        rows = [to_row(r) for r in part]
        for i in range(0, len(rows), 5000):
            await store.insert(rows[i : i + 5000], fresh=True)
        done += len(part)
    [total], _ = await store.usage(UsageQuery(start=day_start, end=day_start + 86400))
    await store.dispose()
    return total


def records(path: Path, fmt: str):
    """The exported records' charge and cost, read back a batch at a time."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(columns=["charge_usd", "cost_usd"]):
            yield from batch.to_pylist()
        return
    import csv

    with open(path, newline="") as fh:
        if fmt == "jsonl":
            for line in fh:
                yield json.loads(line)
            return
        for row in csv.DictReader(fh):
            yield {k: float(row[k]) if row[k] else None for k in ("charge_usd", "cost_usd")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--format", default="jsonl", choices=("jsonl", "csv", "parquet"))
    ap.add_argument("--build-into", help=argparse.SUPPRESS)  # internal: build the ledger in a child process
    args = ap.parse_args()
    day = math.floor(time.time() / 86400) * 86400 - 86400
    if args.build_into:
        print(json.dumps(asyncio.run(build(Path(args.build_into), args.records, day))))
        return
    work = Path(tempfile.mkdtemp(prefix="spendlog-"))
    (work / "gw.yaml").write_text(
        "model_list:\n  - {model_name: sim, litellm_params: {model: simulated/small}}\n"
        f"storage: {{data_dir: '{work / 'data'}'}}\n"
    )
    t0 = time.perf_counter()
    # built in a child, so this process stays small: a child's peak RSS counts the memory it shares
    # with its parent between fork and exec
    made = subprocess.run(
        [sys.executable, __file__, "--records", str(args.records), "--build-into", str(work / "data")],
        capture_output=True,
        text=True,
        check=True,
    )
    total = json.loads(made.stdout.strip().splitlines()[-1])
    built = time.perf_counter() - t0
    out = work / f"requests.{args.format}"
    t0 = time.perf_counter()
    switchyard = str(Path(sys.executable).with_name("switchyard"))
    child = subprocess.Popen(
        [
            switchyard,
            "export",
            "requests",
            "--since",
            str(day),
            "--until",
            str(day + 86400),
            "--format",
            args.format,
            "--out",
            str(out),
            "--config",
            str(work / "gw.yaml"),
        ]
    )
    _, status, usage = os.wait4(child.pid, 0)  # this child's own peak RSS
    took = time.perf_counter() - t0
    assert status == 0, status
    peak_mb = usage.ru_maxrss / 1024
    charge = cost = 0.0
    n = 0
    for rec in records(out, args.format):
        n += 1
        charge += rec["charge_usd"] or 0.0
        cost += rec["cost_usd"] or 0.0
    print(
        json.dumps(
            {
                "format": args.format,
                "records": n,
                "ledger_requests": total["requests"],
                "build_s": round(built, 1),
                "export_s": round(took, 1),
                "export_peak_rss_mb": round(peak_mb, 1),
                "file_mb": round(os.path.getsize(out) / 2**20, 1),
                "charge_usd": charge,
                "usage_charge_usd": total["charge_usd"],
                "charge_rel_diff": abs(charge - total["charge_usd"]) / total["charge_usd"],
                "cost_usd": cost,
                "usage_cost_usd": total["cost_usd"],
            }
        )
    )


if __name__ == "__main__":
    main()
