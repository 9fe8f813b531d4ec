"""The upstream HTTP/1.1 client (router.backends.http1) against a scripted loopback server."""

from __future__ import annotations

import asyncio
import gzip
import time

import pytest

from router.backends import http1


class Scripted:
    """A loopback HTTP server whose answer depends on the request path; counts connections."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[bytes] = []
        self.open = 0
        self.peak_open = 0
        self.disconnects = 0
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1"

    async def stop(self) -> None:
        self.server.close()

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.peak_open = max(self.peak_open, self.open)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                path = head.split(b" ")[1].decode()
                if not await self.answer(path, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            self.disconnects += 1
        finally:
            self.open -= 1
            writer.close()

    async def answer(self, path: str, w: asyncio.StreamWriter) -> bool:
        name = path.rsplit("/", 1)[-1].split("?")[0]
        if name == "ok":
            w.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"a\": true}")
        elif name == "chunked":
            w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
            await w.drain()
            await asyncio.sleep(0.05)
            w.write(b"6\r\n world\r\n0\r\n\r\n")
        elif name == "gzip":
            data = gzip.compress(b"squeezed " * 100)
            w.write(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(data) + data)
        elif name == "close-after":
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await w.drain()
            return False  # the server drops the kept-alive connection once the answer is out
        elif name == "until-close":
            w.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nthe body ends with the connection")
            await w.drain()
            return False
        elif name == "stall-headers":
            await asyncio.sleep(5)
        elif name == "stall-body":
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
            await w.drain()
            await asyncio.sleep(5)
        elif name == "drip":  # never silent for long, never finished
            w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(100):
                w.write(b"1\r\nx\r\n")
                await w.drain()
                await asyncio.sleep(0.05)
        elif name == "cut":
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
            await w.drain()
            return False
        elif name == "garbage":
            w.write(b"NOT HTTP AT ALL\r\n\r\n")
            await w.drain()
            return False
        elif name == "big":
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000)
        elif name == "then-408":  # answers, then sends an unsolicited 408 on the idle connection
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await w.drain()
            await asyncio.sleep(0.05)
            w.write(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
        elif name == "slow-ok":
            await asyncio.sleep(0.1)
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        elif name == "endless":
            w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(2000):
                w.write(b"400\r\n" + b"y" * 1024 + b"\r\n")
                await w.drain()
                await asyncio.sleep(0.001)
        await w.drain()
        return True


@pytest.fixture
async def server():
    s = Scripted()
    base = await s.start()
    s.base = base
    yield s
    await s.stop()


async def get(pool: http1.Pool, path: str, limit: int = 1 << 20, **kw) -> tuple[int, bytes]:
    resp = await pool.request("POST", path, b"{}", timeout=kw.pop("timeout", 2.0), **kw)
    try:
        return resp.status, await resp.read(limit)
    finally:
        resp.release()


async def test_keep_alive_reuses_one_connection_and_sends_the_request(server) -> None:
    pool = http1.Pool(server.base, headers={"Authorization": "Bearer sk-up"})
    for _ in range(5):
        assert await get(pool, "ok") == (200, b'{"a": true}')
    assert server.connections == 1
    head = server.requests[0].split(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"post /v1/ok http/1.1")
    assert b"authorization: bearer sk-up" in head and b"content-length: 2" in head and b"host: 127.0.0.1:" in head
    await pool.aclose()


async def test_chunked_and_gzip_bodies_are_decoded(server) -> None:
    pool = http1.Pool(server.base)
    assert await get(pool, "chunked") == (200, b"hello world")
    assert await get(pool, "gzip") == (200, b"squeezed " * 100)
    assert server.connections == 1
    await pool.aclose()


async def test_body_until_close_and_a_dropped_keepalive_connection(server) -> None:
    pool = http1.Pool(server.base)
    assert await get(pool, "until-close") == (200, b"the body ends with the connection")
    assert await get(pool, "close-after") == (200, b"ok")
    await asyncio.sleep(0.05)
    # the connection the server dropped is not reused: the next request opens a new one
    assert await get(pool, "ok") == (200, b'{"a": true}')
    assert server.connections == 3
    await pool.aclose()


async def test_stale_connection_is_retried_once_on_a_fresh_one(server) -> None:
    pool = http1.Pool(server.base)
    assert await get(pool, "ok") == (200, b'{"a": true}')
    conn = pool._idle[0]
    conn.closed = False  # as if the close had not reached us yet when the next request goes out
    conn._transport.close()
    assert await get(pool, "ok") == (200, b'{"a": true}')
    await pool.aclose()


async def test_read_and_total_timeouts(server) -> None:
    pool = http1.Pool(server.base)
    t0 = time.monotonic()
    with pytest.raises(http1.TimedOut):
        await get(pool, "stall-headers", timeout=0.3)
    with pytest.raises(http1.TimedOut):
        await get(pool, "stall-body", timeout=0.3)
    assert time.monotonic() - t0 < 1.5
    t0 = time.monotonic()
    with pytest.raises(http1.TimedOut):  # never silent for 0.3 s, but not done within 0.5 s in all
        await get(pool, "drip", timeout=0.3, total=0.5)
    assert 0.4 < time.monotonic() - t0 < 1.2
    assert pool.connections == 0  # timed-out connections are dropped
    await pool.aclose()


async def test_failures_are_typed(server) -> None:
    pool = http1.Pool(server.base)
    with pytest.raises(http1.ConnectionBroken) as cut:
        await get(pool, "cut")
    assert cut.value.answered
    with pytest.raises(http1.BadResponse):
        await get(pool, "garbage")
    with pytest.raises(http1.BadResponse):
        await get(pool, "big", limit=1000)
    assert await get(pool, "big") == (200, b"x" * 5000)
    refused = http1.Pool("http://127.0.0.1:9/v1", connect_timeout=1)
    with pytest.raises(http1.ConnectFailed):
        await get(refused, "ok")
    with pytest.raises(ValueError):
        await pool.request("POST", "ok", b"", timeout=1, headers={"x-a": "b\r\nx-injected: 1"})
    with pytest.raises(ValueError):
        http1.Pool("ftp://example.com")
    await pool.aclose()


async def test_connection_cap_queues_requests(server) -> None:
    pool = http1.Pool(server.base, max_connections=2)
    results = await asyncio.gather(*(get(pool, "slow-ok") for _ in range(6)))
    assert results == [(200, b"ok")] * 6
    assert server.connections == 2 and server.peak_open == 2
    await pool.aclose()


async def test_abandoned_stream_closes_the_connection_and_slow_readers_apply_back_pressure(server) -> None:
    pool = http1.Pool(server.base)
    resp = await pool.request("POST", "endless", b"{}", timeout=2)
    got = 0
    async for block in resp.iter_body():
        got += len(block)
        if got > 64 * 1024:
            await asyncio.sleep(0.3)  # a slow consumer: the buffer stays bounded
            assert resp._buffered <= 512 * 1024
            break
    resp.close()
    await asyncio.sleep(0.2)
    assert server.disconnects == 1 and pool.connections == 0
    await pool.aclose()


async def test_idle_connections_expire(server) -> None:
    pool = http1.Pool(server.base, keepalive_timeout=0.1)
    assert await get(pool, "ok") == (200, b'{"a": true}')
    assert pool.connections == 1
    await asyncio.sleep(0.4)
    assert pool.connections == 0
    await pool.aclose()


async def test_unsolicited_bytes_on_an_idle_connection_retire_it(server) -> None:
    pool = http1.Pool(server.base)
    assert await get(pool, "then-408") == (200, b"ok")
    await asyncio.sleep(0.2)
    assert await get(pool, "ok") == (200, b'{"a": true}')  # not the stray 408
    assert server.connections == 2
    await pool.aclose()


async def test_tls_with_the_callers_trust_and_hostname_check(tmp_path) -> None:
    """HTTPS upstreams: the certificate is verified against the pool's SSL context and host name."""
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (needed to make a test certificate)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    s = Scripted()
    s.server = await asyncio.start_server(s._conn, "127.0.0.1", 0, ssl=server_ctx)
    port = s.server.sockets[0].getsockname()[1]
    trusted = ssl.create_default_context(cafile=str(cert))
    pool = http1.Pool(f"https://localhost:{port}/v1", ssl_context=trusted)
    for _ in range(3):
        assert await get(pool, "chunked") == (200, b"hello world")
    assert s.connections == 1
    await pool.aclose()
    untrusted = http1.Pool(f"https://localhost:{port}/v1", connect_timeout=2)  # the system's CAs only
    with pytest.raises(http1.ConnectFailed):
        await get(untrusted, "ok")
    await untrusted.aclose()
    await s.stop()


async def test_a_connection_paused_by_a_large_answer_is_reusable(server, monkeypatch) -> None:
    monkeypatch.setattr(http1, "_HIGH_WATER", 1000)  # the 5,000-byte answer arrives in one read and pauses reading
    pool = http1.Pool(server.base)
    assert await get(pool, "big") == (200, b"x" * 5000)
    assert await get(pool, "ok", timeout=1.0) == (200, b'{"a": true}')
    assert server.connections == 1
    await pool.aclose()
