"""CPU per request at every prompt size and stream length, beside a Rust gateway and nginx, in one run.

    python benchmarks/sizes.py [--seconds 4] [--rounds 3] [--connections 32] [--tzvenv /tmp/tzvenv]
                               [--python PY] [--compare-python PY]

Four proxies (five with ``--compare-python``), each pinned to CPU 1, in front of the same lean mock upstream (CPU 0, with the
load generator): Switchyard as shipped for benchmarks (`switchyard serve --config
benchmarks/bench-config.yaml`: metering, SQLite ledger, budgets and rate limits on), TensorZero's
Rust gateway from its Python wheel (`tensorzero._start_http_gateway`, observability off, one model
routed to the mock; ``--tzvenv``: a venv with `pip install tensorzero==2026.6.0`), and nginx's
`proxy_pass` (Debian's, one worker) as the floor, and the Python floor (`benchmarks/floor_proxy.py`:
uvicorn and Switchyard's own HTTP client forwarding bytes, no gateway logic). Scenarios: non-streaming chat with a small prompt
and with 1, 10 and 100 KB prompts, streaming chat of 20, 200 and 1,000 chunks (the mock sends an
answer's events at once, so each gateway reads them in a few reads) and of 20 chunks 5 ms apart (as
a model decodes them: every event arrives alone); every request's
prompt is distinct (a counter leads it), so no gateway sees a repeated prompt. Per scenario and
round, each gateway takes a closed-loop window of ``--seconds`` in turn (the order rotates); its
CPU time (process tree) over the window divided by the requests it answered is the figure; the
median over rounds is reported with the spread. TensorZero refuses to bind its fixed port outside
a private network namespace, so the script runs itself inside one (`unshare -n`, loopback only).
``--python``: the interpreter (of a venv with Switchyard installed) that runs Switchyard and the
Python floor, by default this one; ``--compare-python``: Switchyard measured a second time, in the
same run, under another interpreter. The output records each interpreter's build and calibration
loop (benchmarks/interpreter.py): the same code costs about a fifth less CPU per small request on
an optimised CPython build than on a plain source build.
``--shared-state``: two more proxies doing the same work with their rate-limit state in a store that
replicas share (a private Redis started on CPU 0, beside the mock; its own CPU is not counted for
either): Switchyard with `storage.redis_url` (limits and budgets in Redis, the ledger still SQLite),
and TensorZero with its rate limiting on (requests and tokens per minute, as the benchmark's config
limits them), which keeps its counters in Valkey, here the same Redis (`serve_tz_valkey.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from interpreter import describe  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT.parent / "shared" / "bench" / "gateways"
MOCK, SWITCHYARD, TENSORZERO, NGINX, FLOOR, COMPARE = 4890, 4891, 4892, 4893, 4894, 4896
SWITCHYARD_REDIS, REDIS = 4897, 6391  # --shared-state: Switchyard on Redis, and the private Redis itself
# --shared-state: TensorZero's rate limiting, kept in Valkey (here Redis), with the limits of the benchmark's
# config (requests and tokens per minute, every request); it reserves max_tokens, as Switchyard does.
# TensorZero has no spend limit (its rules count inferences and tokens), so nothing stands for the budget.
TZ_RATE_LIMITS = """
[rate_limiting]
enabled = true

[[rate_limiting.rules]]
model_inferences_per_minute = 100000000
tokens_per_minute = 100000000000
always = true
"""
KEY = "sk-bench-key"
SCENARIOS = [  # label, prompt bytes, stream, answer tokens, milliseconds between stream events (0: a burst)
    ("nonstream small", 0, False, 20, 0),
    ("nonstream 1KB", 1024, False, 20, 0),
    ("nonstream 10KB", 10 * 1024, False, 20, 0),
    ("nonstream 100KB", 100 * 1024, False, 20, 0),
    ("stream 20 chunks", 0, True, 20, 0),
    ("stream 200 chunks", 0, True, 200, 0),
    ("stream 1000 chunks", 0, True, 1000, 0),
    ("stream 20 paced 5ms", 0, True, 20, 5),
]
WORDS = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa "
    "quebec romeo sierra tango uniform victor whiskey xray yankee zulu"
).split()


def prompts(size: int, n: int, seed: int) -> list[str]:
    """``n`` distinct texts of about ``size`` bytes (a small question when 0)."""
    rng = random.Random(seed)
    if size == 0:
        return ["Write one short sentence about load testing an LLM gateway."] * n
    out = []
    for _ in range(n):
        words: list[str] = []
        length = 0
        while length < size:
            w = rng.choice(WORDS)
            words.append(w)
            length += len(w) + 1
        out.append(" ".join(words)[:size])
    return out


def cpu_seconds(pid: int) -> float:
    sys.path.insert(0, str(HERE))
    from run import cpu_seconds as cpu  # the process tree's CPU time

    return cpu(pid)


async def window(
    url: str,
    headers: dict[str, str],
    model: str,
    texts: list[str],
    stream: bool,
    tokens: int,
    seconds: float,
    conns: int,
    counter: list[int],
) -> tuple[int, int]:
    import aiohttp

    done = errors = 0
    stop_at = time.perf_counter() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conns)) as s:

        async def worker() -> None:
            nonlocal done, errors
            while time.perf_counter() < stop_at:
                counter[0] += 1
                i = counter[0]
                body = {
                    "model": model,
                    "max_tokens": tokens,
                    "stream": stream,
                    "messages": [
                        {"role": "system", "content": "You are a helpful assistant."},
                        {"role": "user", "content": f"[{i}] {texts[i % len(texts)]}"},
                    ],
                }
                if stream:
                    body["stream_options"] = {"include_usage": True}
                try:
                    async with s.post(
                        url, data=json.dumps(body), headers={**headers, "content-type": "application/json"}
                    ) as r:
                        await r.read()
                        if r.status == 200:
                            done += 1
                        else:
                            errors += 1
                except aiohttp.ClientError:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(conns)))
    return done, errors


def start_redis(work: Path, procs: dict[str, subprocess.Popen]) -> None:
    """A private Redis on CPU 0 (beside the mock and the load generator), nothing persisted."""
    procs["redis"] = start(
        [shutil.which("redis-server") or "redis-server", "--port", str(REDIS), "--save", "", "--appendonly", "no"],
        "0",
        {},
        work / "redis.log",
    )
    wait_port(REDIS)


def redis_config(work: Path, base: Path) -> Path:
    """``base`` (a bench config) with its limits and budgets in the private Redis; its own data directory."""
    text = base.read_text().replace(
        "data_dir: .switchyard-bench", f"data_dir: .switchyard-bench-redis\n  redis_url: redis://127.0.0.1:{REDIS}"
    )
    path = work / f"{base.stem}-redis.yaml"
    path.write_text(text)
    return path


def shared_state(args: argparse.Namespace, work: Path, procs: dict[str, subprocess.Popen], gateways: dict) -> Any:
    """``--shared-state``: a private Redis (CPU 0, beside the mock), Switchyard with its limits and
    budgets in it (the ledger stays SQLite), and TensorZero with its rate limits in it. Returns a
    function that waits for TensorZero's port."""
    start_redis(work, procs)
    gateways["switchyard + redis"] = (args.python, SWITCHYARD_REDIS)
    procs["switchyard + redis"] = start(
        [str(Path(args.python).with_name("switchyard")), "serve", "--config", str(redis_config(work, HERE / "bench-config.yaml")),
         "--port", str(SWITCHYARD_REDIS), "--log-level", "warning"],
        "1",
        {"BENCH_KEY": KEY, "BENCH_PROVIDER_KEY": "sk-upstream", "UPSTREAM_URL": f"http://127.0.0.1:{MOCK}/v1"},
        work / "switchyard-redis.log",
    )  # fmt: skip
    tz_cfg = work / "tensorzero-rate-limits.toml"
    tz_cfg.write_text(
        (SHARED / "tensorzero" / "tensorzero.toml").read_text().replace("4890", str(MOCK)) + TZ_RATE_LIMITS
    )
    port_file = work / "tensorzero-rate-limits.port"
    procs["tensorzero + rate limits"] = start(
        [str(Path(args.tzvenv) / "bin" / "python"), str(HERE / "serve_tz_valkey.py"), str(tz_cfg),
         f"redis://127.0.0.1:{REDIS}", str(port_file)],
        "1",
        {},
        work / "tensorzero-rate-limits.log",
    )  # fmt: skip

    def port() -> int:
        t0 = time.monotonic()
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() - t0 > 120:
                raise RuntimeError("TensorZero with rate limits did not start")
            time.sleep(0.1)
        n = int(port_file.read_text())
        wait_port(n)
        return n

    return port


def start(cmd: list[str], cpus: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        ["taskset", "-c", cpus, *cmd],
        env={**os.environ, **env},
        stdout=open(log, "ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=str(log.parent),
    )


def stop(procs: Any) -> None:
    """Ends each process's group: SIGTERM, then SIGKILL after 20 s."""
    for p in procs:
        try:
            os.killpg(p.pid, 15)
            p.wait(20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(p.pid, 9)


def wait_log(path: Path, text: str, timeout: float = 120) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{path.name} never said {text!r}")


def wait_port(port: int, timeout: float = 120) -> None:
    import socket

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


async def inner(args: argparse.Namespace) -> None:
    os.sched_setaffinity(0, {0})
    work = Path(tempfile.mkdtemp(prefix="bench-sizes-"))
    procs: dict[str, subprocess.Popen] = {}
    try:
        procs["mock"] = start([sys.executable, str(HERE / "mock_upstream.py"), str(MOCK)], "0", {}, work / "mock.log")
        wait_port(MOCK)
        args.python = os.path.abspath(args.python)  # the processes start in the work directory
        gateways = {"switchyard": (args.python, SWITCHYARD)}
        if args.compare_python:
            gateways["switchyard (compare)"] = (os.path.abspath(args.compare_python), COMPARE)
        for name, (python, port) in gateways.items():
            procs[name] = start(
                [
                    str(Path(python).with_name("switchyard")),
                    "serve",
                    "--config",
                    str(HERE / "bench-config.yaml"),
                    "--port",
                    str(port),
                    "--log-level",
                    "warning",
                ],
                "1",
                {"BENCH_KEY": KEY, "BENCH_PROVIDER_KEY": "sk-upstream", "UPSTREAM_URL": f"http://127.0.0.1:{MOCK}/v1"},
                work / f"{name.replace(' ', '-')}.log",
            )
        tz_cfg = work / "tensorzero.toml"
        tz_cfg.write_text((SHARED / "tensorzero" / "tensorzero.toml").read_text().replace("4890", str(MOCK)))
        procs["tensorzero"] = start(
            [
                str(Path(args.tzvenv) / "bin" / "python"),
                str(SHARED / "tensorzero" / "serve_tz.py"),
                str(tz_cfg),
                str(TENSORZERO),
            ],
            "1",
            {},
            work / "tensorzero.log",
        )
        ng = work / "nginx"
        (ng / "tmp").mkdir(parents=True)
        conf = (
            (SHARED / "nginx" / "nginx.conf")
            .read_text()
            .replace("/tmp/bench-nginx", str(ng))
            .replace("4890", str(MOCK))
            .replace("4895", str(NGINX))
            .replace("worker_cpu_affinity 10;", "")
        )
        (ng / "nginx.conf").write_text(conf)
        procs["nginx"] = start(
            [shutil.which("nginx") or "/usr/sbin/nginx", "-c", str(ng / "nginx.conf"), "-g", "daemon off;"],
            "1",
            {},
            work / "nginx.log",
        )
        procs["python floor"] = start(
            [args.python, str(HERE / "floor_proxy.py"), str(FLOOR), f"http://127.0.0.1:{MOCK}/v1"],
            "1",
            {},
            work / "floor.log",
        )
        if args.shared_state:  # after TensorZero has bound: while it binds, the host has one ephemeral port
            wait_log(work / "tensorzero.log", "gateway at")  # (connecting to it to see would take that port)
        tz_rl_port = shared_state(args, work, procs, gateways) if args.shared_state else None
        for port in (*(p for _, p in gateways.values()), TENSORZERO, NGINX, FLOOR):
            wait_port(port)
        targets = {
            name: (f"http://127.0.0.1:{port}/v1/chat/completions", {"authorization": f"Bearer {KEY}"}, "mock-gpt")
            for name, (_, port) in gateways.items()
        }
        if tz_rl_port is not None:
            targets["tensorzero + rate limits"] = (
                f"http://127.0.0.1:{tz_rl_port()}/openai/v1/chat/completions",
                {},
                "tensorzero::model_name::mock-gpt",
            )
        targets |= {
            "tensorzero": (
                f"http://127.0.0.1:{TENSORZERO}/openai/v1/chat/completions",
                {},
                "tensorzero::model_name::mock-gpt",
            ),
            "nginx": (f"http://127.0.0.1:{NGINX}/v1/chat/completions", {}, "mock-gpt"),
            "python floor": (f"http://127.0.0.1:{FLOOR}/v1/chat/completions", {}, "mock-gpt"),
        }
        names = list(targets)
        counter = [0]
        out: dict[str, Any] = {
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "args": vars(args),
            # the CPython build each Python process ran on, and its calibration loop on CPU 1
            "interpreters": {name: describe(python) for name, (python, _) in gateways.items()},
            "scenarios": {},
        }
        for label, size, stream, tokens, pace in SCENARIOS:
            texts = prompts(size, 64, seed=size + tokens)
            if pace:  # the mock reads it from the prompt, so every gateway forwards it alike
                texts = [f"[pace {pace}] {t}" for t in texts]
            per: dict[str, list[float]] = {n: [] for n in names}
            for name in names:  # warm-up, and a check that every gateway answers this scenario
                url, headers, model = targets[name]
                done, errors = await window(url, headers, model, texts, stream, tokens, 0.5, 4, counter)
                if errors or not done:
                    raise RuntimeError(f"{name} {label}: {done} answered, {errors} errors")
            for r in range(args.rounds):
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    url, headers, model = targets[name]
                    pid = procs[name].pid
                    c0 = cpu_seconds(pid)
                    done, errors = await window(
                        url, headers, model, texts, stream, tokens, args.seconds, args.connections, counter
                    )
                    if errors:
                        raise RuntimeError(f"{name} {label}: {errors} errors")
                    per[name].append((cpu_seconds(pid) - c0) * 1000 / done)
            med = {n: sorted(v)[len(v) // 2] for n, v in per.items()}
            out["scenarios"][label] = {"cpu_ms_per_req": per, "median": med}
            print(
                f"{label:<20} "
                + "  ".join(f"{n} {med[n]:7.3f} ms ({min(per[n]):.3f}-{max(per[n]):.3f})" for n in names),
                flush=True,
            )
        Path(args.out).write_text(json.dumps(out, indent=2))
        print(f"results: {args.out}")
    finally:
        stop(procs.values())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--tzvenv", default="/tmp/tzvenv")
    ap.add_argument(
        "--python",
        default=sys.executable,
        help="the interpreter of a venv with Switchyard installed: it runs Switchyard and the Python floor",
    )
    ap.add_argument("--compare-python", help="also measure Switchyard under this interpreter (its venv's), same run")
    ap.add_argument(
        "--shared-state",
        action="store_true",
        help="also Switchyard with its limits in Redis, and TensorZero with its rate limits in Redis (Valkey)",
    )
    ap.add_argument("--out", default=str(HERE / "sizes.json"))
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inner:
        asyncio.run(inner(args))
        return
    host = str(os.stat("/proc/self/ns/net").st_ino)
    cmd = " ".join([sys.executable, __file__, "--inner", *sys.argv[1:]])
    sys.exit(
        subprocess.call(
            ["unshare", "-n", "bash", "-c", f"ip link set lo up; exec {cmd}"], env={**os.environ, "HOST_NETNS": host}
        )
    )


if __name__ == "__main__":
    main()
