"""/healthz latency while the gateway is attacked, against the same gateway at rest in the same run.

    python benchmarks/hostile.py [--seconds 20] [--bad-keys-per-s 1000] [--header-mb 128]

Starts ``switchyard serve`` (simulated providers, a virtual key, the default header limits) and
measures /healthz round trips (one every 20 ms, on a fresh connection each, as a kubelet probe) in
three phases: at rest; while one client streams a header of ``--header-mb`` MB (reconnecting
whenever the gateway cuts it off, until the whole amount is sent) and another sends
``--bad-keys-per-s`` requests with random bad keys; at rest again. Prints p50/p99/max per phase
and what the attackers got. Figures go in benchmarks/RESULTS.md ("Hostile clients").
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
CONFIG = """
model_list:
  - {model_name: sim, litellm_params: {model: simulated/mid, speed: 50}}
server: {auth_failures_per_minute: 20}
auth:
  admin_key: os.environ/BENCH_ADMIN
  keys: [{id: bench, tenant: t, key: os.environ/BENCH_KEY}]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def probe(port: int, seconds: float) -> list[float]:
    out = []
    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        t0 = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            data = b""
            while b"\r\n\r\n" not in data:
                data += s.recv(4096)
        assert data.startswith(b"HTTP/1.1 200"), data[:100]
        out.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.02)
    return out


def header_flood(port: int, total: int, stop, stats) -> None:  # type: ignore[no-untyped-def]
    """Streams one ``total``-byte header, reconnecting whenever the gateway cuts it off, and starts
    over until told to stop (so the attack lasts the whole window)."""
    chunk = b"a" * 65536
    sent = cut = 0
    while not stop.is_set():
        this = 0
        while this < total and not stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                    s.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-flood: ")
                    while this < total and not stop.is_set():
                        s.sendall(chunk)
                        this += len(chunk)
            except OSError:
                cut += 1  # the gateway answered 431 and closed: reconnect and go on
        sent += this
    stats["bytes"], stats["cut_off"] = sent, cut


def bad_keys(port: int, rate: int, stop, counts) -> None:  # type: ignore[no-untyped-def]
    """Requests with random bad keys at ``rate`` per second on 8 kept-alive connections (raw
    sockets: the client must not be the bottleneck)."""
    conns = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(8)]
    body = b'{"model": "sim", "messages": [{"role": "user", "content": "hi"}]}'
    start, n = time.monotonic(), 0
    while not stop.is_set():
        due = start + n / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        c = conns[n % len(conns)]
        req = (
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"authorization: Bearer "
            + secrets.token_hex(16).encode()
            + b"\r\ncontent-length: %d\r\n\r\n" % len(body)
            + body
        )
        c.sendall(req)
        data = b""
        while b"\r\n\r\n" not in data:
            data += c.recv(65536)
        head, _, rest = data.partition(b"\r\n\r\n")
        length = int(next(h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")))
        while len(rest) < length:
            rest += c.recv(65536)
        status = head.split(b" ", 2)[1].decode()
        counts[status] = counts.get(status, 0) + 1
        n += 1
    counts["sent"] = n
    counts["rate"] = int(n / (time.monotonic() - start))


def summary(name: str, ms: list[float]) -> str:
    q = statistics.quantiles(ms, n=100)
    return f"{name:<10} probes {len(ms):4d}  p50 {q[49]:6.2f} ms  p99 {q[98]:6.2f} ms  max {max(ms):7.2f} ms"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--bad-keys-per-s", type=int, default=1000)
    ap.add_argument("--header-mb", type=int, default=128)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sy-hostile-"))
    (work / "config.yaml").write_text(CONFIG)
    port = free_port()
    env = {**os.environ, "BENCH_ADMIN": secrets.token_hex(16), "BENCH_KEY": secrets.token_hex(16)}
    exe = str(Path(sys.executable).with_name("switchyard"))
    gw = subprocess.Popen(
        [exe, "serve", "--config", str(work / "config.yaml"), "--port", str(port)],
        cwd=work,
        env=env,
        stdout=open(work / "gw.log", "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        for _ in range(200):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        rest = probe(port, args.seconds / 2)
        manager = multiprocessing.Manager()
        stop = manager.Event()
        flood = manager.dict({"cut_off": 0, "bytes": 0})
        keys = manager.dict()
        procs = [
            multiprocessing.Process(target=header_flood, args=(port, args.header_mb << 20, stop, flood)),
            multiprocessing.Process(target=bad_keys, args=(port, args.bad_keys_per_s, stop, keys)),
        ]
        for p in procs:  # separate processes: the probe must not wait for the attackers' interpreter
            p.start()
        time.sleep(1)
        attacked = probe(port, args.seconds)
        stop.set()
        for p in procs:
            p.join()
        after = probe(port, args.seconds / 2)
        print(summary("at rest", rest))
        print(summary("attacked", attacked))
        print(summary("after", after))
        print(
            f"header flood: {flood['bytes'] / 2**20:.0f} MB of {args.header_mb} MB headers sent over "
            f"{flood['cut_off']} connections, each cut off by a 431 at the header limit"
        )
        print(
            f"bad keys: {keys.get('sent', 0)} sent at {keys.get('rate', 0)}/s, answers "
            f"{dict(sorted((k, v) for k, v in keys.items() if k.isdigit()))}"
        )
        print(f"gateway alive: {gw.poll() is None}")
    finally:
        os.killpg(gw.pid, signal.SIGTERM)
        gw.wait(30)


if __name__ == "__main__":
    main()
