"""Soak: the gateway under steady load for a long run, with upstream faults injected at random
intervals. Reports memory over time (flat within 10%?), errors (only where faults were injected?)
and whether the counts reconcile at the end (answered = ledger records = Prometheus counter).

    python benchmarks/soak.py [--minutes 10] [--rate 500] [--out benchmarks/soak.json]

The gateway (CPU 1) serves alias `soak` = [flaky, steady]: both on the test mock upstream
(tests/mock_upstream.py, CPU 0), where `flaky` fails with 503 during injected fault windows
(POST /_flaky). Fallback keeps clients whole; the gateway's upstream-error counter shows the faults.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from run import free_port, rss_mb, start, stop  # noqa: E402

KEY = "sk-soak-key"
ADMIN = "sk-soak-admin"


def config(mock: str) -> str:
    return f"""
model_list:
  - model_name: flaky
    litellm_params: {{model: openai/mock-flaky, api_base: '{mock}/v1', api_key: os.environ/PROVIDER_KEY, timeout: 5}}
    model_info: {{input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}}
  - model_name: steady
    litellm_params: {{model: openai/mock-gpt, api_base: '{mock}/v1', api_key: os.environ/PROVIDER_KEY, timeout: 5}}
    model_info: {{input_cost_per_token: 0.000002, output_cost_per_token: 0.000004}}
aliases:
  soak: [flaky, steady]
server: {{breaker_threshold: 1000000}}
limits:
  rate_limits: [{{scope: key, id: '*', rpm: 100000000}}]
  budgets: [{{scope: tenant, id: '*', period: day, usd: 1000000}}]
auth:
  admin_key: os.environ/SOAK_ADMIN_KEY
  keys: [{{id: soak, tenant: soak, key: os.environ/SOAK_KEY}}]
"""


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--rate", type=float, default=500, help="open-loop requests/s (about half the max)")
    ap.add_argument("--out", default=str(HERE / "soak.json"))
    args = ap.parse_args()
    os.sched_setaffinity(0, {0})
    work = Path(tempfile.mkdtemp(prefix="soak-"))
    mport, gport = free_port(), free_port()
    mock = start([sys.executable, str(ROOT / "tests" / "mock_upstream.py"), str(mport)], "0", {}, str(work))
    (work / "soak.yaml").write_text(config(f"http://127.0.0.1:{mport}"))
    gw = start(
        [
            str(Path(sys.executable).with_name("switchyard")),
            "serve",
            "--config",
            str(work / "soak.yaml"),
            "--port",
            str(gport),
            "--log-level",
            "warning",
        ],
        "1",
        {"PROVIDER_KEY": "sk-up", "SOAK_KEY": KEY, "SOAK_ADMIN_KEY": ADMIN},
        str(work),
    )
    base = f"http://127.0.0.1:{gport}"
    h = {"authorization": f"Bearer {KEY}"}
    body = {"model": "soak", "messages": [{"role": "user", "content": "soak"}], "max_tokens": 10}
    statuses: dict[int, int] = {}
    memory: list[tuple[float, float]] = []
    faults: list[tuple[float, float]] = []
    rng = random.Random(7)
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
            for _ in range(200):
                try:
                    async with s.get(base + "/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
            t0 = time.perf_counter()
            seconds = args.minutes * 60
            n = int(args.rate * seconds)

            async def one(i: int) -> None:
                await asyncio.sleep(max(0.0, t0 + i / args.rate - time.perf_counter()))
                try:
                    async with s.post(base + "/v1/chat/completions", json=body, headers=h) as r:
                        await r.read()
                        statuses[r.status] = statuses.get(r.status, 0) + 1
                except aiohttp.ClientError:
                    statuses[0] = statuses.get(0, 0) + 1

            async def injector() -> None:
                while time.perf_counter() - t0 < seconds - 10:
                    await asyncio.sleep(rng.uniform(20, 40))
                    start_at = time.perf_counter() - t0
                    async with s.post(f"http://127.0.0.1:{mport}/_flaky", json={"fail": True}):
                        pass
                    await asyncio.sleep(rng.uniform(2, 5))
                    async with s.post(f"http://127.0.0.1:{mport}/_flaky", json={"fail": False}):
                        pass
                    faults.append((start_at, time.perf_counter() - t0))

            async def sampler() -> None:
                while time.perf_counter() - t0 < seconds:
                    memory.append((time.perf_counter() - t0, rss_mb(gw.pid)))
                    await asyncio.sleep(5)

            batch = 2000  # schedule in slices so millions of pending tasks never exist at once
            side = [asyncio.create_task(injector()), asyncio.create_task(sampler())]
            for start_i in range(0, n, batch):
                await asyncio.gather(*(one(i) for i in range(start_i, min(n, start_i + batch))))
            for t in side:
                t.cancel()
            await asyncio.sleep(1.0)  # let the ledger flush
            async with s.get(
                base + "/admin/usage?bucket=none&start=0", headers={"authorization": f"Bearer {ADMIN}"}
            ) as r:
                ledger = (await r.json())["data"][0]["requests"]
            async with s.get(base + "/metrics") as r:
                metrics = await r.text()
            async with s.get(f"http://127.0.0.1:{mport}/_stats") as r:
                upstream = (await r.json())["requests"]
    finally:
        stop(gw)
        stop(mock)
    prom = sum(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("switchyard_requests_total{") and 'endpoint="chat"' in line
    )
    upstream_errors = sum(
        float(line.split()[-1]) for line in metrics.splitlines() if line.startswith("switchyard_upstream_errors_total{")
    )
    fallbacks = sum(
        float(line.split()[-1]) for line in metrics.splitlines() if line.startswith("switchyard_fallbacks_total{")
    )
    first = [m for t, m in memory if 60 <= t < 120] or [memory[0][1]]
    last = [m for t, m in memory if t >= memory[-1][0] - 60]
    growth = (sum(last) / len(last)) / (sum(first) / len(first)) - 1
    answered = sum(v for k, v in statuses.items() if k)
    result = {
        "minutes": args.minutes,
        "rate": args.rate,
        "statuses": statuses,
        "answered": answered,
        "ledger_records": ledger,
        "prometheus_requests": prom,
        "upstream_requests": upstream,
        "upstream_errors_during_faults": upstream_errors,
        "fallbacks": fallbacks,
        "fault_windows": faults,
        "memory_mb_first_minute": sum(first) / len(first),
        "memory_mb_last_minute": sum(last) / len(last),
        "memory_growth": growth,
        "memory_samples": memory,
        "reconciled": answered == ledger == prom and sum(upstream.values()) == answered + upstream_errors,
    }
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k not in ("memory_samples",)}, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
