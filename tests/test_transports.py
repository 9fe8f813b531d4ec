"""Both upstream transports (router.backends.transports) through the OpenAI-compatible backend:
the lean HTTP/1.1 pool and httpx, against scripted loopback servers, an HTTP CONNECT proxy, a
private CA with client certificates, and an HTTP/2 server."""

from __future__ import annotations

import asyncio
import ssl

import pytest

from router.backends import transports as tp
from router.backends.base import Call, UpstreamBadResponse, UpstreamConnectError
from router.backends.openai_compat import OpenAICompatBackend
from tests.test_http1 import ConnectProxy, Scripted, make_cert, tls_server

KINDS = ["lean", "httpx"]


@pytest.fixture
async def server():
    s = Scripted()
    s.base = await s.start()
    yield s
    await s.stop()


def backend(base: str, kind: str, **kw) -> OpenAICompatBackend:
    b = OpenAICompatBackend(api_base=base, api_key="sk-up", transport=kind, **kw)
    return b


async def stream(b: OpenAICompatBackend, path: str = "sse") -> list:
    return [
        c
        async for group in b._stream(path, Call(body={}, timeout=2.0), b._chat_chunks(), "ended without [DONE]")
        for c in group
    ]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_stream_that_falls_silent_fails_at_the_read_timeout(server, kind) -> None:
    """The read timeout bounds each wait for the next block (a timeout scope per block on the httpx
    path): the event before the silence is relayed, then the stream fails as stalled, not later."""
    from router.backends.base import UpstreamTimeout

    b = backend(server.base, kind)
    b._pool.base = server.base
    got, t0 = [], asyncio.get_running_loop().time()
    with pytest.raises(UpstreamTimeout, match="stalled past the read timeout"):
        async for group in b._stream("sse-stall", Call(body={}, timeout=0.3), b._chat_chunks(), "ended"):
            got += group
    assert got == [{"choices": [{"delta": {"content": "hi"}}]}]
    assert asyncio.get_running_loop().time() - t0 < 3  # the server stays silent for 5 s
    # the pool is not left broken: the next stream on it is served
    assert await stream(b) == [{"choices": [{"delta": {"content": "hi"}}]}]
    await b.aclose()


def test_auto_picks_httpx_for_https_and_lean_for_http() -> None:
    from router.backends import http1

    assert isinstance(tp.make_transport("http://10.0.0.1:8000/v1", proxy=None), http1.Pool)
    assert isinstance(tp.make_transport("https://api.example.com/v1", proxy=None), tp.HttpxTransport)
    assert isinstance(tp.make_transport("https://api.example.com/v1", "lean", proxy=None), http1.Pool)
    with pytest.raises(ValueError, match="unknown transport"):
        tp.make_transport("http://x/v1", "carrier-pigeon")


@pytest.mark.parametrize("kind", KINDS)
async def test_sequential_streams_share_one_connection_and_say_who_calls(server, kind) -> None:
    b = backend(server.base, kind)
    b._pool.base = server.base  # httpx joins paths to its base; the scripted paths sit under /v1
    for _ in range(10):
        assert await stream(b) == [{"choices": [{"delta": {"content": "hi"}}]}]
    assert server.connections == 1 and len(server.requests) == 10
    head = server.requests[0].lower()
    assert b"user-agent: switchyard/" in head and b"authorization: bearer sk-up" in head
    await b.aclose()


@pytest.mark.parametrize("kind", KINDS)
async def test_a_gzip_bomb_is_refused_and_honest_gzip_decodes(server, kind) -> None:
    b = backend(server.base, kind, max_response_bytes=1_000_000)
    with pytest.raises(UpstreamBadResponse, match="exceeds the response size limit or is malformed"):
        await b._read_json(await b._post("bomb", Call(body={}, timeout=2.0), stream=False))
    resp = await b._pool.request("POST", "gzip", b"{}", timeout=2.0)
    assert resp.status == 200 and await resp.read(1 << 20) == b"squeezed " * 100
    resp.release()
    await b.aclose()


@pytest.mark.parametrize("kind", KINDS)
async def test_through_a_connect_proxy_from_the_environment(tmp_path, server, monkeypatch, kind) -> None:
    tls, base, cert = await tls_server(tmp_path)
    proxy = ConnectProxy()
    url = await proxy.start()
    for var in ("HTTPS_PROXY", "HTTP_PROXY"):
        monkeypatch.setenv(var, url)
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    b = backend(base, kind, ssl_context=ssl.create_default_context(cafile=str(cert)))
    for _ in range(3):
        resp = await b._pool.request("POST", "ok", b"{}", timeout=2.0)
        assert resp.status == 200 and await resp.read(100) == b'{"a": true}'
        resp.release()
    assert proxy.tunnels == [f"localhost:{base.split(':')[2].split('/')[0]}"] and tls.connections == 1
    await b.aclose()
    plain = backend(server.base, kind)
    resp = await plain._pool.request("POST", "ok", b"{}", timeout=2.0)
    assert resp.status == 200 and await resp.read(100) == b'{"a": true}'
    resp.release()
    assert proxy.forwards == [server.base + "/ok"]
    await plain.aclose()
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    direct = backend(server.base, kind)
    resp = await direct._pool.request("POST", "ok", b"{}", timeout=2.0)
    assert resp.status == 200 and await resp.read(100) == b'{"a": true}'
    resp.release()
    assert len(proxy.forwards) == 1  # NO_PROXY: straight to the server
    await direct.aclose()
    await proxy.stop()
    await tls.stop()


@pytest.mark.parametrize("kind", KINDS)
async def test_a_private_ca_and_a_client_certificate(tmp_path, monkeypatch, kind) -> None:
    from router.config import LiteLLMParams
    from router.registry import tls_context

    for var in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.delenv(var, raising=False)
    ca = make_cert(tmp_path, "private-ca")
    client = make_cert(tmp_path, "client", ca=ca, client=True)
    tls, base, _ = await tls_server(tmp_path, client_ca=ca)
    params = LiteLLMParams(
        model="openai/x", api_base=base, ssl_verify=str(ca[0]), ssl_certificate=str(client[0]), ssl_key=str(client[1])
    )
    b = backend(base, kind, ssl_context=tls_context(params, 0))
    resp = await b._pool.request("POST", "ok", b"{}", timeout=2.0)
    assert resp.status == 200 and await resp.read(100) == b'{"a": true}'
    resp.release()
    await b.aclose()
    for ctx in (tls_context(params.model_copy(update={"ssl_certificate": None}), 0), None):
        refused = backend(base, kind, ssl_context=ctx)  # no client certificate / the system's CAs only
        with pytest.raises(UpstreamConnectError):
            await refused._post("ok", Call(body={}, timeout=2.0), stream=False)
        await refused.aclose()
    await tls.stop()


class H2App:
    """An ASGI app for hypercorn: OpenAI-shaped JSON and SSE answers; records each request's HTTP
    version and client port (one port per connection)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:
                kind = (await receive())["type"]
                await send({"type": kind + ".complete"})  # lifespan.startup / lifespan.shutdown
                if kind == "lifespan.shutdown":
                    return
        self.seen.append((scope["http_version"], scope["client"][1]))
        while (await receive()).get("more_body"):
            pass
        stream = scope["path"].endswith("/sse")
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream" if stream else b"application/json")],
            }
        )
        if stream:
            for event in (b'data: {"choices": [{"delta": {"content": "hi"}}]}\n\n', b"data: [DONE]\n\n"):
                await send({"type": "http.response.body", "body": event, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        else:
            await send({"type": "http.response.body", "body": b'{"a": true}'})


async def test_http2_with_a_tls_provider(tmp_path, monkeypatch) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    from tests.conftest import free_port

    for var in ("HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    cert, key = make_cert(tmp_path, "localhost")
    port = free_port()
    cfg = Config()
    cfg.bind = [f"127.0.0.1:{port}"]
    cfg.certfile, cfg.keyfile = str(cert), str(key)
    cfg.alpn_protocols = ["h2", "http/1.1"]
    app, stop = H2App(), asyncio.Event()
    served = asyncio.create_task(serve(app, cfg, shutdown_trigger=stop.wait))
    b = backend(f"https://localhost:{port}/v1", "auto", ssl_context=ssl.create_default_context(cafile=str(cert)))
    assert isinstance(b._pool, tp.HttpxTransport)
    for _ in range(200):  # hypercorn binds in the background: the first connect may be refused
        try:
            resp = await b._pool.request("POST", "ok", b"{}", timeout=2.0)
            break
        except tp.ConnectFailed:
            await asyncio.sleep(0.05)
    assert resp.status == 200 and await resp.read(100) == b'{"a": true}'
    resp.release()
    for _ in range(10):
        assert await stream(b) == [{"choices": [{"delta": {"content": "hi"}}]}]
    # concurrent calls multiplex on the one HTTP/2 connection
    await asyncio.gather(*(stream(b) for _ in range(5)))
    assert {v for v, _ in app.seen} == {"2"} and len({p for _, p in app.seen}) == 1 and len(app.seen) == 16
    await b.aclose()
    stop.set()
    await served
