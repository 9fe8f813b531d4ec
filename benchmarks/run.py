"""Switchyard's gateway benchmark: what the gateway adds, measured against the upstream alone.

    python benchmarks/run.py [--duration 10] [--rates 100,300] [--redis-url U --database-url U]
                             [--litellm /path/to/venv] [--out benchmarks/results.json]

Starts the lean mock upstream (benchmarks/mock_upstream.py) on CPU 0 and the gateway exactly as
a user would (``switchyard serve --config benchmarks/bench-config.yaml``) pinned to CPU 1, with
metering, the ledger, budgets and rate limits on; then, for non-streaming and 20-chunk streaming
chat: the start-to-first-answer time, open-loop latency at each rate against the mock measured
directly in the same run (added p50/p90/p99, time to first byte), closed-loop maximum throughput,
gateway CPU milliseconds per request (its process tree), and peak resident memory. With
``--redis-url/--database-url`` a second configuration runs on Redis and PostgreSQL; with
``--litellm VENV`` LiteLLM's proxy runs through the same scenarios in the same run, and then the
two gateways' maximum throughput is measured in alternating windows (``--pair-rounds``): the
ratio is the median of the per-round ratios, so the machine's drift cancels out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from interpreter import describe  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HZ = os.sysconf("SC_CLK_TCK")
BODY = {
    "model": "mock-gpt",
    "max_tokens": 20,
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Write one short sentence about load testing an LLM gateway."},
    ],
}
KEY = "sk-bench-key"
_SYSTEM, _USER = BODY["messages"][0]["content"], BODY["messages"][1]["content"]
# the same request on each API surface (--surfaces): path under /v1, body
SURFACES = {
    "chat": ("/chat/completions", BODY),
    "responses": (
        "/responses",
        {"model": "mock-gpt", "max_output_tokens": 20, "instructions": _SYSTEM, "input": _USER, "store": False},
    ),
    "responses+store": (
        "/responses",
        {"model": "mock-gpt", "max_output_tokens": 20, "instructions": _SYSTEM, "input": _USER},
    ),
    "messages": (
        "/messages",
        {"model": "mock-gpt", "max_tokens": 20, "system": _SYSTEM, "messages": [{"role": "user", "content": _USER}]},
    ),
    "completions": ("/completions", {"model": "mock-gpt", "max_tokens": 20, "prompt": _USER}),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def cpu_seconds(pid: int) -> float:
    total = 0
    for p in tree(pid):
        try:
            f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
            total += int(f[11]) + int(f[12])
        except (OSError, IndexError):
            pass
    return total / HZ


def rss_mb(pid: int) -> float:
    total = 0
    for p in tree(pid):
        try:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


class Sampler(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop_flag = pid, 0.0, False

    def run(self) -> None:
        while not self.stop_flag:
            self.peak = max(self.peak, rss_mb(self.pid))
            time.sleep(0.25)


def start(cmd: list[str], cpus: str, env: dict[str, str], cwd: str) -> subprocess.Popen:
    return subprocess.Popen(
        ["taskset", "-c", cpus, *cmd],
        env={**os.environ, **env},
        cwd=cwd,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=open(Path(cwd) / "stderr.log", "ab"),
    )


def stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)


async def first_answer(url: str, headers: dict[str, str], timeout: float = 120) -> float:
    t0 = time.monotonic()
    async with aiohttp.ClientSession() as s:
        while time.monotonic() - t0 < timeout:
            try:
                async with s.post(url, json=BODY, headers=headers) as r:
                    if r.status == 200:
                        await r.read()
                        return time.monotonic() - t0
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.02)
    raise RuntimeError(f"{url} never answered")


async def open_loop(
    url: str, headers: dict[str, str], body: dict[str, Any], rate: float, seconds: float
) -> dict[str, Any]:
    """Requests at fixed intervals; latency counted from the scheduled start (no coordinated omission)."""
    n = int(rate * seconds)
    lat: list[float] = []
    ttfb: list[float] = []
    errors = 0
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as s:
        t0 = time.perf_counter() + 0.05

        async def one(i: int) -> None:
            nonlocal errors
            at = t0 + i / rate
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            try:
                async with s.post(url, json=body, headers=headers) as r:
                    first = None
                    async for _ in r.content.iter_any():
                        first = first or time.perf_counter()
                    if r.status != 200:
                        errors += 1
                        return
                    ttfb.append((first or time.perf_counter()) - at)
                    lat.append(time.perf_counter() - at)
            except aiohttp.ClientError:
                errors += 1

        await asyncio.gather(*(one(i) for i in range(n)))
    lat.sort()
    ttfb.sort()

    def q(xs: list[float], p: float) -> float:
        return xs[min(len(xs) - 1, int(len(xs) * p))] * 1000 if xs else float("nan")

    return {
        "requests": n,
        "errors": errors,
        "p50": q(lat, 0.5),
        "p90": q(lat, 0.9),
        "p99": q(lat, 0.99),
        "ttfb50": q(ttfb, 0.5),
    }


async def closed_loop(
    url: str, headers: dict[str, str], body: dict[str, Any], conns: int, seconds: float
) -> dict[str, Any]:
    done = errors = 0
    stop_at = time.perf_counter() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conns)) as s:

        async def worker() -> None:
            nonlocal done, errors
            while time.perf_counter() < stop_at:
                try:
                    async with s.post(url, json=body, headers=headers) as r:
                        await r.read()
                        done += r.status == 200
                        errors += r.status != 200
                except aiohttp.ClientError:
                    errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(conns)))
        return {"rps": done / (time.perf_counter() - t0), "errors": errors, "requests": done}


def wrk_max(
    url: str, headers: dict[str, str], body: dict[str, Any], conns: int, seconds: float
) -> dict[str, Any] | None:
    """Closed loop with wrk when it is installed (a C client, so the client is not the limit)."""
    if subprocess.run(["which", "wrk"], capture_output=True).returncode != 0:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(
            f'wrk.method = "POST"\nwrk.body = {json.dumps(json.dumps(body))}\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            + "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in headers.items())
        )
    out = subprocess.run(
        ["taskset", "-c", "0", "wrk", "-t1", f"-c{conns}", f"-d{int(seconds)}s", "-s", f.name, url],
        capture_output=True,
        text=True,
    ).stdout
    rps = next((float(line.split()[1]) for line in out.splitlines() if line.startswith("Requests/sec")), 0.0)
    total = next((int(line.split()[0]) for line in out.splitlines() if "requests in" in line), 0)
    non2xx = next((int(line.split()[-1]) for line in out.splitlines() if "Non-2xx" in line), 0)
    ok = max(0, total - non2xx)
    return {"rps": rps * ok / total if total else 0.0, "errors": non2xx, "requests": ok}


async def ledger_queue(url: str) -> float | None:
    """The gateway's ledger queue depth right after a window: a writer falling behind would show
    here (and as memory), so maximum throughput is only quoted with the ledger keeping up."""
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(url.split("/v1/")[0] + "/metrics") as r:
                text = await r.text() if r.status == 200 else ""
    except aiohttp.ClientError:
        return None
    return next(
        (float(line.split()[-1]) for line in text.splitlines() if line.startswith("switchyard_ledger_queue_depth")),
        None,
    )


async def scenario_set(
    label: str,
    url: str,
    pid: int | None,
    args: argparse.Namespace,
    headers: dict[str, str],
    rates: list[float] | None = None,
) -> dict[str, Any]:
    res: dict[str, Any] = {}
    for mode in ("nonstream", "stream"):
        body = dict(BODY, stream=True, stream_options={"include_usage": True}) if mode == "stream" else BODY
        for rate in rates or args.rates:
            await open_loop(url, headers, body, rate, 1.0)  # warm-up
            c0 = cpu_seconds(pid) if pid else 0.0
            r = await open_loop(url, headers, body, rate, args.duration)
            if pid:
                r["cpu_ms_per_req"] = (cpu_seconds(pid) - c0) * 1000 / max(1, r["requests"] - r["errors"])
            res[f"{mode}@{rate}"] = r
            print(
                f"  {label:<22} {mode:<9} {rate:>5} rps  p50 {r['p50']:7.2f}  p90 {r['p90']:7.2f}  p99 {r['p99']:7.2f} ms"
                f"  ttfb50 {r['ttfb50']:6.2f}  err {r['errors']}  cpu {r.get('cpu_ms_per_req', float('nan')):.2f} ms/req",
                flush=True,
            )
        c0 = cpu_seconds(pid) if pid else 0.0
        m = wrk_max(url, headers, body, args.connections, args.duration) if not args.no_wrk else None
        if m is None:
            m = await closed_loop(url, headers, body, args.connections, args.duration)
        if pid:
            m["cpu_ms_per_req"] = (cpu_seconds(pid) - c0) * 1000 / max(1, m["requests"])
            m["ledger_queue_after"] = await ledger_queue(url)
        res[f"{mode}@max"] = m
        print(
            f"  {label:<22} {mode:<9}   max  {m['rps']:9.1f} rps  err {m['errors']}  "
            f"cpu {m.get('cpu_ms_per_req', float('nan')):.2f} ms/req  ledger queue after {m.get('ledger_queue_after')}",
            flush=True,
        )
    return res


def launch(label: str, cmd: list[str], env: dict[str, str], mock_url: str) -> tuple[subprocess.Popen, str]:
    """A gateway on CPU 1 on a free port, in its own working directory: (process, chat URL)."""
    port = free_port()
    work = tempfile.mkdtemp(prefix=f"bench-{label}-")
    p = start(
        [c.replace("{port}", str(port)) for c in cmd],
        "1",
        {**env, "UPSTREAM_URL": mock_url, "MOCK_URL": mock_url},
        work,
    )
    return p, f"http://127.0.0.1:{port}/v1/chat/completions"


async def run_gateway(
    label: str,
    cmd: list[str],
    env: dict[str, str],
    args: argparse.Namespace,
    mock_url: str,
    headers: dict[str, str],
    rates: list[float] | None = None,
) -> dict[str, Any]:
    t0 = time.monotonic()
    p, url = launch(label, cmd, env, mock_url)
    sampler = Sampler(p.pid)
    sampler.start()
    try:
        await first_answer(url, headers)
        startup = time.monotonic() - t0
        print(f"  {label:<22} start to first answer {startup:.2f} s", flush=True)
        out = await scenario_set(label, url, p.pid, args, headers, rates)
        out["startup_s"] = startup
        out["peak_rss_mb"] = sampler.peak
        out["idle_rss_mb"] = rss_mb(p.pid)
        return out
    finally:
        sampler.stop_flag = True
        stop(p)


async def paired_max(
    gateways: dict[str, tuple[list[str], dict[str, str], dict[str, str]]], args: argparse.Namespace, mock_url: str
) -> dict[str, Any]:
    """Maximum throughput of two gateways in alternating windows (A B, B A, A B...), both running
    on CPU 1 and each loaded only in its own window. The machine's speed drifts by 20-50% within
    minutes here; back-to-back windows see the same drift, so the median of the per-round ratios
    is the figure a ratio should be (two blocks minutes apart are not)."""
    procs: dict[str, tuple[subprocess.Popen, str, dict[str, str]]] = {}
    out: dict[str, Any] = {}
    try:
        for label, (cmd, env, headers) in gateways.items():
            p, url = launch(f"pair-{label}", cmd, env, mock_url)
            procs[label] = (p, url, headers)
            await first_answer(url, headers)
        names = list(procs)
        for mode in ("nonstream", "stream"):
            body = dict(BODY, stream=True, stream_options={"include_usage": True}) if mode == "stream" else BODY
            runs: dict[str, list[dict[str, float]]] = {n: [] for n in names}
            for n in names:  # warm-up
                p, url, headers = procs[n]
                wrk_max(url, headers, body, args.connections, 2)
            for r in range(args.pair_rounds):
                for n in names if r % 2 == 0 else names[::-1]:
                    p, url, headers = procs[n]
                    c0 = cpu_seconds(p.pid)
                    m = wrk_max(url, headers, body, args.connections, args.pair_seconds) or {"rps": 0.0, "requests": 0}
                    m["cpu_ms_per_req"] = (cpu_seconds(p.pid) - c0) * 1000 / max(1, m["requests"])
                    runs[n].append(m)
            a, b = names
            ratios = sorted(x["rps"] / max(y["rps"], 1e-9) for x, y in zip(runs[a], runs[b]))
            out[mode] = {
                "rounds": runs,
                "ratios": ratios,
                "median_ratio": ratios[len(ratios) // 2],
                **{f"median_rps_{n}": sorted(x["rps"] for x in runs[n])[len(runs[n]) // 2] for n in names},
            }
            print(
                f"  paired {mode:<9} {a} / {b} per round: "
                + " ".join(f"{x:.1f}" for x in ratios)
                + f"  -> median {out[mode]['median_ratio']:.1f}x",
                flush=True,
            )
    finally:
        for p, _, _ in procs.values():
            stop(p)
    return out


async def surface_cpu(
    cmd: list[str], env: dict[str, str], headers: dict[str, str], args: argparse.Namespace, mock_url: str
) -> dict[str, Any]:
    """Gateway CPU per request on each API surface against chat completions, through one gateway
    process and the same upstream: per round, each surface at the same open-loop rate in turn (the
    order rotates), its CPU milliseconds per request divided by chat's in that round; the figure is
    the median of the rounds' ratios, so the machine's drift cancels out."""
    p, url = launch("surfaces", cmd, env, mock_url)
    base = url.rsplit("/chat/completions", 1)[0]
    names = list(SURFACES)
    out: dict[str, Any] = {}
    try:
        await first_answer(url, headers)
        for mode in ("nonstream", "stream"):
            per: dict[str, list[float]] = {n: [] for n in names}
            for name in names:  # warm-up
                path, body = SURFACES[name]
                await open_loop(base + path, headers, dict(body, stream=mode == "stream"), args.surface_rate, 1.0)
            for r in range(args.surface_rounds):
                order = names[r % len(names) :] + names[: r % len(names)]
                for name in order:
                    path, body = SURFACES[name]
                    c0 = cpu_seconds(p.pid)
                    res = await open_loop(
                        base + path,
                        headers,
                        dict(body, stream=mode == "stream"),
                        args.surface_rate,
                        args.surface_seconds,
                    )
                    if res["errors"]:
                        raise RuntimeError(f"{name} {mode}: {res['errors']} errors")
                    per[name].append((cpu_seconds(p.pid) - c0) * 1000 / res["requests"])
            ratios = {n: sorted(x / c for x, c in zip(per[n], per["chat"])) for n in names}
            out[mode] = {
                "cpu_ms_per_req": per,
                "ratio_to_chat": ratios,
                "median_ratio": {n: ratios[n][len(ratios[n]) // 2] for n in names},
            }
            for n in names:
                cpu = sorted(per[n])[len(per[n]) // 2]
                print(
                    f"  {mode:<9} {n:<16} cpu {cpu:6.2f} ms/req  /chat per round: "
                    + " ".join(f"{x:.2f}" for x in ratios[n])
                    + f"  -> median {out[mode]['median_ratio'][n]:.2f}x",
                    flush=True,
                )
    finally:
        stop(p)
    return out


def added(gw: dict[str, Any], direct: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, g in gw.items():
        d = direct.get(key)
        if isinstance(g, dict) and d and "p50" in g:
            out[key] = {k: round(g[k] - d[k], 3) for k in ("p50", "p90", "p99", "ttfb50")}
    return out


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--rates", default="100,300")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--redis-url")
    ap.add_argument("--database-url")
    ap.add_argument("--litellm", help="a venv holding litellm[proxy]==1.106.2")
    ap.add_argument(
        "--litellm-rates",
        default="10",
        help="open-loop rates for LiteLLM (it saturates near 50 requests/s on one core)",
    )
    ap.add_argument("--no-wrk", action="store_true")
    ap.add_argument("--pair-rounds", type=int, default=7, help="alternating max-throughput rounds against LiteLLM")
    ap.add_argument("--pair-seconds", type=float, default=5)
    ap.add_argument(
        "--surfaces",
        action="store_true",
        help="also: CPU per request of /v1/responses, /v1/messages, /v1/completions against chat",
    )
    ap.add_argument("--only-surfaces", action="store_true", help="run the surface comparison alone")
    ap.add_argument("--surface-rate", type=float, default=200)
    ap.add_argument("--surface-seconds", type=float, default=5)
    ap.add_argument("--surface-rounds", type=int, default=5)
    ap.add_argument("--out", default=str(HERE / "results.json"))
    args = ap.parse_args()
    args.rates = [float(r) for r in args.rates.split(",")]
    args.litellm_rates = [float(r) for r in args.litellm_rates.split(",")]
    os.sched_setaffinity(0, {0})  # the client (and the mock) on CPU 0; gateways on CPU 1
    mock_port = free_port()
    mock = start([sys.executable, str(HERE / "mock_upstream.py"), str(mock_port)], "0", {}, tempfile.mkdtemp())
    mock_url = f"http://127.0.0.1:{mock_port}/v1"
    switchyard = str(Path(sys.executable).with_name("switchyard"))
    headers = {"authorization": f"Bearer {KEY}"}
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "processor": platform.processor(),
        },
        "args": {k: v for k, v in vars(args).items()},
    }
    # the CPython build each gateway ran on, with its calibration loop on CPU 1 (benchmarks/interpreter.py)
    results["interpreters"] = {"switchyard": describe(sys.executable)}
    if args.litellm:
        results["interpreters"]["litellm"] = describe(str(Path(args.litellm) / "bin" / "python"))
    serve = [
        switchyard,
        "serve",
        "--config",
        str(HERE / "bench-config.yaml"),
        "--port",
        "{port}",
        "--log-level",
        "warning",
    ]
    env = {"BENCH_KEY": KEY, "BENCH_PROVIDER_KEY": "sk-upstream"}
    try:
        await first_answer(mock_url + "/chat/completions", {})
        if args.surfaces or args.only_surfaces:
            print("API surfaces: gateway CPU per request against chat completions", flush=True)
            results["surfaces"] = await surface_cpu(serve, env, headers, args, mock_url)
            if args.only_surfaces:
                Path(args.out).write_text(json.dumps(results, indent=2))
                print(f"results: {args.out}")
                return
        print("direct (mock upstream alone)", flush=True)
        direct_rates = sorted(set(args.rates + (args.litellm_rates if args.litellm else [])))
        results["direct"] = await scenario_set("direct", mock_url + "/chat/completions", None, args, {}, direct_rates)
        print("switchyard (in-memory state, SQLite ledger)", flush=True)
        results["switchyard"] = await run_gateway("switchyard", serve, env, args, mock_url, headers)
        if args.redis_url and args.database_url:
            print("switchyard (Redis, PostgreSQL)", flush=True)
            results["switchyard_redis_pg"] = await run_gateway(
                "switchyard-redis-pg",
                [*serve[:3], str(HERE / "bench-config-redis-pg.yaml"), *serve[4:]],
                {**env, "BENCH_REDIS_URL": args.redis_url, "BENCH_DATABASE_URL": args.database_url},
                args,
                mock_url,
                headers,
            )
        if args.litellm:
            cfg = ROOT.parent / "shared" / "bench" / "gateways" / "litellm" / "config.yaml"
            litellm = (
                [
                    str(Path(args.litellm) / "bin" / "litellm"),
                    "--config",
                    str(cfg),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "{port}",
                    "--num_workers",
                    "1",
                ],
                {"LITELLM_LOG": "ERROR", "LITELLM_MODE": "PRODUCTION", "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
                {"authorization": "Bearer sk-bench-1234"},
            )
            print("litellm proxy", flush=True)
            results["litellm"] = await run_gateway(
                "litellm", litellm[0], litellm[1], args, mock_url, litellm[2], rates=args.litellm_rates
            )
            print("maximum throughput, switchyard and litellm in alternating windows", flush=True)
            results["paired_max"] = await paired_max(
                {"switchyard": (serve, env, headers), "litellm": litellm}, args, mock_url
            )
    finally:
        stop(mock)
    for name in ("switchyard", "switchyard_redis_pg", "litellm"):
        if name in results:
            results[f"{name}_added_ms"] = added(results[name], results["direct"])
    if "litellm" in results:
        # the ratio: median of back-to-back rounds; the blocks measured minutes apart are kept for reference
        results["ratio_max_rps"] = {m: results["paired_max"][m]["median_ratio"] for m in ("nonstream", "stream")}
        results["ratio_max_rps_blocks"] = {
            m: results["switchyard"][f"{m}@max"]["rps"] / max(results["litellm"][f"{m}@max"]["rps"], 1e-9)
            for m in ("nonstream", "stream")
        }
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(
        json.dumps(
            {k: v for k, v in results.items() if k.endswith("_added_ms") or k.startswith("ratio_max_rps")}, indent=2
        )
    )
    print(f"results: {args.out}")


if __name__ == "__main__":
    asyncio.run(main())
