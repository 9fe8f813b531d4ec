"""Where a request's CPU goes: py-spy samples of one gateway under steady load, per function.

    python benchmarks/profile_gateway.py [--python /tmp/debvenv/bin/python] [--seconds 15] [--rate 500]
                                          [--size BYTES] [--chunks N [--pace-ms MS]] [--routed] [--redis] [--gil] [--top 40]

Starts the mock upstream (CPU 0, with the load generator) and one gateway as `benchmarks/steady.py`
does (`switchyard serve --config benchmarks/bench-config.yaml`, pinned to CPU 1, distinct prompts),
warms it for two seconds, then samples it with py-spy (``--rate`` Hz, ``--native`` off, idle frames
dropped) while 32 connections keep it busy. Printed: requests served, CPU ms per request, and for
the ``--top`` functions their inclusive and self share of the samples, also as microseconds per
request (share x CPU per request). py-spy must be installed beside the interpreter (``pip install
py-spy``) or on PATH. Runs itself in a private network namespace, as steady.py does.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PORT = 4881


# Leaves that are a thread waiting for work (py-spy reports a lock wait as running): the ledger's SQLite
# worker and the default executor's workers. Dropped, so shares are of the work done.
IDLE = ("_connection_worker_thread (aiosqlite/core.py:59)", "_worker (concurrent/futures/thread.py:81)")


def fold(path: Path) -> tuple[collections.Counter[str], collections.Counter[str], int]:
    """Inclusive and self sample counts per frame name from py-spy's raw (collapsed) output, idle waits dropped."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames or frames[-1] in IDLE:
            total -= n
            continue
        for name in set(frames):
            inclusive[name] += n
        own[frames[-1]] += n
    return inclusive, own, total


async def inner(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(HERE))
    import sizes
    import steady
    from run import cpu_seconds

    os.sched_setaffinity(0, {0})
    work = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    procs = {
        "mock": sizes.start(
            [sys.executable, str(HERE / "mock_upstream.py"), str(steady.MOCK)], "0", {}, work / "mock.log"
        )
    }
    config, model = HERE / "bench-config.yaml", "mock-gpt"
    if args.routed:
        config, model = steady.routed_config(work), "mock-auto"
    if args.redis:  # limits and budgets in a private Redis (CPU 0), as sizes.py --shared-state runs them
        sizes.start_redis(work, procs)
        config = sizes.redis_config(work, config)
    python = os.path.abspath(args.python)
    spy = shutil.which("py-spy", path=str(Path(python).parent)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("py-spy not found: pip install py-spy")
    try:
        procs["gw"] = steady.serve(python, str(HERE.parent), config, PORT, work / "gw", steady.gateway_env())
        for port in (steady.MOCK, PORT):
            sizes.wait_port(port)
        texts, counter = sizes.prompts(args.size, 64, seed=7), [0]
        if args.pace_ms:
            texts = [f"[pace {args.pace_ms:g}] {t}" for t in texts]  # the mock reads it from the prompt
        url, headers = f"http://127.0.0.1:{PORT}/v1/chat/completions", {"authorization": f"Bearer {steady.KEY}"}
        stream, chunks = args.chunks is not None, args.chunks or 20
        await sizes.window(url, headers, model, texts, stream, chunks, 2.0, 32, counter)  # warm up
        out = work / "profile.txt"
        spy_proc = subprocess.Popen(
            [spy, "record", "-r", str(args.rate), "-f", "raw", "-o", str(out), "-d", str(int(args.seconds) + 1),
             "-p", str(procs["gw"].pid), *(["--gil"] if args.gil else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(0.5)
        c0 = cpu_seconds(procs["gw"].pid)
        done, errors = await sizes.window(url, headers, model, texts, stream, chunks, args.seconds, 32, counter)
        per = (cpu_seconds(procs["gw"].pid) - c0) * 1000 / done
        spy_proc.wait()
        inclusive, own, total = fold(out)
        print(f"{done} requests ({errors} errors), {per:.4f} CPU ms per request, {total} samples")
        print(f"{'incl %':>7} {'us/req':>7} {'self %':>7} {'us/req':>7}  function")
        for name, n in inclusive.most_common(args.top):
            s = own.get(name, 0)
            print(
                f"{100 * n / total:7.1f} {1000 * per * n / total:7.1f} {100 * s / total:7.1f} {1000 * per * s / total:7.1f}  {name}"
            )
        print("\nby self time:")
        for name, s in own.most_common(args.top):
            print(f"{100 * s / total:7.1f} {1000 * per * s / total:7.1f}  {name}")
        if args.keep:
            shutil.copy(out, args.keep)
    finally:
        sizes.stop(procs.values())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--python", default=sys.executable, help="the interpreter of a venv with Switchyard installed")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--rate", type=int, default=500, help="py-spy samples per second")
    ap.add_argument("--size", type=int, default=0, help="prompt bytes (0: a short question)")
    ap.add_argument("--chunks", type=int, default=None, help="stream answers of this many chunks")
    ap.add_argument("--pace-ms", type=float, default=0.0, help="the mock's milliseconds between stream events")
    ap.add_argument("--routed", action="store_true", help="requests name an alias a routing policy decides")
    ap.add_argument("--redis", action="store_true", help="limits and budgets in a (private) Redis")
    ap.add_argument("--gil", action="store_true", help="only samples holding the GIL (drops an idle loop's epoll wait)")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--keep", help="copy py-spy's raw output here")
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    sys.path.insert(0, str(HERE))
    import steady

    steady.in_namespace(ap.parse_args(), inner)


if __name__ == "__main__":
    main()
