"""CPU per request of the gateway's own code, two checkouts side by side, in process (no HTTP server).

    git worktree add /tmp/before <commit>
    python benchmarks/asgi_ab.py --before /tmp/before [--rounds 8] [--requests 3000] [--stream] [--distinct]

Each round runs one interpreter per checkout (alternating, pinned to CPU 1) that builds the app
with ``create_app`` (metering, budgets and rate limits on, records in memory) in front of a
simulated model (``speed: 0``) and drives N chat requests through the ASGI app directly, after 200
to warm up; it reports process CPU milliseconds per request. ``--distinct``: every prompt differs (a counter
leads it), so nothing is served from a cache keyed by the prompt (its token count, say). Printed: each checkout's values
sorted, their minimum and median, and the ratios. The machine is shared and noisy: the minimum is
the steadiest figure. Complements benchmarks/ab.py (the same comparison through uvicorn and wrk).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
KEY = "sk-bench-asgi-0123456789abcdef"
CFG = """
model_list:
  - model_name: m
    litellm_params: {model: simulated/small, speed: 0}
limits:
  rate_limits: [{scope: key, id: '*', rpm: 100000000, tpm: 100000000000}]
  budgets: [{scope: tenant, id: '*', period: day, usd: 1000000}]
auth:
  keys: [{id: b, tenant: b, key: os.environ/K}]
"""


async def drive(n: int, stream: bool, distinct: bool = False) -> float:
    import orjson

    from router.app import create_app
    from router.config import parse_config
    from router.accounting.metering import MemorySink

    try:
        from router.build import build_services
    except ImportError:  # a checkout from before router/build.py
        from router.services import build_services  # type: ignore[no-redef]

    env = {"K": KEY}
    cfg = parse_config(CFG, env=env)
    svc = build_services(cfg, env=env, sink=MemorySink())
    app = create_app(cfg, services=svc)

    def request(i: int) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        text = f"[{i}] Say something short." if distinct else "Say something short."
        body = orjson.dumps(
            {
                "model": "m",
                "stream": stream,
                "seed": 1,
                "max_tokens": 20,
                "messages": [{"role": "user", "content": text}],
            }
        )
        return body, [
            (b"authorization", f"Bearer {KEY}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]

    fixed = request(0)
    count = 0
    await svc.start()

    async def one() -> None:
        nonlocal count
        count += 1
        body, headers = request(count) if distinct else fixed
        sent: list[dict] = []
        got = False

        async def receive() -> dict:
            nonlocal got
            if not got:
                got = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(m: dict) -> None:
            sent.append(m)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/chat/completions",
            "raw_path": b"/v1/chat/completions",
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 1234),
            "server": ("127.0.0.1", 4000),
        }
        await app(scope, receive, send)
        assert sent[0]["status"] == 200, sent[:2]

    for _ in range(200):
        await one()
    t0 = time.process_time()
    for _ in range(n):
        await one()
    dt = time.process_time() - t0
    await svc.stop()
    return 1000 * dt / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", help="a checkout of the baseline commit")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--distinct", action="store_true", help="a distinct prompt per request")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(asyncio.run(drive(a.requests, a.stream, a.distinct)))
        return
    assert a.before, "--before CHECKOUT"
    sys.path.insert(0, str(HERE))
    from alternate import alternate, report

    child = (
        ["--requests", str(a.requests)] + (["--stream"] if a.stream else []) + (["--distinct"] if a.distinct else [])
    )
    what = f"{'stream' if a.stream else 'non-streaming'} chat{', distinct prompts' if a.distinct else ''}"
    report(alternate(__file__, a.before, a.rounds, child), 4, "ms", what + ", ms of CPU per request")


if __name__ == "__main__":
    main()
