"""CPU of the planner's step for a routed request, two checkouts side by side, in process.

    git worktree add /tmp/before <commit>
    python benchmarks/plan.py --before /tmp/before [--rounds 6] [--plans 5000] [--size BYTES] [--bandit on|off]

Each round runs one interpreter per checkout (alternating, pinned to CPU 1 when ``taskset`` exists)
that builds the gateway's services from the routed benchmark config (``steady.py --routed``: two
deployments of the mock, a ``cheapest_above`` policy over both; ``--bandit off`` turns the policy's
feedback bandit off, as the shipped RouteLLM and RouterBench policies have it) and calls
``Planner.plan`` for distinct prompts (the candidates' live facts, the prompt's tokens, the affinity
keys, the decision), after 2,000 to warm up. Printed: microseconds per plan for each checkout, sorted,
with the minimum and median, and the ratio. Nothing is sent anywhere: the plan is the whole measure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


async def drive(plans: int, size: int, bandit: bool) -> float:
    sys.path.insert(0, str(HERE))
    import sizes
    import steady

    from router.accounting.metering import MemorySink
    from router.auth import Principal
    from router.build import build_services
    from router.config import parse_config

    work = Path(tempfile.mkdtemp(prefix="bench-plan-"))
    os.chdir(work)
    env = {
        "BENCH_KEY": "sk-bench-plan-0123456789",
        "BENCH_PROVIDER_KEY": "sk-up",
        "UPSTREAM_URL": "http://127.0.0.1:9/v1",
    }
    policy = steady.ROUTED_POLICY + ("" if bandit else "quality: {bandit: {enabled: false}}\n")
    cfg = parse_config(steady.routed_config(work, policy).read_text(), env=env)
    planner = build_services(cfg, env=env, sink=MemorySink()).planner
    who = Principal("bench", "bench", None)
    texts = sizes.prompts(size, 64, seed=7)
    total = plans + 2000
    bodies = [
        {"model": "mock-auto", "max_tokens": 20, "messages": [{"role": "user", "content": f"[{i}] {texts[i % 64]}"}]}
        for i in range(total)
    ]
    for i in range(2000):
        await planner.plan(who, bodies[i], "chat", f"req_{i:032x}")
    t0 = time.process_time()
    for i in range(2000, total):
        await planner.plan(who, bodies[i], "chat", f"req_{i:032x}")
    return (time.process_time() - t0) / plans * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", help="a checkout of the baseline commit")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--plans", type=int, default=5000)
    ap.add_argument("--size", type=int, default=0, help="prompt bytes (0: a short question)")
    ap.add_argument("--bandit", choices=("on", "off"), default="on")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(asyncio.run(drive(a.plans, a.size, a.bandit == "on")))
        return
    assert a.before, "--before CHECKOUT"
    sys.path.insert(0, str(HERE))
    from alternate import alternate, report

    child = ["--plans", str(a.plans), "--size", str(a.size), "--bandit", a.bandit]
    report(alternate(__file__, a.before, a.rounds, child), 1, "us")


if __name__ == "__main__":
    main()
