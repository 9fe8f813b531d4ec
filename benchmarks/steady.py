"""CPU per request under sustained load, window by window: two checkouts side by side.

    git worktree add /tmp/before <commit>
    python benchmarks/steady.py --before /tmp/before [--windows 40] [--seconds 2] [--size BYTES] [--chunks N]
    python benchmarks/steady.py --before . --before-python PY1 --after-python PY2   # two interpreters, one checkout

Both checkouts' gateways run at once, each pinned to CPU 1 (`switchyard serve` with
`benchmarks/bench-config.yaml`: metering, SQLite ledger, budgets and rate limits on, each in a fresh
directory), in front of the mock upstream on CPU 0 with the load generator; closed-loop windows of
``--seconds`` (32 connections, distinct small prompts) go to one and then the other, so both see
the same point of their run and the same machine. ``--size``: prompts of that many bytes (each
distinct); ``--before-model``: the model the first gateway's requests name instead (``--before .
--routed --before-model mock-gpt``: one checkout, a named model against the routed alias);
``--redis``: both gateways keep their limits and budgets in one private Redis (CPU 0); ``--chunks``: streamed answers of that many chunks instead of non-streaming ones (``--pace-ms``: the
mock's pause between their events; by default it sends them at once). What grows with a run shows
here and not in short benchmarks: the ledger's size, and the budget reconciliation every 30 s (``limits.
reconcile_interval``), which reads every request settled since the last one. Printed: each
window's CPU milliseconds per request (the gateway's process tree) for both, then the median, the
90th percentile and the worst window of each. Runs itself in a private network namespace, as
benchmarks/sizes.py does.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Awaitable, Callable

HERE = Path(__file__).resolve().parent
MOCK, PORTS = 4890, {"before": 4881, "after": 4882}
KEY = "sk-bench-key"


ROUTED_POLICY = """
name: bench-auto
bind: {aliases: [mock-auto]}
candidates: [mock-gpt, mock-gpt-b]
objective: {type: cheapest_above, target: 0}
"""


def routed_config(work: Path, policy: str = ROUTED_POLICY) -> Path:
    """bench-config.yaml with a second, dearer deployment of the mock and a policy over both."""
    (work / "policies").mkdir()
    (work / "policies" / "bench-auto.yaml").write_text(policy)
    text = (HERE / "bench-config.yaml").read_text()
    second = (
        "model_list:\n  - model_name: mock-gpt-b\n    litellm_params: {model: openai/mock-gpt, api_base: "
        "os.environ/UPSTREAM_URL, api_key: os.environ/BENCH_PROVIDER_KEY}\n"
        "    model_info: {input_cost_per_token: 0.000005, output_cost_per_token: 0.00002}\n"
    )
    path = work / "bench-config-routed.yaml"
    path.write_text(
        text.replace("model_list:\n", second, 1) + f"policies: {{dirs: ['{work / 'policies'}'], watch_interval: 0}}\n"
    )
    return path


def in_namespace(args: argparse.Namespace, inner: Callable[[argparse.Namespace], Awaitable[None]]) -> None:
    """Run ``inner(args)`` in a private network namespace (loopback only): the script runs itself again
    inside one, with ``--inner``."""
    if args.inner:
        asyncio.run(inner(args))
        return
    cmd = " ".join([sys.executable, os.path.abspath(sys.argv[0]), "--inner", *sys.argv[1:]])
    sys.exit(subprocess.call(["unshare", "-n", "bash", "-c", f"ip link set lo up; exec {cmd}"]))


def gateway_env() -> dict[str, str]:
    """The environment bench-config.yaml reads: the client's key, the upstream's key and URL (the mock)."""
    return {
        **os.environ,
        "BENCH_KEY": KEY,
        "BENCH_PROVIDER_KEY": "sk-upstream",
        "UPSTREAM_URL": f"http://127.0.0.1:{MOCK}/v1",
    }


def serve(python: str, checkout: str, config: Path, port: int, work: Path, env: dict[str, str]) -> subprocess.Popen:
    """`switchyard serve` of ``checkout`` under ``python``, pinned to CPU 1, in a fresh directory ``work``."""
    work.mkdir()
    return subprocess.Popen(
        ["taskset", "-c", "1", os.path.abspath(python), "-m", "router.cli.main", "serve", "--config", str(config),
         "--port", str(port), "--log-level", "warning"],
        env={**env, "PYTHONPATH": checkout}, cwd=work, stdout=open(work / "log", "wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip


async def inner(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(HERE))
    import sizes
    from run import cpu_seconds

    os.sched_setaffinity(0, {0})
    work = Path(tempfile.mkdtemp(prefix="bench-steady-"))
    env = gateway_env()
    procs = {
        "mock": sizes.start([sys.executable, str(HERE / "mock_upstream.py"), str(MOCK)], "0", {}, work / "mock.log")
    }
    config, model = HERE / "bench-config.yaml", "mock-gpt"
    if args.routed:
        config, model = routed_config(work), "mock-auto"
    if args.redis:  # limits and budgets in a private Redis, shared by both gateways (as replicas share it)
        sizes.start_redis(work, procs)
        config = sizes.redis_config(work, config)
    try:
        for name, path in (("before", str(Path(args.before).resolve())), ("after", str(HERE.parent))):
            procs[name] = serve(getattr(args, f"{name}_python"), path, config, PORTS[name], work / name, env)
        for port in (MOCK, *PORTS.values()):
            sizes.wait_port(port)
        texts, counter = sizes.prompts(args.size, 64, seed=7), [0]
        if args.pace_ms:
            texts = [f"[pace {args.pace_ms:g}] {t}" for t in texts]  # the mock reads it from the prompt
        series: dict[str, list[float]] = {"before": [], "after": []}
        t0 = time.monotonic()
        for w in range(args.windows):
            for name in ("before", "after") if w % 2 == 0 else ("after", "before"):
                c0 = cpu_seconds(procs[name].pid)
                done, errors = await sizes.window(
                    f"http://127.0.0.1:{PORTS[name]}/v1/chat/completions",
                    {"authorization": f"Bearer {KEY}"},
                    args.before_model if name == "before" and args.before_model else model,
                    texts,
                    args.chunks is not None,
                    args.chunks or 20,
                    args.seconds,
                    32,
                    counter,
                )
                if errors:
                    raise RuntimeError(f"{name}: {errors} errors")
                series[name].append((cpu_seconds(procs[name].pid) - c0) * 1000 / done)
            print(
                f"{time.monotonic() - t0:6.1f} s  before {series['before'][-1]:.4f}  after {series['after'][-1]:.4f}",
                flush=True,
            )
        for name, vals in series.items():
            ordered = sorted(vals)
            print(
                f"{name:6} median {statistics.median(vals):.4f}  p90 {ordered[int(0.9 * (len(vals) - 1))]:.4f}  "
                f"worst {ordered[-1]:.4f} ms per request"
            )
        # each window's pair ran back to back, so their ratio cancels most of the host's drift
        ratios = sorted(a / b for a, b in zip(series["after"], series["before"]))
        quart = len(ratios) // 4
        print(
            f"after / before, paired windows: median {statistics.median(ratios):.3f} (middle half "
            f"{ratios[quart]:.3f}-{ratios[-1 - quart]:.3f}); after lower in {sum(r < 1 for r in ratios)} of {len(ratios)}"
        )
    finally:
        sizes.stop(procs.values())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True, help="a checkout of the baseline commit")
    ap.add_argument("--windows", type=int, default=40)
    ap.add_argument("--before-python", default=sys.executable, help="the interpreter for --before's gateway")
    ap.add_argument("--after-python", default=sys.executable, help="the interpreter for this checkout's gateway")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--size", type=int, default=0, help="prompt bytes (0: a short question)")
    ap.add_argument("--chunks", type=int, default=None, help="stream answers of this many chunks")
    ap.add_argument(
        "--pace-ms", type=float, default=0.0, help="the mock's milliseconds between stream events (0: all at once)"
    )
    ap.add_argument("--routed", action="store_true", help="requests name an alias a routing policy decides")
    ap.add_argument(
        "--redis", action="store_true", help="limits and budgets in a (private) Redis: both gateways share it"
    )
    ap.add_argument(
        "--before-model",
        help="the model --before's requests name (with --before . --routed mock-gpt: named against routed)",
    )
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    in_namespace(ap.parse_args(), inner)


if __name__ == "__main__":
    main()
