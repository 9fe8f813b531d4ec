"""The upstream HTTP/1.1 client (router.backends.http1) against a scripted loopback server."""

from __future__ import annotations

import asyncio
import gzip
import time

import pytest

from router.backends import http1, http1_connection


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
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
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
            w.write(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"a": true}')
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
        elif name == "sse":  # an OpenAI stream: [DONE] first, the chunked body's end in a write of its own
            w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
            for event in (b'data: {"choices": [{"delta": {"content": "hi"}}]}\n\n', b"data: [DONE]\n\n"):
                w.write(b"%x\r\n%s\r\n" % (len(event), event))
            await w.drain()
            await asyncio.sleep(0)
            w.write(b"0\r\n\r\n")
        elif name == "sse-stall":  # one event, then silence
            w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
            event = b'data: {"choices": [{"delta": {"content": "hi"}}]}\n\n'
            w.write(b"%x\r\n%s\r\n" % (len(event), event))
            await w.drain()
            await asyncio.sleep(5)
        elif name == "sse-no-end":  # [DONE], then the body never ends
            w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
            event = b"data: [DONE]\n\n"
            w.write(b"%x\r\n%s\r\n" % (len(event), event))
            await w.drain()
            await asyncio.sleep(5)
        elif name == "bomb":  # 10 MB of zeros in about 10 KB of gzip
            data = gzip.compress(b"\0" * 10_000_000)
            w.write(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(data) + data)
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
    # the server stalls 5 s each: well under that means the timeouts fired (headroom for a busy machine)
    assert time.monotonic() - t0 < 3.0
    t0 = time.monotonic()
    with pytest.raises(http1.TimedOut):  # never silent for 0.3 s, but not done within 0.5 s in all
        await get(pool, "drip", timeout=0.3, total=0.5)
    assert 0.4 < time.monotonic() - t0 < 3.0  # the drip lasts 5 s: the total timeout cut it
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
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
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
    monkeypatch.setattr(
        http1_connection, "_HIGH_WATER", 1000
    )  # the 5,000-byte answer arrives in one read and pauses reading
    pool = http1.Pool(server.base)
    assert await get(pool, "big") == (200, b"x" * 5000)
    assert await get(pool, "ok", timeout=1.0) == (200, b'{"a": true}')
    assert server.connections == 1
    await pool.aclose()


async def test_streams_read_to_done_keep_their_connection(server, monkeypatch) -> None:
    """A stream's [DONE] arrives before its chunked body ends: the connection still goes back to the
    pool once the end arrives, so ten sequential streams use one upstream connection."""
    from router.backends.base import Call
    from router.backends.openai_compat import OpenAICompatBackend

    backend = OpenAICompatBackend(api_base=server.base.removesuffix("/v1") + "/v1/x", api_key="sk-up")
    backend._pool.prefix = "/v1"
    for _ in range(10):
        chunks = [
            c
            async for group in backend._stream(
                "sse", Call(body={}, timeout=2.0), backend._chat_chunks(), "ended without [DONE]"
            )
            for c in group
        ]
        assert chunks == [{"choices": [{"delta": {"content": "hi"}}]}]
    assert server.connections == 1 and len(server.requests) == 10
    assert b"user-agent: switchyard/" in server.requests[0].lower()
    # a body that never ends after [DONE] (on the same kept connection): dropped after the drain window
    monkeypatch.setattr(http1, "DRAIN_S", 0.1)
    chunks = [
        c
        async for group in backend._stream(
            "sse-no-end", Call(body={}, timeout=2.0), backend._chat_chunks(), "ended without [DONE]"
        )
        for c in group
    ]
    assert chunks == [] and backend._pool.draining == 1
    await asyncio.sleep(0.4)
    assert backend._pool.connections == 0 and backend._pool.draining == 0
    # the next stream waits for no one: a fresh connection
    chunks = [
        c
        async for group in backend._stream(
            "sse", Call(body={}, timeout=2.0), backend._chat_chunks(), "ended without [DONE]"
        )
        for c in group
    ]
    assert len(chunks) == 1 and server.connections == 2
    await backend.aclose()


async def test_a_gzip_bomb_is_cut_at_the_decompression_cap(server) -> None:
    pool = http1.Pool(server.base, max_decompressed=1_000_000)
    with pytest.raises(http1.BadResponse, match="decompressed response exceeds 1000000 bytes"):
        await get(pool, "bomb", limit=1 << 30)
    assert await get(pool, "gzip") == (200, b"squeezed " * 100)  # an honest gzip body still decodes
    await pool.aclose()


class ConnectProxy:
    """A loopback HTTP proxy: CONNECT tunnels, and absolute-form requests forwarded (the rest of
    that connection piped to the same origin). Counts tunnels and forwards; may demand credentials."""

    def __init__(self, need_auth: str | None = None) -> None:
        self.tunnels: list[str] = []
        self.forwards: list[str] = []
        self.need_auth = need_auth

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            writer.close()
            return
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ")
        if self.need_auth and f"proxy-authorization: {self.need_auth}".lower() not in head.decode().lower():
            writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        if method == "CONNECT":
            host, port = target.rsplit(":", 1)
            self.tunnels.append(target)
            up_r, up_w = await asyncio.open_connection(host, int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            from urllib.parse import urlsplit

            url = urlsplit(target)
            self.forwards.append(target)
            up_r, up_w = await asyncio.open_connection(url.hostname, url.port)
            up_w.write(head.replace(target.encode(), url.path.encode(), 1))
        await writer.drain()

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while data := await r.read(65536):
                    if method != "CONNECT" and w is up_w:  # later requests on the connection: origin form
                        data = data.replace(f"http://{urlsplit(target).netloc}".encode(), b"")
                    w.write(data)
                    await w.drain()
            except ConnectionError:
                pass
            finally:
                w.close()

        from urllib.parse import urlsplit

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))

    async def stop(self) -> None:
        self.server.close()


def make_cert(tmp_path, name: str, ca: tuple | None = None, client: bool = False) -> tuple:
    """A certificate for localhost (or a client), self-signed or signed by ``ca`` (cert, key)."""
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (needed to make a test certificate)")
    cert, key = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    if ca is None:
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                f"/CN={name}",
                "-addext",
                "subjectAltName=DNS:localhost",
                "-keyout",
                str(key),
                "-out",
                str(cert),
            ],
            check=True,
            capture_output=True,
        )
    else:
        csr = tmp_path / f"{name}.csr"
        subprocess.run(
            [
                "openssl",
                "req",
                "-new",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                f"/CN={name}",
                "-keyout",
                str(key),
                "-out",
                str(csr),
            ],
            check=True,
            capture_output=True,
        )
        ext = tmp_path / f"{name}.ext"
        ext.write_text("extendedKeyUsage=clientAuth\n" if client else "subjectAltName=DNS:localhost\n")
        subprocess.run(
            [
                "openssl",
                "x509",
                "-req",
                "-in",
                str(csr),
                "-CA",
                str(ca[0]),
                "-CAkey",
                str(ca[1]),
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                str(ext),
                "-out",
                str(cert),
            ],
            check=True,
            capture_output=True,
        )
    return cert, key


async def tls_server(tmp_path, *, client_ca=None) -> tuple[Scripted, str, object]:
    """A scripted HTTPS server for localhost (its certificate signed by ``client_ca``, which it then
    also requires client certificates from; else self-signed): (server, base URL, its certificate)."""
    import ssl

    cert, key = make_cert(tmp_path, "localhost") if client_ca is None else make_cert(tmp_path, "server", ca=client_ca)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    if client_ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=str(client_ca[0]))
    s = Scripted()
    s.server = await asyncio.start_server(s._conn, "127.0.0.1", 0, ssl=ctx)
    return s, f"https://localhost:{s.server.sockets[0].getsockname()[1]}/v1", cert


async def test_https_through_an_http_connect_proxy_and_http_in_absolute_form(tmp_path, server, monkeypatch) -> None:
    import ssl

    tls, base, cert = await tls_server(tmp_path)
    port = base.split(":")[2].split("/")[0]
    proxy = ConnectProxy()
    proxy_url = await proxy.start()
    monkeypatch.setenv("HTTPS_PROXY", proxy_url)
    monkeypatch.setenv("HTTP_PROXY", proxy_url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    pool = http1.Pool(f"https://localhost:{port}/v1", ssl_context=ssl.create_default_context(cafile=str(cert)))
    for _ in range(3):
        assert await get(pool, "chunked") == (200, b"hello world")
    assert proxy.tunnels == [f"localhost:{port}"] and tls.connections == 1  # one tunnel, kept alive
    await pool.aclose()
    plain = http1.Pool(server.base)
    for _ in range(2):
        assert await get(plain, "ok") == (200, b'{"a": true}')
    assert proxy.forwards == [server.base + "/ok"] and server.requests[0].startswith(b"POST /v1/ok HTTP/1.1")
    await plain.aclose()
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    direct = http1.Pool(server.base)
    assert direct.proxy is None and await get(direct, "ok") == (200, b'{"a": true}')
    assert len(proxy.forwards) == 1
    await direct.aclose()
    await proxy.stop()
    await tls.stop()


async def test_a_proxy_that_wants_credentials(tmp_path, server, monkeypatch) -> None:
    import base64
    import ssl

    tls, base, cert = await tls_server(tmp_path)
    port = base.split(":")[2].split("/")[0]
    proxy = ConnectProxy(need_auth="Basic " + base64.b64encode(b"me:s3cret").decode())
    proxy_url = await proxy.start()
    trusted = ssl.create_default_context(cafile=str(cert))
    refused = http1.Pool(f"https://localhost:{port}/v1", ssl_context=trusted, proxy=proxy_url)
    with pytest.raises(http1.ConnectFailed, match="the proxy refused the tunnel \\(HTTP 407\\)"):
        await get(refused, "ok")
    await refused.aclose()
    authed = http1.Pool(
        f"https://localhost:{port}/v1", ssl_context=trusted, proxy=proxy_url.replace("http://", "http://me:s3cret@")
    )
    assert await get(authed, "ok") == (200, b'{"a": true}')
    await authed.aclose()
    plain = http1.Pool(server.base, proxy=proxy_url.replace("http://", "http://me:s3cret@"))
    assert await get(plain, "ok") == (200, b'{"a": true}')
    await plain.aclose()
    await proxy.stop()
    await tls.stop()


async def test_a_deployments_own_ca_and_client_certificate(tmp_path) -> None:
    """Mutual TLS with a private CA: ssl_verify names the CA bundle, ssl_certificate/ssl_key the
    client's certificate; without the client certificate the upstream refuses the handshake."""
    import ssl

    from router.config import LiteLLMParams
    from router.registry import tls_context

    ca = make_cert(tmp_path, "private-ca")
    cert, key = make_cert(tmp_path, "server", ca=ca)
    client_cert, client_key = make_cert(tmp_path, "client", ca=ca, client=True)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.load_verify_locations(cafile=str(ca[0]))
    tls = Scripted()
    tls.server = await asyncio.start_server(tls._conn, "127.0.0.1", 0, ssl=server_ctx)
    base = f"https://localhost:{tls.server.sockets[0].getsockname()[1]}/v1"
    params = LiteLLMParams(
        model="openai/x",
        api_base=base,
        ssl_verify=str(ca[0]),
        ssl_certificate=str(client_cert),
        ssl_key=str(client_key),
    )
    pool = http1.Pool(base, ssl_context=tls_context(params, 0), proxy=None)
    assert await get(pool, "ok") == (200, b'{"a": true}')
    await pool.aclose()
    no_client = http1.Pool(
        base, ssl_context=tls_context(params.model_copy(update={"ssl_certificate": None}), 0), proxy=None
    )
    with pytest.raises(http1.HTTPClientError):
        await get(no_client, "ok")
    await no_client.aclose()
    system_only = http1.Pool(base, proxy=None)  # the private CA is not the system's
    with pytest.raises(http1.ConnectFailed):
        await get(system_only, "ok")
    await system_only.aclose()
    with pytest.raises(ValueError, match=r"model_list\[3\]: TLS settings .*FileNotFoundError"):
        tls_context(params.model_copy(update={"ssl_certificate": str(tmp_path / "missing.pem")}), 3)
    await tls.stop()
