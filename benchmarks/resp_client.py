"""CPU per Redis script call: redis-py's asyncio client against the lean client (router/accounting/resp.py).

    taskset -c 1 python benchmarks/resp_client.py [--url redis://127.0.0.1:6379/15] [--calls 20000]
                                                  [--concurrency 32] [--rounds 4]

The call is the gateway's own admission script (`RedisState.admit`: one rate-limit counter and one
budget, as `benchmarks/bench-config.yaml` sets them), made ``--calls`` times, ``--concurrency`` at a
time, on uvloop as `switchyard serve` runs; the two clients alternate, round by round, and each
round's process CPU per call is printed, then the medians. A round of ``asyncio.sleep(0)`` in place
of the call gives the harness's own share. Redis's CPU is its own process's and is not counted. The
keys go under a prefix of their own in the database of ``--url``, deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from router.accounting.redis_state import RedisState  # noqa: E402
from router.accounting.state import BudgetReq, CounterReq  # noqa: E402


async def main(args: argparse.Namespace) -> None:
    states = {name: RedisState(args.url, prefix="bench-resp:", client=name) for name in ("redis-py", "lean")}
    counters = [CounterReq("rate:bench", 10**12, 1, 120)]
    budgets = [BudgetReq("bud:bench", 10**18, 1, 86400, hard=False)]
    await states["lean"].budget_apply("bud:bench", 0, [], 86400, time.time())

    async def calls(state: RedisState | None) -> float:
        async def one(i: int) -> None:
            if state is None:
                await asyncio.sleep(0)
            else:
                await state.admit(f"req-{i}", counters, budgets, time.time(), 60.0)

        c0 = time.process_time()
        for j in range(0, args.calls, args.concurrency):
            await asyncio.gather(*(one(i) for i in range(j, min(args.calls, j + args.concurrency))))
        return (time.process_time() - c0) / args.calls * 1e6

    runs: dict[str, list[float]] = {"harness": [], "redis-py": [], "lean": []}
    for r in range(args.rounds):
        order = ["harness", "redis-py", "lean"] if r % 2 == 0 else ["lean", "redis-py", "harness"]
        for name in order:
            runs[name].append(await calls(states.get(name)))
        print("  ".join(f"{n} {v[-1]:6.1f}" for n, v in runs.items()) + "  us CPU per call", flush=True)
    for name, vals in runs.items():
        print(f"{name:9} median {statistics.median(vals):6.1f} us CPU per call ({min(vals):.1f}-{max(vals):.1f})")
    import redis

    r = redis.Redis.from_url(args.url)
    for key in r.scan_iter("bench-resp:*"):
        r.delete(key)
    for state in states.values():
        await state.aclose()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="redis://127.0.0.1:6379/15")
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=4)
    import uvloop

    uvloop.run(main(ap.parse_args()))
