"""Gateway CPU per request of two checkouts of Switchyard, in alternating windows (A B, B A, ...).

    git worktree add /tmp/before <commit>
    python benchmarks/ab.py --before /tmp/before [--rounds 7] [--seconds 5]

Both run this venv's packages with ``benchmarks/bench-config.yaml`` (metering, SQLite ledger,
budgets and rate limits on), one at a time on CPU 1, loaded by wrk at maximum throughput against
the lean mock upstream (CPU 0); ``before`` imports its own ``router``/``policies``/``pricing`` from
the given checkout (PYTHONPATH). Prints, per mode, the median gateway CPU milliseconds per request
of each and the median of the per-round throughput ratios (after / before): the machine's drift
cancels out within a round.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run as bench  # noqa: E402  (benchmarks/run.py: the harness)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True, help="a checkout of the baseline commit")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--connections", type=int, default=64)
    args = ap.parse_args()
    args.pair_rounds, args.pair_seconds = args.rounds, args.seconds
    import os

    os.sched_setaffinity(0, {0})
    port = bench.free_port()
    mock = bench.start([sys.executable, str(HERE / "mock_upstream.py"), str(port)], "0", {}, tempfile.mkdtemp())
    mock_url = f"http://127.0.0.1:{port}/v1"
    switchyard = str(Path(sys.executable).with_name("switchyard"))
    headers = {"authorization": f"Bearer {bench.KEY}"}
    env = {"BENCH_KEY": bench.KEY, "BENCH_PROVIDER_KEY": "sk-upstream"}

    def serve(root: Path) -> list[str]:
        return [
            switchyard,
            "serve",
            "--config",
            str(root / "benchmarks" / "bench-config.yaml"),
            "--port",
            "{port}",
            "--log-level",
            "warning",
        ]

    try:
        await bench.first_answer(mock_url + "/chat/completions", {})
        out = await bench.paired_max(
            {
                "after": (serve(HERE.parent), env, headers),
                "before": (serve(Path(args.before)), {**env, "PYTHONPATH": args.before}, headers),
            },
            args,
            mock_url,
        )
    finally:
        bench.stop(mock)
    for mode, r in out.items():
        cpu = {n: sorted(x["cpu_ms_per_req"] for x in runs)[len(runs) // 2] for n, runs in r["rounds"].items()}
        print(
            f"{mode:<9} CPU ms per request: before {cpu['before']:.3f}, after {cpu['after']:.3f} "
            f"({(cpu['after'] / cpu['before'] - 1) * 100:+.1f}%); throughput after/before per round "
            + " ".join(f"{x:.3f}" for x in r["ratios"])
            + f", median {r['median_ratio']:.3f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
