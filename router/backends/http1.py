"""A lean HTTP/1.1 client for upstream calls: one origin, pooled keep-alive connections.

Why not aiohttp (used here before): under load its client was ~23% of the gateway's CPU, more
than routing, pricing and metering together -- per request it builds request and response
objects, multidicts, URLs, a payload, trace hooks and a timer per read. A gateway needs one
thing: send a request to a known origin and get status, headers and body bytes as they arrive.
That is this module, on asyncio's Protocol with httptools (the parser uvicorn uses) doing the
HTTP parsing: chunked and length-delimited bodies, keep-alive, gzip/deflate, TLS, a connection
cap, back-pressure on slow consumers. Timeouts are checked by one sweeper per pool (at most
every 50 ms) instead of a timer per request.

A connection carries one exchange at a time; ``Pool.request`` hands it back as the response.
Read it (``read`` or ``iter_body``) and then ``release()`` it (back to the pool when the answer
was complete, or once the rest of its body arrives: a stream's ``[DONE]`` comes before the
chunked body's end) or ``close()`` it (the upstream sees the abort).

Egress proxies: ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` (read from the environment when the
pool is made, as curl and httpx read them): an https origin is reached through a CONNECT tunnel,
an http one by sending absolute-form requests to the proxy. Decompressed bodies are capped
(``max_decompressed``) so a small gzip bomb cannot fill memory.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import time
import urllib.request
from collections import deque
from urllib.parse import unquote, urlsplit


from router.backends.transports import (  # noqa: F401 - the errors are this module's too
    DRAIN_BYTES,
    DRAIN_S,
    USER_AGENT,
    BadResponse,
    ConnectFailed,
    ConnectionBroken,
    HTTPClientError,
    Inflater,
    TimedOut,
    read_all,
)
from router.backends.http1_connection import Connection, encode_headers

_SWEEP_S = 0.05


def _proxy_for(scheme: str, host: str) -> str | None:
    """The proxy the environment names for this origin (None: connect directly)."""
    proxies = urllib.request.getproxies_environment()
    chosen = proxies.get(scheme)
    if not chosen or urllib.request.proxy_bypass_environment(host, proxies):  # type: ignore[attr-defined]  # untyped in typeshed
        return None
    return chosen if "://" in chosen else f"http://{chosen}"


class Pool:
    """Keep-alive connections to one origin (scheme, host, port), at most ``max_connections``."""

    def __init__(
        self,
        base_url: str,
        *,
        max_connections: int = 256,
        connect_timeout: float = 5.0,
        keepalive_timeout: float = 30.0,
        headers: dict[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        max_decompressed: int = 64 * 1024 * 1024,
        proxy: str | None = "env",
    ):
        """``proxy``: an http:// proxy URL, None for none, or "env" (HTTPS_PROXY / HTTP_PROXY as the
        origin's scheme asks, unless NO_PROXY names its host)."""
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        https = url.scheme == "https"
        default_port = 443 if https else 80
        self.host = url.hostname
        self.port = url.port or default_port
        self.prefix = url.path.rstrip("/")
        self._ssl = (ssl_context or ssl.create_default_context()) if https else None
        self.max_decompressed = max_decompressed
        shown = f"[{self.host}]" if ":" in self.host else self.host  # IPv6 literals go in brackets
        authority = shown if self.port == default_port else f"{shown}:{self.port}"
        static = {"Host": authority, "Connection": "keep-alive", "User-Agent": USER_AGENT, **(headers or {})}
        self.proxy = _proxy_for(url.scheme, self.host) if proxy == "env" else proxy
        self._proxy_auth: str | None = None
        self._target = ""  # before the path: the origin in absolute form when an http proxy forwards
        if self.proxy is not None:
            purl = urlsplit(self.proxy)
            if purl.scheme != "http" or not purl.hostname:
                raise ValueError("the proxy must be an http:// URL")
            self._proxy_addr = (purl.hostname, purl.port or 80)
            if purl.username is not None:
                creds = f"{unquote(purl.username)}:{unquote(purl.password or '')}"
                self._proxy_auth = "Basic " + base64.b64encode(creds.encode()).decode()
            if not https:
                self._target = f"http://{authority}"
                if self._proxy_auth:
                    static["Proxy-Authorization"] = self._proxy_auth
        self._static = encode_headers(static)
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self.keepalive_timeout = keepalive_timeout
        self._idle: list[Connection] = []
        self._busy: set[Connection] = set()
        self._slot_waiters: deque[asyncio.Future[None]] = deque()
        self.draining = 0  # released connections waiting for the end of a body (a stream's, after [DONE])
        self._drain_waiters: deque[asyncio.Future[None]] = deque()
        self._sweeper: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._closed = False

    # -- public -----------------------------------------------------------------------------------
    async def request(
        self,
        method: str,
        path: str,
        body: bytes,
        *,
        timeout: float,
        total: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> Connection:
        """Send the request and wait for the response's status and headers. ``timeout``: longest
        silence from the upstream; ``total``: deadline for the whole answer (None: no deadline)."""
        head = self._head(method, path, len(body), headers)
        for attempt in (0, 1):
            conn, reused = await self._acquire()
            try:
                conn._send(head + body, timeout, total)
                await conn._await_headers()
                return conn
            except HTTPClientError as exc:
                conn.close()
                # A kept-alive connection the upstream had just closed: nothing was answered, so
                # sending again on a fresh connection is safe.
                if attempt == 0 and reused and isinstance(exc, ConnectionBroken) and not exc.answered:
                    continue
                raise
            except BaseException:
                conn.close()
                raise
        raise AssertionError("unreachable")

    @property
    def connections(self) -> int:
        return len(self._idle) + len(self._busy)

    async def aclose(self) -> None:
        self._closed = True
        for conn in [*self._idle, *self._busy]:
            conn._abort()
        self._idle.clear()
        self._busy.clear()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    # -- internals --------------------------------------------------------------------------------
    def _head(self, method: str, path: str, length: int, headers: dict[str, str] | None) -> bytes:
        extra = encode_headers(headers) if headers else b""
        return (
            f"{method} {self._target}{self.prefix}/{path} HTTP/1.1\r\nContent-Length: {length}\r\n".encode("latin-1")
            + self._static
            + extra
            + b"\r\n"
        )

    def _take_idle(self) -> Connection | None:
        """A pooled connection still open, now busy (None: none idle)."""
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                self._busy.add(conn)
                return conn
        return None

    async def _acquire(self) -> tuple[Connection, bool]:
        if self._closed:
            raise ConnectFailed("the client is closed")
        self._loop = asyncio.get_running_loop()
        conn = self._take_idle()
        if conn is None and self.draining:  # a connection about to come back (its body's last bytes are in flight)
            await self._wait_for_drain()
            conn = self._take_idle()
        while conn is None and len(self._busy) >= self.max_connections:
            await self._wait_for_slot()
            conn = self._take_idle()
        if conn is not None:
            return conn, True
        return await self._open(), False

    async def _wait_for_drain(self) -> None:
        waiter = self._loop.create_future()
        self._drain_waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, DRAIN_S)
        except asyncio.TimeoutError:
            pass
        finally:
            if waiter in self._drain_waiters:
                self._drain_waiters.remove(waiter)

    async def _wait_for_slot(self) -> None:
        waiter = self._loop.create_future()
        self._slot_waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._pass_slot()  # we were handed a slot we will not use
            raise

    async def _open(self) -> Connection:
        """A new connection (its slot held while it connects)."""
        conn = Connection(self)
        self._busy.add(conn)
        try:
            await asyncio.wait_for(self._connect(conn), self.connect_timeout)
        except asyncio.TimeoutError:
            self._forget(conn)
            raise ConnectFailed(f"connecting took longer than {self.connect_timeout:g} s") from None
        except (OSError, ssl.SSLError) as exc:
            self._forget(conn)
            raise ConnectFailed(f"could not connect: {type(exc).__name__}") from None
        except ConnectFailed:
            self._forget(conn)
            raise
        except BaseException:
            conn._abort()
            self._forget(conn)
            raise
        if self._sweeper is None:
            self._sweeper = self._loop.create_task(self._sweep())
        return conn

    async def _connect(self, conn: Connection) -> None:
        if self.proxy is None:
            await self._loop.create_connection(
                lambda: conn, self.host, self.port, ssl=self._ssl, server_hostname=self.host if self._ssl else None
            )
        elif self._ssl is None:  # plain http: requests go to the proxy in absolute form
            await self._loop.create_connection(lambda: conn, *self._proxy_addr)
        else:  # https: a CONNECT tunnel through the proxy, then TLS with the origin inside it
            reader, writer = await asyncio.open_connection(*self._proxy_addr)
            try:
                target = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
                auth = f"Proxy-Authorization: {self._proxy_auth}\r\n" if self._proxy_auth else ""
                writer.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{auth}\r\n".encode("latin-1"))
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    raise ConnectFailed("the proxy closed the connection before answering CONNECT") from None
                status = head.split(b" ", 2)[1] if head.count(b" ") >= 1 else b""
                if status != b"200":
                    raise ConnectFailed(f"the proxy refused the tunnel (HTTP {status.decode('latin-1')[:3]})")
                await writer.start_tls(self._ssl, server_hostname=self.host)
            except BaseException:
                writer.transport.abort()
                raise
            transport = writer.transport
            transport.set_protocol(conn)
            conn.connection_made(transport)

    def _put_back(self, conn: Connection) -> None:
        self._busy.discard(conn)
        if self._closed:
            conn._abort()
            return
        conn.idle_since = time.monotonic()
        self._idle.append(conn)
        if not self._wake_drain_waiter():
            self._pass_slot()

    def _forget(self, conn: Connection) -> None:
        if conn._draining:  # it will not come back: whoever waits for it connects anew
            conn._draining = False
            self.draining -= 1
            self._wake_drain_waiter()
        was_busy = conn in self._busy
        self._busy.discard(conn)
        if conn in self._idle:
            self._idle.remove(conn)
        if was_busy:
            self._pass_slot()

    def _wake_drain_waiter(self) -> bool:
        while self._drain_waiters:
            w = self._drain_waiters.popleft()
            if not w.done():
                w.set_result(None)
                return True
        return False

    def _pass_slot(self) -> None:
        while self._slot_waiters:
            w = self._slot_waiters.popleft()
            if not w.done():
                w.set_result(None)
                return

    async def _sweep(self) -> None:
        """Times out stalled exchanges and closes connections idle past the keep-alive timeout."""
        try:
            while self._busy or self._idle:
                await asyncio.sleep(_SWEEP_S)
                now = time.monotonic()
                for conn in [c for c in self._busy if c.deadline < now]:
                    conn._time_out(now)
                if self._idle and self._idle[0].idle_since + self.keepalive_timeout < now:
                    for conn in [c for c in self._idle if c.idle_since + self.keepalive_timeout < now]:
                        conn.close()
        finally:
            self._sweeper = None
