"""One upstream HTTP/1.1 connection of the lean client (``router.backends.http1.Pool``): an asyncio
Protocol with httptools parsing the response (length-delimited or chunked, gzip/deflate), one
exchange at a time, the body handed on as it arrives with back-pressure on slow consumers, its
deadlines checked by the pool's sweeper."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import TYPE_CHECKING, AsyncIterator

import httptools

from router.backends.transports import (
    DRAIN_BYTES,
    DRAIN_S,
    BadResponse,
    ConnectionBroken,
    HTTPClientError,
    Inflater,
    TimedOut,
    read_all,
)

if TYPE_CHECKING:
    from router.backends.http1 import Pool


_INF = float("inf")


_HIGH_WATER = 256 * 1024  # buffered body bytes before reading from the socket pauses


def encode_headers(headers: dict[str, str]) -> bytes:
    text = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    if text.count("\n") != len(headers) or text.count("\r") != len(headers):
        raise ValueError("a header name or value contains a line break")
    return text.encode("latin-1")


class Connection(asyncio.Protocol):
    """One keep-alive connection and the response it is currently reading."""

    def __init__(self, pool: Pool):
        self._pool = pool
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._headers_done = False
        self._done = False
        self._error: HTTPClientError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self._inflater: Inflater | None = None
        self._draining = False  # released before the body's end: the rest is read and dropped
        self._got_bytes = False
        self._keep_alive = False
        self._in_exchange = False
        self.deadline = _INF
        self._total_deadline = _INF
        self._read_timeout = _INF

    # -- asyncio.Protocol -----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self._in_exchange:  # bytes nobody asked for (e.g. a 408 before an idle close): unusable
            self._abort()
            return
        self._got_bytes = True
        self.deadline = min(self._total_deadline, time.monotonic() + self._read_timeout)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(BadResponse(f"malformed HTTP response: {exc}"))
            self._abort()
            return
        self._wake()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._headers_done and not self._done and self._until_close():
            self._done = True  # no length, not chunked: the body ended with the connection
        elif not self._done:
            self._fail(
                ConnectionBroken(
                    "the upstream closed the connection"
                    + (" before answering" if not self._got_bytes else " mid-answer")
                )
            )
        self._wake()
        self._pool._forget(self)

    # -- httptools callbacks ----------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        old = self.headers.get(key)
        self.headers[key] = value.decode("latin-1") if old is None else f"{old}, {value.decode('latin-1')}"

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        if 100 <= self.status < 200:  # interim response (e.g. 100 Continue): the real one follows
            self.headers = {}
            return
        self._headers_done = True
        self._keep_alive = self._parser.should_keep_alive()
        self._inflater = Inflater.for_encoding(self.headers.get("content-encoding"), self._pool.max_decompressed)

    def on_body(self, body: bytes) -> None:
        if self._draining:
            self._buffered += len(body)
            if self._buffered > DRAIN_BYTES:
                self._abort()
            return
        if self._inflater is not None:
            if self._error is not None:
                return
            try:
                body = self._inflater.feed(body)
            except BadResponse as exc:  # raised here, httptools would report it as a parser error
                self._fail(exc)
                self._abort()
                return
            if not body:
                return
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > _HIGH_WATER and not self._paused and self._transport is not None:
            self._paused = True  # the consumer is slow: stop reading; its silence is not the upstream's
            self.deadline = _INF
            self._transport.pause_reading()

    def on_message_complete(self) -> None:
        if self._headers_done and self._error is None:
            self._done = True
            self.deadline = _INF
            if self._draining:  # the end of a body its reader had let go of: the connection is free again
                self._pool.draining -= 1
                self._reset()
                self._pool._put_back(self)

    # -- internals --------------------------------------------------------------------------------
    def _until_close(self) -> bool:
        return "content-length" not in self.headers and "chunked" not in self.headers.get("transfer-encoding", "")

    def _fail(self, err: HTTPClientError) -> None:
        if self._error is None and not self._done:
            err.answered = self._got_bytes
            self._error = err

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()
        self.closed = True

    async def _wait(self) -> None:
        self._waiter = self._pool._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _time_out(self, now: float) -> None:
        self._fail(
            TimedOut(
                "the upstream sent nothing within the read timeout"
                if now < self._total_deadline
                else "the upstream did not finish within the total timeout"
            )
        )
        self._wake()
        self._abort()

    def _send(self, data: bytes, timeout: float, total: float | None) -> None:
        now = time.monotonic()
        self._read_timeout = timeout
        self._total_deadline = now + total if total is not None else _INF
        self.deadline = min(self._total_deadline, now + timeout)
        self._in_exchange = True
        self._transport.write(data)  # type: ignore[union-attr]

    async def _await_headers(self) -> None:
        while not self._headers_done:
            if self._error is not None:
                raise self._error
            await self._wait()

    # -- the response ------------------------------------------------------------------------------
    def content_length(self) -> int | None:
        raw = self.headers.get("content-length")
        return int(raw) if raw is not None and raw.strip().isdigit() else None

    async def iter_body(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive (decoded from chunked/gzip), until the answer is complete: all
        that has arrived since the last block, in one (a burst of stream events reads as one)."""
        while True:
            while self._chunks:
                if len(self._chunks) == 1:
                    chunk = self._chunks.popleft()
                else:
                    chunk = b"".join(self._chunks)
                    self._chunks.clear()
                self._buffered -= len(chunk)
                if self._paused and self._buffered < _HIGH_WATER // 4 and self._transport is not None:
                    self._paused = False
                    self.deadline = min(self._total_deadline, time.monotonic() + self._read_timeout)
                    self._transport.resume_reading()
                yield chunk
            if self._done:
                return
            if self._error is not None:
                raise self._error
            await self._wait()

    async def read(self, limit: int) -> bytes:
        """The whole body; ``BadResponse`` past ``limit`` bytes."""
        if self._done and len(self._chunks) == 1:  # the common case: it all arrived in one go
            body = self._chunks.popleft()
            self._buffered = 0
        else:
            body = await read_all(self.iter_body(), limit)
        if len(body) > limit:
            raise BadResponse(f"the response exceeds {limit} bytes")
        return body

    def release(self) -> None:
        """Done with this response: a complete keep-alive answer returns the connection to the pool;
        one whose framed body has not quite ended (a stream read to its ``[DONE]``) goes back when
        the rest arrives, within ``DRAIN_S`` and ``DRAIN_BYTES``, else it is closed."""
        healthy = not self.closed and self._error is None and self._keep_alive
        if self._paused and healthy:  # a large answer paused reading; the next exchange must read again
            self._paused = False
            self._transport.resume_reading()  # type: ignore[union-attr]
        if self._done and healthy:
            self._reset()
            self._pool._put_back(self)
        elif healthy and self._headers_done and not self._until_close() and self._buffered <= DRAIN_BYTES:
            self._draining = True
            self._pool.draining += 1
            self._chunks.clear()
            self._buffered = 0
            self._total_deadline = self.deadline = time.monotonic() + DRAIN_S
        else:
            self.close()

    def close(self) -> None:
        if not self.closed:
            self._abort()
        self._pool._forget(self)
