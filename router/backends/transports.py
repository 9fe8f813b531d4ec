"""How upstream calls travel: one small interface, two implementations.

A transport takes a request (method, path under its base URL, body bytes, headers, timeouts) and
gives back a response: status and headers at once, then the body read whole (``read``) or as it
arrives (``iter_body``), then ``release()`` (reusable: the connection goes back to the pool, once
the body's last bytes are in) or ``close()`` (aborted). Failures are typed (``HTTPClientError``
and its kinds); the backends map them to gateway errors.

- ``lean`` (``router.backends.http1``): a hand-written HTTP/1.1 pool, the fastest path, for
  plain-HTTP upstreams (in-cluster vLLM or SGLang) where requests per second matter.
- ``httpx``: the maintained client, with HTTP/2, for TLS providers.

``transport: auto`` (the default) picks ``httpx`` for https and ``lean`` for http. Both honour
``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY``, take the deployment's SSL context (its CA bundle and
client certificate), send ``User-Agent: switchyard/...``, cap decompressed bodies, and keep a
stream's connection after its ``[DONE]``.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import zlib
from typing import Any, AsyncIterator, Protocol

USER_AGENT = "switchyard/0.1"
DRAIN_S = 0.25  # how long a released response may take to deliver the rest of a body nobody reads
DRAIN_BYTES = 64 * 1024  # more unread body than this: closing is cheaper than reading it


class HTTPClientError(Exception):
    """Base of the transports' failures; ``answered`` says whether response bytes had arrived."""

    answered = False


class ConnectFailed(HTTPClientError):
    pass


class TimedOut(HTTPClientError):
    pass


class ConnectionBroken(HTTPClientError):
    pass


class BadResponse(HTTPClientError):
    pass


class Response(Protocol):
    status: int
    headers: dict[str, str]  # lower-case names

    def content_length(self) -> int | None: ...
    async def read(self, limit: int) -> bytes: ...
    def iter_body(self) -> AsyncIterator[bytes]: ...
    def release(self) -> None: ...
    def close(self) -> None: ...


class Transport(Protocol):
    async def request(
        self,
        method: str,
        path: str,
        body: bytes,
        *,
        timeout: float,
        total: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """Send; wait for status and headers. ``timeout``: longest silence from the upstream;
        ``total``: deadline for the whole answer (None: none)."""
        ...

    @property
    def connections(self) -> int: ...
    async def aclose(self) -> None: ...


async def read_all(body: AsyncIterator[bytes], limit: int) -> bytes:
    """A body's bytes joined; ``BadResponse`` past ``limit`` bytes."""
    parts, size = [], 0
    async for chunk in body:
        size += len(chunk)
        if size > limit:
            raise BadResponse(f"the response exceeds {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


class Inflater:
    """gzip / deflate decoding that stops at ``cap`` decompressed bytes (a few kilobytes of gzip can
    hold gigabytes). ``feed`` raises ``BadResponse`` past the cap or on a corrupt body."""

    def __init__(self, encoding: str, cap: int):
        self._z = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding in ("gzip", "x-gzip") else zlib.MAX_WBITS)
        self.cap = cap
        self.size = 0

    @classmethod
    def for_encoding(cls, content_encoding: str | None, cap: int) -> "Inflater | None":
        """The decoder a response's ``content-encoding`` needs (None: the body comes as it is)."""
        encoding = (content_encoding or "").strip().lower()
        return cls(encoding, cap) if encoding in ("gzip", "x-gzip", "deflate") else None

    def feed(self, data: bytes) -> bytes:
        try:
            out = self._z.decompress(data, self.cap - self.size + 1)
        except zlib.error:
            raise BadResponse("the response body does not decompress") from None
        self.size += len(out)
        if self.size > self.cap:
            raise BadResponse(f"the decompressed response exceeds {self.cap} bytes")
        return out


class HttpxResponse:
    """An httpx response behind the transport interface (the body is decoded here, under the cap)."""

    def __init__(self, owner: HttpxTransport, resp: Any, read_timeout: float, total_deadline: float):
        self._owner = owner
        self._resp = resp
        self.status = resp.status_code
        self.headers = _joined(resp.headers)
        self._inflater = Inflater.for_encoding(self.headers.get("content-encoding"), owner.max_decompressed)
        self._raw = resp.aiter_raw()
        self._read_timeout = read_timeout
        self._deadline = total_deadline
        self._done = False
        self._failed = False

    def content_length(self) -> int | None:
        raw = self.headers.get("content-length")
        return int(raw) if raw is not None and raw.strip().isdigit() else None

    async def iter_body(self) -> AsyncIterator[bytes]:
        import httpx

        while True:
            left = self._deadline - time.monotonic()
            if left <= 0:
                self._failed = True
                raise TimedOut("the upstream did not finish within the total timeout")
            try:
                async with asyncio.timeout(min(left, self._read_timeout)):  # not wait_for: no task per block
                    block = await self._raw.__anext__()
            except StopAsyncIteration:
                self._done = True
                return
            except asyncio.TimeoutError:
                self._failed = True
                raise TimedOut("the upstream sent nothing within the read timeout") from None
            except httpx.HTTPError as exc:
                self._failed = True
                raise _mapped(exc, answered=True) from None
            if self._inflater is not None:
                try:
                    block = self._inflater.feed(block)
                except BadResponse:
                    self._failed = True
                    raise
            if block:
                yield block

    async def read(self, limit: int) -> bytes:
        return await read_all(self.iter_body(), limit)

    def release(self) -> None:
        """A complete answer: closing the httpx response returns its connection. One whose body has
        not quite ended (a stream read to ``[DONE]``): the rest is read and dropped in the background,
        within ``DRAIN_S`` and ``DRAIN_BYTES``, so the connection is kept."""
        if self._done or self._failed:
            self._owner._spawn(self._resp.aclose())
        else:
            self._owner._spawn(self._drain(), draining=True)

    def close(self) -> None:
        self._failed = True
        self._owner._spawn(self._resp.aclose())

    async def _drain(self) -> None:
        try:
            got = 0
            async with asyncio.timeout(DRAIN_S):
                async for block in self._raw:
                    got += len(block)
                    if got > DRAIN_BYTES:
                        break
        except Exception:  # noqa: BLE001 - the connection is closed below whatever happened
            pass
        await self._resp.aclose()


def _joined(headers: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in headers.multi_items():
        k = k.lower()
        out[k] = v if k not in out else f"{out[k]}, {v}"
    return out


def _mapped(exc: Exception, answered: bool = False) -> HTTPClientError:
    import httpx

    if isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout)):
        err: HTTPClientError = ConnectFailed(f"connecting took too long: {type(exc).__name__}")
    elif isinstance(exc, httpx.TimeoutException):
        err = TimedOut("the upstream sent nothing within the read timeout")
    elif isinstance(exc, (httpx.ConnectError, httpx.ProxyError, httpx.UnsupportedProtocol)):
        err = ConnectFailed(f"could not connect: {type(exc).__name__}")
    elif isinstance(exc, httpx.DecodingError):
        err = BadResponse("the response body does not decode")
    elif isinstance(exc, httpx.RemoteProtocolError) and not answered:
        err = ConnectionBroken(f"the upstream closed the connection before answering: {type(exc).__name__}")
    elif isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, httpx.NetworkError)):
        err = ConnectionBroken(f"the upstream connection broke: {type(exc).__name__}")
    else:
        err = BadResponse(f"the upstream answer is malformed: {type(exc).__name__}")
    err.answered = answered
    return err


class HttpxTransport:
    """httpx's AsyncClient (HTTP/2 where the server offers it over TLS, HTTP/1.1 otherwise) behind
    the transport interface."""

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
        http2: bool = True,
    ):
        import httpx

        self.base = base_url.rstrip("/")
        self.max_decompressed = max_decompressed
        self.connect_timeout = connect_timeout
        self._tasks: set[asyncio.Task[Any]] = set()
        self._drains: set[asyncio.Task[Any]] = set()
        static = {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate", **(headers or {})}
        self._client = httpx.AsyncClient(
            http2=http2,
            verify=ssl_context if ssl_context is not None else True,
            headers=static,
            trust_env=proxy == "env",
            proxy=None if proxy in (None, "env") else proxy,
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_connections,
                keepalive_expiry=keepalive_timeout,
            ),
            timeout=httpx.Timeout(connect=connect_timeout, read=None, write=None, pool=None),
            follow_redirects=False,
        )

    async def request(
        self,
        method: str,
        path: str,
        body: bytes,
        *,
        timeout: float,
        total: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> HttpxResponse:
        import httpx

        if self._drains:  # a connection about to come back (its body's last bytes are in flight): wait for it
            await asyncio.wait(list(self._drains), timeout=DRAIN_S)
        start = time.monotonic()
        deadline = start + total if total is not None else float("inf")
        req = self._client.build_request(
            method,
            f"{self.base}/{path}",
            content=body,
            headers=headers,
            timeout=httpx.Timeout(connect=self.connect_timeout, read=timeout, write=timeout, pool=timeout),
        )
        try:
            resp = await asyncio.wait_for(
                self._client.send(req, stream=True), None if total is None else max(0.0, total)
            )
        except asyncio.TimeoutError:
            raise TimedOut("the upstream did not answer within the total timeout") from None
        except httpx.HTTPError as exc:
            raise _mapped(exc) from None
        return HttpxResponse(self, resp, timeout, deadline)

    @property
    def connections(self) -> int:
        pool = getattr(self._client._transport, "_pool", None)  # httpcore's pool: for tests and metrics only
        return len(getattr(pool, "connections", []) or [])

    def _spawn(self, coro: Any, draining: bool = False) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if draining:
            self._drains.add(task)
            task.add_done_callback(self._drains.discard)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self._client.aclose()


def make_transport(base_url: str, kind: str = "auto", **kw: Any) -> Transport:
    """The transport a deployment asks for: ``lean``, ``httpx``, or ``auto`` (httpx for https, lean for http)."""
    from router.backends import http1

    if kind == "auto":
        kind = "httpx" if base_url.lower().startswith("https://") else "lean"
    if kind == "httpx":
        return HttpxTransport(base_url, **kw)
    if kind == "lean":
        return http1.Pool(base_url, **kw)
    raise ValueError(f"unknown transport '{kind}' (auto, lean, httpx)")
