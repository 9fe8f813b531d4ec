"""Real Redis and PostgreSQL servers for the tests.

- ``shared_redis_url`` / ``shared_database_url``: the machine's servers (REDIS_URL, DATABASE_URL).
  Locally a test skips with a visible reason when they are absent; under CI=true it fails.
- ``PrivateRedis`` / ``PrivatePostgres``: throwaway servers on free loopback ports that a fault
  test may stop and restart without touching anything else.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import free_port


def _need(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def shared_redis_url() -> str:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    from urllib.parse import urlparse

    u = urlparse(url)
    if not _reachable(u.hostname or "127.0.0.1", u.port or 6379):
        _need(f"Redis is not reachable at {url} (set REDIS_URL)")
    return url


def flushable_redis_url() -> str:
    """A database of the shared Redis server that a test may flush: one per pytest-xdist worker
    (``make test`` runs the suite on three), so tests in different workers never flush each other's
    counters. Workers gw0, gw1, ... get databases 13, 12, ...; a run without workers gets 13."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    if index > 12:
        pytest.fail(f"more test workers than the shared Redis has spare databases ({worker})")
    return shared_redis_url().rsplit("/", 1)[0] + f"/{13 - index}"


def shared_database_url() -> str:
    url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    from urllib.parse import urlparse

    u = urlparse(url)
    if not _reachable(u.hostname or "127.0.0.1", u.port or 5432):
        _need(f"PostgreSQL is not reachable at {url} (set DATABASE_URL)")
    return url


async def _admin_exec(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def fresh_database(base_url: str) -> tuple[str, callable]:
    """A new empty database on the server of ``base_url``; returns its URL and a dropper."""
    name = f"sy_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin_exec(base_url, f'CREATE DATABASE "{name}"'))
    url = base_url.rsplit("/", 1)[0] + "/" + name

    def drop() -> None:
        asyncio.run(_admin_exec(base_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    return url, drop


class PrivateRedis:
    def __init__(self) -> None:
        if not shutil.which("redis-server"):
            _need("redis-server is not installed")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--enable-debug-command",
                "local",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not _reachable("127.0.0.1", self.port):
            if time.monotonic() > deadline:
                raise RuntimeError("private redis did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)


class PrivatePostgres:
    """A throwaway PostgreSQL cluster (initdb) owned by the postgres user, on a free port."""

    def __init__(self) -> None:
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not bins:
            _need("PostgreSQL server binaries are not installed")
        self.bin = bins[-1].parent
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="sy-pg-"))
        self.data = self.dir / "data"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as_postgres = os.geteuid() == 0
        shutil.chown(self.dir, "postgres") if self._as_postgres else None
        self._run([str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"])

    def _run(self, cmd: list[str]) -> None:
        if self._as_postgres:
            cmd = ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(f"'{c}'" for c in cmd)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)

    def start(self) -> None:
        self._run(
            [
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.data),
                "-w",
                "-l",
                str(self.dir / "log"),
                "-o",
                f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off",
                "start",
            ]
        )

    def stop(self) -> None:
        self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-m", "fast", "stop"])

    def cleanup(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)
