"""Does a request cost more as the config grows? CPU per request of an in-process gateway whose config
has N models, N keys (by environment reference), N rate limits and N budgets, one of each per tenant.

    taskset -c 1 python benchmarks/config_scale.py [--root <another checkout>] [--sizes 1,1000]
        [--requests 1500] [--tagged] [--spread] [--profile tottime]

The requests use the last key and the last model (a scan from the front finds them last). The
gateway runs in this process behind httpx's ASGI client (whose own CPU is included, the same for
every N), with the simulated provider, metering, the SQLite ledger, budgets and rate limits on.
``--root`` imports the router from another checkout, to compare two commits in the same minutes;
``--profile`` prints cProfile's top functions for the first size instead. Each size runs in a process of
its own (the gateway moves its start-up heap out of the collector's way once per process).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def config(n: int, data_dir: str, tagged: bool = False) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "model_list": [
            {"model_name": f"m{i}", "litellm_params": {"model": "simulated/small", "speed": 100000}} for i in range(n)
        ],
        "storage": {"data_dir": data_dir},
        "limits": {
            "rate_limits": [{"scope": "key", "id": f"k{i}", "rpm": 10**8, "tpm": 10**11} for i in range(n)],
            "budgets": [{"scope": "tenant", "id": f"t{i}", "period": "day", "usd": 10**6} for i in range(n)],
        },
        "billing": {"default_plan": "standard", "plans": {"standard": {"markup": 0.2}}},
        "auth": {"keys": [{"id": f"k{i}", "tenant": f"t{i}", "key": f"os.environ/SCALE_KEY_{i}"} for i in range(n)]},
    }
    if tagged:  # one budget per value of a tag, and requests that carry the tag
        doc["limits"]["budgets"].append({"scope": "tag", "id": "feature=*", "period": "day", "usd": 10**6})
        doc["attribution"] = {"tags": ["feature"]}
    return doc


async def measure(n: int, requests: int, profiler: Any = None, tagged: bool = False, spread: bool = False) -> float:
    import httpx
    import yaml

    from router.app import create_app
    from router.config import load_config

    data_dir = tempfile.mkdtemp(prefix="config-scale-")
    for i in range(n):
        os.environ[f"SCALE_KEY_{i}"] = f"secret-{i:05d}-{'x' * 20}"
    path = Path(data_dir) / "config.yaml"
    path.write_text(yaml.safe_dump(config(n, data_dir, tagged)))
    app = create_app(load_config(str(path)))
    headers = {"authorization": f"Bearer secret-{n - 1:05d}-{'x' * 20}"}
    body: dict[str, Any] = {"model": f"m{n - 1}", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    if tagged:
        body["metadata"] = {"feature": "search"}
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
            for _ in range(200):  # warm up: caches, the budget built from the ledger
                r = await client.post("/v1/chat/completions", json=body, headers=headers)
                assert r.status_code == 200, r.text
            calls = [(headers, body)] * requests
            if spread:  # every key and model in turn, each used once before the clock starts
                calls = [
                    ({"authorization": f"Bearer secret-{i % n:05d}-{'x' * 20}"}, {**body, "model": f"m{i % n}"})
                    for i in range(requests)
                ]
                for h, b in calls[:n]:
                    r = await client.post("/v1/chat/completions", json=b, headers=h)
                    assert r.status_code == 200, r.text
            t0 = time.process_time()
            if profiler is not None:
                profiler.enable()
            for h, b in calls:
                await client.post("/v1/chat/completions", json=b, headers=h)
            if profiler is not None:
                profiler.disable()
            return (time.process_time() - t0) / requests * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=str(Path(__file__).resolve().parent.parent))
    ap.add_argument("--sizes", default="1,1000")
    ap.add_argument("--requests", type=int, default=1500)
    ap.add_argument("--tagged", action="store_true", help="a tag budget in the config, the tag on every request")
    ap.add_argument("--spread", action="store_true", help="requests from every key to every model in turn")
    ap.add_argument("--profile", default=None, help="a pstats sort key: profile the first size")
    args = ap.parse_args()
    sys.path.insert(0, args.root)
    sizes = [int(x) for x in args.sizes.split(",")]
    if args.profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        asyncio.run(measure(sizes[0], args.requests, prof, args.tagged, args.spread))
        pstats.Stats(prof).sort_stats(args.profile).print_stats(30)
        return
    if len(sizes) > 1:  # each size in a process of its own: the gateway freezes its start-up heap for the
        for n in sizes:  # collector once per process (router/memory.py); a second app in one process is not
            flags = [f"--root={args.root}", f"--requests={args.requests}", f"--sizes={n}"]
            flags += ["--tagged"] * args.tagged + ["--spread"] * args.spread
            subprocess.run([sys.executable, __file__, *flags], check=True)
        return
    ms = asyncio.run(measure(sizes[0], args.requests, tagged=args.tagged, spread=args.spread))
    print(f"N={sizes[0]:5d}: {ms:.3f} ms CPU per request", flush=True)


if __name__ == "__main__":
    main()
