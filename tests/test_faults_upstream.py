"""Faults on purpose, against the real gateway process and a controllable mock upstream process.
After every scenario the counts reconcile: requests answered = ledger records = the Prometheus
request counter = the mock upstream's own count (except where the scenario says otherwise)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time

import aiohttp
import httpx
import pytest

from tests.conftest import ADMIN_KEY, KEY_A, free_port, start_gateway, start_mock

A = {"authorization": f"Bearer {KEY_A}"}
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
MSG = [{"role": "user", "content": "hi"}]
MODELS = [
    "mock-gpt",
    "mock-timeout",
    "mock-slowbody",
    "mock-429",
    "mock-500",
    "mock-503",
    "mock-badjson",
    "mock-cut",
    "mock-nodone",
    "mock-huge",
    "mock-slow",
]


def fault_config(mock_base: str) -> str:
    lines = ["model_list:"]
    for m in MODELS:
        lines += [
            f"  - model_name: {m}",
            f"    litellm_params: {{model: openai/{m}, api_base: '{mock_base}/v1', api_key: os.environ/MOCK_PROVIDER_KEY, timeout: 2}}",
            "    model_info: {input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}",
        ]
    lines += [
        "  - model_name: refused",
        f"    litellm_params: {{model: openai/x, api_base: 'http://127.0.0.1:{free_port()}/v1', timeout: 2}}",
        "  - model_name: fast-sim",
        "    litellm_params: {model: simulated/mid, speed: 1000}",
        "server: {max_response_bytes: 1048576, keepalive_timeout: 2, graceful_shutdown: 20, auth_failures_per_minute: 1000}",
        "storage: {ledger_flush_interval: 0.05}",
        "auth:",
        "  admin_key: os.environ/TEST_ADMIN_KEY",
        "  keys: [{id: tenant-a, tenant: a, key: os.environ/TEST_KEY_A}]",
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    d = tmp_path_factory.mktemp("faults")
    mock = start_mock(d / "mock")
    gw = start_gateway(d / "gw", fault_config(mock.base))
    yield gw, mock
    gw.stop()
    mock.stop()


def counts(gw, mock, model: str) -> tuple[int, int, int]:
    usage = httpx.get(gw.base + f"/admin/usage?bucket=none&alias={model}&start=0", headers=ADMIN).json()["data"]
    ledger = usage[0]["requests"] if usage else 0
    prom = 0.0
    for line in httpx.get(gw.base + "/metrics").text.splitlines():
        if line.startswith("switchyard_requests_total{") and 'endpoint="chat"' in line:
            prom += float(line.split()[-1])
    upstream = httpx.get(mock.base + "/_stats").json()["requests"].get(model, 0)
    return ledger, int(prom), upstream


def run(gw, model: str, n: int, stream: bool = False) -> list[int]:
    statuses = []
    for _ in range(n):
        body = {"model": model, "messages": MSG, "max_tokens": 5, "stream": stream}
        with httpx.stream("POST", gw.base + "/v1/chat/completions", headers=A, json=body, timeout=30) as r:
            r.read()
            statuses.append(r.status_code)
    return statuses


def reconcile(gw, mock, model: str, n: int, *, stream: bool = False, reaches_upstream: bool = True) -> list[int]:
    before = counts(gw, mock, model)
    statuses = run(gw, model, n, stream)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        after = counts(gw, mock, model)
        if after[0] - before[0] >= n:
            break
        time.sleep(0.1)
    ledger, prom, upstream = (a - b for a, b in zip(after, before))
    assert len(statuses) == n
    assert ledger == n, f"ledger {ledger} != answered {n}"
    assert prom == n, f"prometheus {prom} != answered {n}"
    assert upstream == (n if reaches_upstream else 0), f"upstream saw {upstream}"
    return statuses


@pytest.mark.parametrize(
    "model,status",
    [
        ("mock-timeout", 504),
        ("mock-slowbody", 504),
        ("mock-429", 429),
        ("mock-500", 502),
        ("mock-503", 503),
        ("mock-badjson", 502),
        ("mock-huge", 502),
        ("mock-gpt", 200),
    ],
)
def test_upstream_fault_reconciles(rig, model, status) -> None:
    gw, mock = rig
    assert set(reconcile(gw, mock, model, 3)) == {status}


def test_connection_refused_reconciles(rig) -> None:
    gw, mock = rig
    assert set(reconcile(gw, mock, "refused", 3, reaches_upstream=False)) == {502}


@pytest.mark.parametrize("model", ["mock-cut", "mock-nodone"])
def test_broken_streams_reconcile(rig, model) -> None:
    gw, mock = rig
    assert set(reconcile(gw, mock, model, 3, stream=True)) == {200}  # the error arrives as an event


def test_idle_keepalive_connections_are_closed(rig) -> None:
    """A client that keeps a connection open after its answer is disconnected after
    server.keepalive_timeout (2 s here)."""
    gw, _ = rig
    s = socket.create_connection(("127.0.0.1", int(gw.base.rsplit(":", 1)[1])))
    s.settimeout(10)
    body = json.dumps({"model": "fast-sim", "messages": MSG, "max_tokens": 2}).encode()
    s.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        + f"authorization: Bearer {KEY_A}\r\ncontent-length: {len(body)}\r\n\r\n".encode()
        + body
    )
    got = b""
    while b"\r\n\r\n" not in got or not got.rstrip().endswith(b"}"):
        got += s.recv(65536)
    assert b" 200 " in got.split(b"\r\n")[0]
    t0 = time.monotonic()
    assert s.recv(10) == b""  # the server closed the idle connection
    assert 1.5 < time.monotonic() - t0 < 6
    s.close()


def test_connections_that_never_send_a_request_are_closed(rig) -> None:
    gw, _ = rig
    s = socket.create_connection(("127.0.0.1", int(gw.base.rsplit(":", 1)[1])))
    s.settimeout(10)
    t0 = time.monotonic()
    assert s.recv(10) == b""  # closed after server.keepalive_timeout (2 s), not held forever
    assert 1.5 < time.monotonic() - t0 < 6
    s.close()


def test_a_burst_of_1000_concurrent_connections(rig, tmp_path) -> None:
    # a gateway of its own whose idle connections wait 30 s for their request: the rig's close after
    # 2 s, and one client loop opening 1,000 connections on a busy machine can take longer than that
    # to write its first request on each (the gateway rightly closes a connection that sent nothing)
    _, mock = rig
    text = fault_config(mock.base).replace("keepalive_timeout: 2,", "keepalive_timeout: 30,")
    assert "keepalive_timeout: 30," in text
    gw = start_gateway(tmp_path / "gw", text)

    async def burst() -> list[int]:
        conn = aiohttp.TCPConnector(limit=0, force_close=True)
        async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=120)) as s:

            async def one() -> int:
                async with s.post(
                    gw.base + "/v1/chat/completions",
                    headers=A,
                    json={"model": "fast-sim", "messages": MSG, "max_tokens": 5},
                ) as r:
                    await r.read()
                    return r.status

            return await asyncio.gather(*(one() for _ in range(1000)))

    try:
        statuses = asyncio.run(burst())
        assert statuses.count(200) == 1000
        assert httpx.get(gw.base + "/healthz").status_code == 200
    finally:
        gw.stop()


async def _streams(base: str, n: int, max_tokens: int) -> list[str]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s:

        async def one() -> str:
            try:
                async with s.post(
                    base + "/v1/chat/completions",
                    headers=A,
                    json={"model": "mock-slow", "messages": MSG, "max_tokens": max_tokens, "stream": True},
                ) as r:
                    return (await r.read()).decode()
            except aiohttp.ClientError as exc:
                return f"error: {exc}"

        return await asyncio.gather(*(one() for _ in range(n)))


def ledger_rows(workdir) -> int:
    from router.ledger.store import LedgerStore, sqlite_url

    async def count() -> int:
        store = LedgerStore(sqlite_url(workdir / ".switchyard"))
        try:
            return await store.count()
        finally:
            await store.dispose()

    return asyncio.run(count())


def test_sigterm_under_load_finishes_in_flight_flushes_and_exits_0(tmp_path) -> None:
    mock = start_mock(tmp_path / "mock")
    gw = start_gateway(tmp_path / "gw", fault_config(mock.base))
    try:

        async def scenario() -> list[str]:
            task = asyncio.create_task(_streams(gw.base, 20, 40))  # 20 streams of about 2 s each
            await asyncio.sleep(0.7)
            os.kill(gw.proc.pid, signal.SIGTERM)
            await asyncio.sleep(0.3)
            with pytest.raises(OSError):  # no new connections once draining
                socket.create_connection(("127.0.0.1", int(gw.base.rsplit(":", 1)[1])), timeout=2).close()
            return await task

        bodies = asyncio.run(scenario())
        assert all(b.rstrip().endswith("data: [DONE]") for b in bodies), "every in-flight stream finished"
        assert gw.proc.wait(30) == 0
        assert ledger_rows(tmp_path / "gw") == 20 == httpx.get(mock.base + "/_stats").json()["requests"]["mock-slow"]
    finally:
        gw.stop()
        mock.stop()


def test_sigkill_under_load_loses_at_most_the_flush_window(tmp_path) -> None:
    mock = start_mock(tmp_path / "mock")
    gw = start_gateway(tmp_path / "gw", fault_config(mock.base))
    answered = 0
    try:

        async def load() -> None:
            nonlocal answered
            async with aiohttp.ClientSession() as s:
                stop = time.monotonic() + 2.0

                async def worker() -> None:
                    nonlocal answered
                    while time.monotonic() < stop:
                        try:
                            async with s.post(
                                gw.base + "/v1/chat/completions",
                                headers=A,
                                json={"model": "fast-sim", "messages": MSG, "max_tokens": 3},
                            ) as r:
                                await r.read()
                                answered += r.status == 200
                        except aiohttp.ClientError:
                            return

                await asyncio.gather(*(worker() for _ in range(16)))

        async def scenario() -> None:
            task = asyncio.create_task(load())
            await asyncio.sleep(1.5)
            os.kill(gw.proc.pid, signal.SIGKILL)
            await task

        asyncio.run(scenario())
        gw.proc.wait(10)
        rows = ledger_rows(tmp_path / "gw")
        lost = answered - rows
        rate = answered / 1.5
        print(
            f"\nSIGKILL under load: {answered} answered, {rows} in the ledger, {lost} lost "
            f"({lost / rate:.2f} s of traffic at {rate:.0f} requests/s; the documented bound is 1 s at saturation)"
        )
        # A request can be recorded yet its answer die with the process: at most one per connection.
        # At saturation the loss is the queue plus the batch in flight: the README and RESULTS.md
        # document at most about one second of traffic (measured 0.12-0.14 s at 2,350-2,600 requests/s).
        assert -16 <= lost <= rate * 1.0 + 100
    finally:
        gw.stop()
        mock.stop()
