"""What a response-cache hit costs the gateway against a miss: CPU milliseconds per request.

    python benchmarks/cache.py [--rate 200] [--seconds 4] [--rounds 7] [--redis-url URL]

The shipped benchmark config (benchmarks/bench-config.yaml: metering, SQLite ledger, budgets and
rate limits on) with `cache: {models: [mock-gpt]}` added, in front of the lean mock upstream; the
gateway on CPU 1, the client and the mock on CPU 0. Each round sends, at the same open-loop rate,
first requests that all miss (each a new `seed`, so a new key: the lookup, the upstream call, the
answer kept), then requests that all hit (one key, kept beforehand); the order alternates between
rounds. The figure is the median over rounds of hit/miss CPU per request. ``--redis-url`` keeps the
cache in Redis (as replicas would) instead of the gateway's memory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import BODY, HERE, KEY, cpu_seconds, first_answer, free_port, launch, start, stop  # noqa: E402


async def paced(
    url: str, headers: dict[str, str], bodies: Any, rate: float, seconds: float
) -> tuple[int, int, dict[str, int]]:
    """Open loop: request i at t0 + i / rate with body ``bodies(i)``; (sent, errors, x-switchyard-cache counts)."""
    n = int(rate * seconds)
    errors, seen = 0, {"hit": 0, "miss": 0}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        t0 = time.perf_counter() + 0.05

        async def one(i: int) -> None:
            nonlocal errors
            await asyncio.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
            async with s.post(url, json=bodies(i), headers=headers) as r:
                await r.read()
                errors += r.status != 200
                state = r.headers.get("x-switchyard-cache")
                if state in seen:
                    seen[state] += 1

        await asyncio.gather(*(one(i) for i in range(n)))
    return n, errors, seen


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--seconds", type=float, default=4)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--redis-url")
    ap.add_argument("--out", default=str(HERE / "cache.json"))
    args = ap.parse_args()
    os.sched_setaffinity(0, {0})
    mock_port = free_port()
    mock = start([sys.executable, str(HERE / "mock_upstream.py"), str(mock_port)], "0", {}, tempfile.mkdtemp())
    mock_url = f"http://127.0.0.1:{mock_port}/v1"
    cfg = Path(tempfile.mkdtemp(prefix="bench-cache-")) / "config.yaml"
    extra = "cache: {models: [mock-gpt]}\n"
    text = (HERE / "bench-config.yaml").read_text()
    if args.redis_url:
        text = text.replace("storage:\n", "storage:\n  redis_url: os.environ/BENCH_REDIS_URL\n", 1)
    cfg.write_text(text + extra)
    cmd = [
        str(Path(sys.executable).with_name("switchyard")),
        "serve",
        "--config",
        str(cfg),
        "--port",
        "{port}",
        "--log-level",
        "warning",
    ]
    env = {"BENCH_KEY": KEY, "BENCH_PROVIDER_KEY": "sk-upstream", "BENCH_REDIS_URL": args.redis_url or ""}
    headers = {"authorization": f"Bearer {KEY}"}
    out: dict[str, Any] = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "args": vars(args)}
    p = None
    try:
        await first_answer(mock_url + "/chat/completions", {})
        p, url = launch("cache", cmd, env, mock_url)
        await first_answer(url, headers)
        base = {**BODY, "temperature": 0}
        counter = [0]

        def fresh(i: int) -> dict[str, Any]:
            counter[0] += 1
            return {**base, "seed": counter[0]}  # a new key: a miss

        await paced(url, headers, lambda i: base, 50, 0.5)  # keeps the hits' answer
        await paced(url, headers, fresh, args.rate, 1.0)  # warm-up
        per: dict[str, list[float]] = {"miss": [], "hit": []}
        for r in range(args.rounds):
            for kind in ("miss", "hit") if r % 2 == 0 else ("hit", "miss"):
                c0 = cpu_seconds(p.pid)
                n, errors, seen = await paced(
                    url, headers, fresh if kind == "miss" else (lambda i: base), args.rate, args.seconds
                )
                if errors or seen[kind] != n:
                    raise RuntimeError(f"{kind}: {errors} errors, cache headers {seen} of {n}")
                per[kind].append((cpu_seconds(p.pid) - c0) * 1000 / n)
        ratios = sorted(h / m for h, m in zip(per["hit"], per["miss"]))
        out.update(
            {
                "cpu_ms_per_req": per,
                "hit_over_miss": ratios,
                "median_ratio": ratios[len(ratios) // 2],
                "median_cpu_ms": {k: sorted(v)[len(v) // 2] for k, v in per.items()},
            }
        )
        print(
            f"  miss  cpu {out['median_cpu_ms']['miss']:.3f} ms/req\n  hit   cpu {out['median_cpu_ms']['hit']:.3f} ms/req"
            f"  hit/miss per round: {' '.join(f'{x:.3f}' for x in ratios)} -> median {out['median_ratio']:.3f}x"
        )
    finally:
        if p is not None:
            stop(p)
        stop(mock)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"results: {args.out}")


if __name__ == "__main__":
    asyncio.run(main())
