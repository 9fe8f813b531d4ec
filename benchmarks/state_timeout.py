"""False 'state unavailable' refusals under CPU load: Redis healthy, fail_mode closed, the machine
busy. For each storage.redis_timeout given, alternately, a gateway serves concurrent requests for
``--seconds`` and every 503 is counted (each is a request refused although Redis was up).

    python benchmarks/state_timeout.py --redis-url redis://127.0.0.1:6379/14 [--timeouts 0.5,1.0]
        [--rounds 2] [--seconds 15] [--hogs 2]

``--hogs N`` starts N busy loops for the duration (the contention the hardening report saw).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

CONFIG = """
model_list:
  - {{model_name: sim, litellm_params: {{model: simulated/mid, speed: 1000}}}}
storage: {{redis_url: os.environ/BENCH_REDIS, redis_timeout: {timeout}}}
limits:
  fail_mode: closed
  rate_limits: [{{scope: key, id: '*', rpm: 10000000}}]
  budgets: [{{scope: tenant, id: t, period: day, usd: 1000000}}]
auth:
  admin_key: os.environ/BENCH_ADMIN
  keys: [{{id: bench, tenant: t, key: os.environ/BENCH_KEY}}]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def load(base: str, key: str, seconds: float, concurrency: int) -> dict[int, int]:
    counts: dict[int, int] = {}
    stop = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=base, timeout=30) as c:

        async def worker() -> None:
            while time.monotonic() < stop:
                r = await c.post(
                    "/v1/chat/completions",
                    headers={"authorization": f"Bearer {key}"},
                    json={"model": "sim", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5},
                )
                counts[r.status_code] = counts.get(r.status_code, 0) + 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return counts


def run(timeout: float, redis_url: str, seconds: float) -> dict[int, int]:
    work = Path(tempfile.mkdtemp(prefix="sy-state-"))
    (work / "c.yaml").write_text(CONFIG.format(timeout=timeout))
    key = secrets.token_hex(16)
    env = {**os.environ, "BENCH_REDIS": redis_url, "BENCH_ADMIN": secrets.token_hex(16), "BENCH_KEY": key}
    port = free_port()
    exe = str(Path(sys.executable).with_name("switchyard"))
    gw = subprocess.Popen(
        [exe, "serve", "--config", str(work / "c.yaml"), "--port", str(port)],
        cwd=work,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(base + "/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        return asyncio.run(load(base, key, seconds, 16))
    finally:
        os.killpg(gw.pid, signal.SIGTERM)
        gw.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--redis-url", required=True)
    ap.add_argument("--timeouts", default="0.5,1.0")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--hogs", type=int, default=2)
    args = ap.parse_args()
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.hogs)]
    try:
        for r in range(args.rounds):
            for t in (float(x) for x in args.timeouts.split(",")):
                counts = run(t, args.redis_url, args.seconds)
                total = sum(counts.values())
                print(
                    f"round {r + 1} redis_timeout {t:>4}: {total} requests, {counts.get(503, 0)} refused with 503 "
                    f"({100 * counts.get(503, 0) / max(total, 1):.2f}%), statuses {dict(sorted(counts.items()))}",
                    flush=True,
                )
    finally:
        for h in hogs:
            h.kill()


if __name__ == "__main__":
    main()
