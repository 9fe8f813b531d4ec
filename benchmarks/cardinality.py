"""A flood of distinct users: what it leaves in the ledger, Prometheus, Redis and the gateway's memory.

    python benchmarks/cardinality.py [--requests 100000] [--max-values 10000] [--redis-url redis://127.0.0.1:6379/14]

One gateway (`switchyard serve`) on a simulated model (fast), with `attribution.tags: [feature]`,
`attribution.max_values` as given, budgets and rate limits on, and Redis for shared state; every
request carries a new `user` and a new `metadata.feature`. Afterwards: distinct users and feature
values in the ledger, the size of `/metrics`, the number and memory of the Redis sets that hold the
bound, and the gateway's resident memory, each before and after. The claim it checks: all of these
stay bounded by `max_values` (plus the "(other)" bucket), whatever the flood's size.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import HERE, free_port, rss_mb, start, stop  # noqa: E402

CONFIG = """
model_list:
  - model_name: sim
    litellm_params: {{model: simulated/small, speed: 1000}}
attribution: {{tags: [feature], max_values: {max_values}}}
storage:
  redis_url: os.environ/BENCH_REDIS_URL
limits:
  rate_limits: [{{scope: key, id: '*', rpm: 100000000}}]
  budgets: [{{scope: tenant, id: '*', period: day, usd: 1000000}}]
auth:
  admin_key: os.environ/BENCH_ADMIN_KEY
  keys: [{{id: bench, tenant: bench, key: os.environ/BENCH_KEY}}]
"""
KEY, ADMIN = "sk-bench-key", "sk-bench-admin"


async def flood(url: str, n: int, conns: int) -> tuple[int, float]:
    sent = errors = 0
    t0 = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conns)) as s:

        async def worker(w: int) -> None:
            nonlocal sent, errors
            for i in range(w, n, conns):
                body = {
                    "model": "sim",
                    "max_tokens": 4,
                    "user": f"user-{i}",
                    "metadata": {"feature": f"feature-{i}"},
                    "messages": [{"role": "user", "content": "hi"}],
                }
                async with s.post(url, json=body, headers={"authorization": f"Bearer {KEY}"}) as r:
                    await r.read()
                    sent += 1
                    errors += r.status != 200

        await asyncio.gather(*(worker(w) for w in range(conns)))
    return errors, time.perf_counter() - t0


def metrics_bytes(base: str) -> int:
    import urllib.request

    with urllib.request.urlopen(base + "/metrics") as r:
        return len(r.read())


def redis_sets(r: redis.Redis) -> dict[str, Any]:
    keys = list(r.scan_iter("sy:card:*"))
    return {
        "sets": len(keys),
        "members": sum(r.scard(k) for k in keys),
        "bytes": sum(r.memory_usage(k) or 0 for k in keys),
    }


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=100_000)
    ap.add_argument("--max-values", type=int, default=10_000)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    ap.add_argument("--out", default=str(HERE / "cardinality.json"))
    args = ap.parse_args()
    r = redis.Redis.from_url(args.redis_url)
    r.flushdb()
    work = Path(tempfile.mkdtemp(prefix="bench-cardinality-"))
    (work / "config.yaml").write_text(CONFIG.format(max_values=args.max_values))
    port = free_port()
    switchyard = str(Path(sys.executable).with_name("switchyard"))
    gw = start(
        [switchyard, "serve", "--config", str(work / "config.yaml"), "--port", str(port), "--log-level", "warning"],
        "1",
        {"BENCH_KEY": KEY, "BENCH_ADMIN_KEY": ADMIN, "BENCH_REDIS_URL": args.redis_url},
        str(work),
    )
    base = f"http://127.0.0.1:{port}"
    out: dict[str, Any] = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "args": vars(args)}
    try:
        for _ in range(600):
            try:
                if metrics_bytes(base):
                    break
            except OSError:
                await asyncio.sleep(0.1)
        await flood(base + "/v1/chat/completions", 200, 8)  # warm-up: 200 users of the bound
        before = {"metrics_bytes": metrics_bytes(base), "rss_mb": rss_mb(gw.pid), "redis": redis_sets(r)}
        errors, seconds = await flood(base + "/v1/chat/completions", args.requests, args.connections)
        await asyncio.sleep(1.5)  # the ledger writer's last batch
        db = sqlite3.connect(work / ".switchyard" / "ledger.db")
        rows = db.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
        users = db.execute("SELECT COUNT(DISTINCT end_user) FROM requests").fetchone()[0]
        other = db.execute("SELECT COUNT(*) FROM requests WHERE end_user = '(other)'").fetchone()[0]
        features = db.execute("SELECT COUNT(DISTINCT json_extract(tags, '$.feature')) FROM requests").fetchone()[0]
        after = {"metrics_bytes": metrics_bytes(base), "rss_mb": rss_mb(gw.pid), "redis": redis_sets(r)}
        out.update(
            {
                "requests": args.requests,
                "errors": errors,
                "seconds": seconds,
                "ledger_rows": rows,
                "distinct_users": users,
                "other_rows": other,
                "distinct_features": features,
                "before": before,
                "after": after,
            }
        )
        print(json.dumps(out, indent=2))
        bound = args.max_values + 1
        assert users <= bound and features <= bound, (users, features)
        assert after["redis"]["members"] <= 2 * args.max_values
    finally:
        stop(gw)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"results: {args.out}")


if __name__ == "__main__":
    os.sched_setaffinity(0, {0})
    asyncio.run(main())
