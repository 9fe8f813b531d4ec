"""What OpenTelemetry costs the gateway: CPU milliseconds per request with tracing off and on.

    python benchmarks/telemetry.py [--rate 200] [--seconds 5] [--rounds 5] [--baseline-src DIR]

The shipped benchmark config (benchmarks/bench-config.yaml: metering, ledger, budgets, rate limits)
in front of the lean mock upstream, two gateway processes on CPU 1: one with telemetry off (the
default), one exporting traces and GenAI metrics over OTLP/HTTP to a local sink on CPU 0 (which
reads and drops what it receives), ``OTEL_BSP_SCHEDULE_DELAY`` and ``OTEL_METRIC_EXPORT_INTERVAL``
at the SDK's defaults. Per round each gateway takes the same open-loop rate in turn (the order
alternates), non-streaming then 20-chunk streaming chat; the figure is the median over rounds of
on/off CPU per request, so the machine's drift cancels out. ``--baseline-src DIR`` adds a third
gateway running the source tree at DIR (a checkout of an earlier commit) with telemetry off: off
against it shows whether "off" costs anything.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import BODY, HERE, KEY, ROOT, cpu_seconds, first_answer, free_port, launch, open_loop, start, stop  # noqa: E402


def sink() -> tuple[str, list[int]]:
    """An OTLP/HTTP endpoint that accepts and drops every export: (base URL, [exports, bytes])."""
    seen = [0, 0]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            n = int(self.headers.get("content-length", 0))
            self.rfile.read(n)
            seen[0] += 1
            seen[1] += n
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", seen


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--baseline-src", help="a source tree of an earlier commit: its gateway, telemetry off")
    ap.add_argument("--out", default=str(HERE / "telemetry.json"))
    args = ap.parse_args()
    os.sched_setaffinity(0, {0})
    mock_port = free_port()
    mock = start([sys.executable, str(HERE / "mock_upstream.py"), str(mock_port)], "0", {}, tempfile.mkdtemp())
    mock_url = f"http://127.0.0.1:{mock_port}/v1"
    collector, seen = sink()
    env = {"BENCH_KEY": KEY, "BENCH_PROVIDER_KEY": "sk-upstream"}

    def serve(src: Path) -> list[str]:
        """``switchyard serve`` on the shipped benchmark config, from the source tree ``src`` (each
        gateway is started the same way, so only the code differs)."""
        return [
            sys.executable,
            "-c",
            f"import sys; sys.path.insert(0, {str(src)!r}); sys.argv[0] = 'switchyard'; "
            "from router.cli import main; main()",
            "serve",
            "--config",
            str(HERE / "bench-config.yaml"),
            "--port",
            "{port}",
            "--log-level",
            "warning",
        ]

    gateways = {"off": (serve(ROOT), env), "on": (serve(ROOT), {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": collector})}
    if args.baseline_src:
        gateways["baseline-off"] = (serve(Path(args.baseline_src).resolve()), env)
    headers = {"authorization": f"Bearer {KEY}"}
    procs: dict[str, Any] = {}
    out: dict[str, Any] = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "args": vars(args)}
    try:
        await first_answer(mock_url + "/chat/completions", {})
        for label, (cmd, e) in gateways.items():
            p, url = launch(f"otel-{label}", cmd, e, mock_url)
            procs[label] = (p, url)
            await first_answer(url, headers)
        labels = list(procs)
        for mode in ("nonstream", "stream"):
            body = dict(BODY, stream=True, stream_options={"include_usage": True}) if mode == "stream" else BODY
            per: dict[str, list[float]] = {k: [] for k in labels}
            for label in labels:  # warm-up
                await open_loop(procs[label][1], headers, body, args.rate, 1.0)
            for r in range(args.rounds):
                for label in labels if r % 2 == 0 else labels[::-1]:
                    p, url = procs[label]
                    c0 = cpu_seconds(p.pid)
                    res = await open_loop(url, headers, body, args.rate, args.seconds)
                    if res["errors"]:
                        raise RuntimeError(f"{label} {mode}: {res['errors']} errors")
                    per[label].append((cpu_seconds(p.pid) - c0) * 1000 / res["requests"])
            ratios = {k: sorted(x / o for x, o in zip(per[k], per["off"])) for k in labels}
            out[mode] = {
                "cpu_ms_per_req": per,
                "ratio_to_off": ratios,
                "median_cpu_ms": {k: sorted(v)[len(v) // 2] for k, v in per.items()},
                "median_ratio": {k: v[len(v) // 2] for k, v in ratios.items()},
            }
            for k in labels:
                print(
                    f"  {mode:<9} {k:<13} cpu {out[mode]['median_cpu_ms'][k]:6.3f} ms/req  /off per round: "
                    + " ".join(f"{x:.3f}" for x in ratios[k])
                    + f"  -> median {out[mode]['median_ratio'][k]:.3f}x",
                    flush=True,
                )
        out["exports"] = {"count": seen[0], "bytes": seen[1]}
        if not seen[0]:
            raise RuntimeError("the traced gateway exported nothing")
    finally:
        for p, _ in procs.values():
            stop(p)
        stop(mock)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"results: {args.out}  ({seen[0]} OTLP exports, {seen[1] / 1e6:.1f} MB)")


if __name__ == "__main__":
    asyncio.run(main())
