"""Shared fixtures: real processes on loopback (the gateway via its CLI, the mock upstream)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "tests" / "data" / "openai-schemas" / "openai_response_schemas.json"  # vendored, see its README
SWITCHYARD = str(Path(sys.executable).with_name("switchyard"))

# Canary secrets: they must never show up in anything the gateway says or logs.
PROVIDER_KEY = "sk-upstream-CANARY-7f3a9c1e5b"
KEY_A = "tenant-a-CANARY-key-0c4d2e8f9a71"
KEY_B = "tenant-b-CANARY-key-5e6f7a8b9c0d"
KEY_C = "tenant-c-CANARY-key-77e1d2c3b4a5"
ADMIN_KEY = "admin-CANARY-key-11aa22bb33cc"
SECRETS = (PROVIDER_KEY, KEY_A, KEY_B, KEY_C, ADMIN_KEY)


def inside_one_minute(seconds: float = 10.0) -> None:
    """Wait for the next minute when fewer than ``seconds`` are left of this one (rate limits count
    per clock minute: a burst that straddles two windows is counted in both)."""
    if 60 - time.time() % 60 < seconds:
        time.sleep(60 - time.time() % 60 + 0.5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before serving {url}")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


@dataclass
class Proc:
    proc: subprocess.Popen
    base: str
    log: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                # what it is stuck on, in its log (``switchyard serve`` dumps its threads on SIGUSR1)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, signal.SIGUSR1)
                time.sleep(1.0)
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
                print(f"{self.log} did not stop within 15 s of SIGTERM; its end:\n{self.output()[-6000:]}")
        return self.proc.returncode


def start(cmd: list[str], ready_path: str, port: int, log: Path, env: dict[str, str] | None = None) -> Proc:
    fh = open(log, "w")
    proc = subprocess.Popen(
        cmd,
        stdout=fh,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        start_new_session=True,
        cwd=str(log.parent),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + ready_path, proc)
    except RuntimeError:
        fh.flush()
        Proc(proc, base, log).stop()
        raise RuntimeError(f"could not start {cmd}:\n{log.read_text()[-3000:]}")
    return Proc(proc, base, log)


@pytest.fixture(scope="session")
def mock_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    port = free_port()
    p = start(
        [sys.executable, str(ROOT / "tests" / "mock_upstream.py"), str(port)],
        "/_stats",
        port,
        tmp_path_factory.mktemp("mock") / "mock.log",
    )
    yield p
    p.stop()


def mock_config(mock_base: str) -> str:
    api = f"{mock_base}/v1"
    models = [
        "mock-gpt",
        "mock-nousage",
        "mock-tools",
        "mock-500",
        "mock-503",
        "mock-429",
        "mock-400",
        "mock-401",
        "mock-badjson",
        "mock-timeout",
        "mock-cut",
        "mock-nodone",
        "mock-slow",
        "mock-huge",
    ]
    lines = ["model_list:"]
    for m in models:
        lines += [
            f"  - model_name: {m}",
            f"    litellm_params: {{model: openai/{m}, api_base: '{api}', api_key: os.environ/MOCK_PROVIDER_KEY, timeout: 2}}",
            "    model_info: {input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}",
        ]
    lines += [
        "  - model_name: mock-embed",
        f"    litellm_params: {{model: openai/mock-embed, api_base: '{api}', api_key: os.environ/MOCK_PROVIDER_KEY}}",
        "    model_info: {mode: embedding, input_cost_per_token: 0.0000001}",
        "  - model_name: mock-unpriced",
        f"    litellm_params: {{model: openai/mock-gpt, api_base: '{api}'}}",
        "  - model_name: via-litellm",
        f"    litellm_params: {{model: openai/mock-gpt, api_base: '{api}', api_key: os.environ/MOCK_PROVIDER_KEY, backend: litellm}}",
        "    model_info: {input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}",
        "  - model_name: fast-sim",
        "    litellm_params: {model: simulated/mid, speed: 50}",
        "  - model_name: fast-embed",
        "    litellm_params: {model: simulated/embed, speed: 50}",
        "aliases:",
        "  failover: [mock-500, mock-gpt]",
        "  failover-stream: [mock-503, mock-gpt]",
        "  all-down: [mock-500, mock-503]",
        "  all-limited: [mock-429]",
        "server:",
        "  auth_failures_per_minute: 1000",
        "  max_body_bytes: 65536",
        "  max_messages: 50",
        "  max_response_bytes: 1048576",
        "auth:",
        "  admin_key: os.environ/TEST_ADMIN_KEY",
        "  keys:",
        "    - {id: tenant-a, tenant: a, key: os.environ/TEST_KEY_A}",
        "    - {id: tenant-b, tenant: b, key: os.environ/TEST_KEY_B, models: [mock-gpt, fast-sim]}",
    ]
    return "\n".join(lines) + "\n"


GATEWAY_ENV = {
    "MOCK_PROVIDER_KEY": PROVIDER_KEY,
    "TEST_KEY_A": KEY_A,
    "TEST_KEY_B": KEY_B,
    "TEST_KEY_C": KEY_C,
    "TEST_ADMIN_KEY": ADMIN_KEY,
}


@pytest.fixture(scope="session")
def gateway(mock_upstream: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """The gateway as a user runs it: `switchyard serve --config FILE`, against the mock."""
    d = tmp_path_factory.mktemp("gateway")
    cfg = d / "config.yaml"
    cfg.write_text(mock_config(mock_upstream.base))
    port = free_port()
    p = start(
        [SWITCHYARD, "serve", "--config", str(cfg), "--port", str(port)],
        "/healthz",
        port,
        d / "gateway.log",
        env=GATEWAY_ENV,
    )
    p.extra["config"] = cfg
    p.extra["mock"] = mock_upstream
    yield p
    p.stop()


@pytest.fixture(scope="session")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """`switchyard serve` with no config: the README's first command (on a free port)."""
    d = tmp_path_factory.mktemp("embedded")
    port = free_port()
    p = start([SWITCHYARD, "serve", "--port", str(port)], "/healthz", port, d / "embedded.log")
    m = re.search(r"API key \(demo tenant[^)]*\): (\S+)", p.output())
    assert m, p.output()
    p.extra["key"] = m.group(1)
    yield p
    p.stop()


@pytest.fixture(scope="session")
def openai_schemas() -> dict[str, Any]:
    return json.loads(SCHEMAS.read_text())


def mock_stats(mock: Proc) -> dict[str, Any]:
    return httpx.get(mock.base + "/_stats").json()


def stream_started(gw: Proc, body: dict[str, Any], events: int, key: str = KEY_A) -> tuple[socket.socket, bytes]:
    """A streamed chat request on a raw socket, read until ``events`` data events have arrived: the
    socket (close it to leave mid-stream) and what was read (the head included)."""
    port = int(gw.base.rsplit(":", 1)[1])
    raw = json.dumps(body).encode()
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        + f"authorization: Bearer {key}\r\ncontent-length: {len(raw)}\r\n\r\n".encode()
        + raw
    )
    got = b""
    while got.count(b"data: ") < events:
        got += s.recv(65536)
    return s, got


def start_gateway(workdir: Path, config_text: str, env: dict[str, str] | None = None, name: str = "gw") -> Proc:
    """A gateway process with its own config and working directory (its SQLite ledger lives there)."""
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / f"{name}.yaml"
    cfg.write_text(config_text)
    port = free_port()
    p = start(
        [SWITCHYARD, "serve", "--config", str(cfg), "--port", str(port)],
        "/healthz",
        port,
        workdir / f"{name}.log",
        env={**GATEWAY_ENV, **(env or {})},
    )
    p.extra["config"] = cfg
    return p


def start_mock(workdir: Path) -> Proc:
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    return start(
        [sys.executable, str(ROOT / "tests" / "mock_upstream.py"), str(port)], "/_stats", port, workdir / "mock.log"
    )


def ledger_record(gw: Proc, key: str, request_id: str, timeout: float = 15.0) -> dict[str, Any]:
    """The ledger's record of a request (GET /v1/requests/{id}), once the writer has flushed it."""
    deadline = time.monotonic() + timeout
    while True:
        r = httpx.get(f"{gw.base}/v1/requests/{request_id}", headers={"authorization": f"Bearer {key}"})
        if r.status_code == 200 or time.monotonic() > deadline:
            assert r.status_code == 200, r.text
            return r.json()
        time.sleep(0.05)
