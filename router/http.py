"""The client timeouts and head limits a gateway needs that its HTTP server lacks.

Two small pieces, neither a subclass of a server's classes:

- ``HeadGuard``, an ``asyncio.Protocol`` that stands in front of uvicorn's HTTP protocol (passed
  to uvicorn as ``http=``; it holds uvicorn's protocol and calls only the ``asyncio.Protocol``
  methods of it). It reads every request head itself with httptools (the parser uvicorn uses) before
  the bytes go on, and so bounds what the server cannot:

  - a connection that opens and sends nothing is closed after ``server.keepalive_timeout`` (the
    server starts that timer only after a response);
  - a request head that takes more than one read must arrive within ``server.header_timeout``
    (408), and at most ``server.max_incomplete_requests`` such heads are read at once per process
    (503 beyond): slow-header clients cannot hold the gateway's connections;
  - a request line and headers larger than ``server.max_header_bytes`` or with more than
    ``server.max_headers`` headers get a 431 before they reach the server's parser, and malformed
    HTTP gets a 400, both in the JSON error shape, and the connection is closed;
  - a request asking to switch protocols (``Upgrade``: curl --http2 on an http:// URL) is
    answered as HTTP/1.1 with its body (the server's parser would read neither its body nor any
    request after it), and bytes after one the server keeps cannot hold the connection open.

- ``BodyDeadline``, a pure-ASGI middleware (in the app's pipeline, router/app.py): a request
  body that does not arrive within ``server.body_timeout`` of the first read gets a 408 and its
  connection is closed. Once the body is complete, reads (a stream's wait for the client leaving)
  pass through untimed.

- The guard hands the server a ``CorkedTransport`` (router/corked.py): what the server writes in one
  turn of the event loop leaves in one write (uvicorn writes a response's head and body apart).

The usual request, whose head arrives in one read, costs the guard one parse of its head (0.8 us
measured) and no timer.
"""

from __future__ import annotations

import asyncio
import functools
import os
import types
from dataclasses import dataclass
from typing import Any, Generator, Mapping, cast

import httptools
import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.config import HTTP_PROTOCOLS
from uvicorn.importer import import_from_string

from router.corked import CorkedTransport
from router.errors import APIError

ENV_BODY_TIMEOUT = "SWITCHYARD_BODY_TIMEOUT"  # set by `switchyard serve`; workers inherit it
ENV_MAX_HEADER_BYTES = "SWITCHYARD_MAX_HEADER_BYTES"
ENV_MAX_HEADERS = "SWITCHYARD_MAX_HEADERS"
ENV_HEADER_TIMEOUT = "SWITCHYARD_HEADER_TIMEOUT"
ENV_MAX_INCOMPLETE = "SWITCHYARD_MAX_INCOMPLETE"


def error_bytes(status: int, reason: str, message: str, code: str, type_: str = "invalid_request_error") -> bytes:
    """A complete HTTP/1.1 response with OpenAI's error body, that closes the connection."""
    body = orjson.dumps({"error": {"message": message, "type": type_, "param": None, "code": code}})
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
        % (status, reason.encode(), len(body))
        + body
    )


@dataclass
class HeadLimits:
    """The guard's settings (``server.*`` in the config), and its count of heads being read."""

    header_timeout: float = 10.0
    max_incomplete: int = 1024
    max_bytes: int = 32768
    max_headers: int = 100
    incomplete: int = 0  # connections of this process whose request head is partly read

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> HeadLimits:
        """As ``switchyard serve`` passes them to its workers."""
        return cls(
            header_timeout=float(env.get(ENV_HEADER_TIMEOUT) or cls.header_timeout),
            max_incomplete=int(env.get(ENV_MAX_INCOMPLETE) or cls.max_incomplete),
            max_bytes=int(env.get(ENV_MAX_HEADER_BYTES) or cls.max_bytes),
            max_headers=int(env.get(ENV_MAX_HEADERS) or cls.max_headers),
        )


@functools.cache
def _server_protocol(name: str) -> Any:
    """uvicorn's HTTP protocol class by its public name, imported once (not once per connection)."""
    return import_from_string(HTTP_PROTOCOLS[name])


class _Refused(Exception):
    """Raised in a parser callback to stop parsing a head over the limits."""


class HeadGuard(asyncio.Protocol):
    """uvicorn's HTTP protocol (``inner``) behind a reader of request heads; see the module's text."""

    limits: HeadLimits | None = None  # from the environment on first use, unless a subclass sets them
    inner_class = "httptools"  # the server's protocol, by its uvicorn name ("h11" works as well)

    def __init__(self, config: Any, server_state: Any, app_state: Any, _loop: asyncio.AbstractEventLoop | None = None):
        cls = type(self)
        if cls.limits is None:
            cls.limits = HeadLimits.from_env()
        self.lim = cls.limits
        self.inner: asyncio.Protocol = _server_protocol(self.inner_class)(
            config=config, server_state=server_state, app_state=app_state, _loop=_loop
        )
        self.loop = _loop or asyncio.get_event_loop()
        self.idle_timeout = float(config.timeout_keep_alive)
        self.parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.idle_timer: asyncio.TimerHandle | None = None
        self.head_timer: asyncio.TimerHandle | None = None
        self.in_head = False  # a request line has begun and its headers are not complete
        self.head_size = 0  # the request line and the headers the parser has given so far
        self.head_reads = 0  # bytes of the reads that ended inside a head (a header not yet given counts)
        self.headers = 0
        self.refusal = ""
        self.deaf = False  # refused and closing, or past an upgrade the server kept: nothing more goes on
        self.rewriting = False
        self.url = b""

    # asyncio.Protocol: what the event loop calls, passed on to the server's protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio's; the guard's own answers go through the cork
        # too, so they follow what the server wrote before them
        self.transport = cast(asyncio.Transport, CorkedTransport(cast(asyncio.Transport, transport), self.loop))
        self.idle_timer = self.loop.call_later(self.idle_timeout, self._idle)
        self.inner.connection_made(self.transport)

    def data_received(self, data: bytes) -> None:
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        if self.parser is not None:
            passed = self._read(data)
            if passed is None:
                return
            data = passed
        elif self.deaf:
            return
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.idle_timer is not None:
            self.idle_timer.cancel()
        self._head_done()
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    # httptools' callbacks: the guard's own view of each request head

    def on_message_begin(self) -> None:
        self.in_head, self.head_size, self.head_reads, self.headers = True, 0, 0, 0

    def on_url(self, url: bytes) -> None:
        self.head_size += len(url)
        self.url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers += 1
        self.head_size += len(name) + len(value) + 4
        if self.headers > self.lim.max_headers:
            self.refusal = f"The request has more than {self.lim.max_headers} headers."
            raise _Refused
        if self.head_size > self.lim.max_bytes:
            self.refusal = self._too_large()
            raise _Refused

    def on_headers_complete(self) -> None:
        self._head_done()

    # the guard's decisions

    def _read(self, data: bytes) -> bytes | None:
        """Parses ``data``; what goes on to the server (``data`` itself but past an upgrade request),
        or None when the guard has answered and closed the connection."""
        assert self.parser is not None and self.transport is not None
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            return self._upgrade(data, exc.args[0])
        except httptools.HttpParserError:
            if self.refusal:
                self._answer(431, "Request Header Fields Too Large", self.refusal, "headers_too_large")
            else:
                self._answer(400, "Bad Request", "The request is not valid HTTP/1.1.", "invalid_http")
            return None
        if not self.in_head:
            return data
        # a head still incomplete after this read: its bytes counted (a header still being read is
        # not yet seen by a callback), its time and the number of such heads bounded
        self.head_reads += len(data)
        if self.head_reads > self.lim.max_bytes:
            self._answer(431, "Request Header Fields Too Large", self._too_large(), "headers_too_large")
            return None
        if self.head_timer is None:
            if self.lim.incomplete >= self.lim.max_incomplete:
                message = "Too many requests are arriving slowly at once; try again."
                self._answer(503, "Service Unavailable", message, "server_busy", "api_error")
                return None
            self.lim.incomplete += 1
            self.head_timer = self.loop.call_later(self.lim.header_timeout, self._head_timed_out)
        return data

    def _upgrade(self, data: bytes, end: int) -> bytes | None:
        """A request asking to switch protocols (``Upgrade``; curl --http2 asks for h2c on http://
        URLs), whose head ends at ``end``. No route takes another protocol, so the request is
        answered as plain HTTP/1.1, which a server may do (RFC 9110, 7.8): its head goes on without
        the upgrade, so the server's parser reads its body and the requests after it. When the head
        did not arrive in this read (its start went to the server already), or is a WebSocket
        handshake or a CONNECT, the server decides; it reads nothing after such a request, and
        what follows is dropped here, so it can neither hold the connection open (the server's
        keep-alive timer closes it after the answer) nor make the server log a warning per read."""
        assert self.parser is not None
        self._head_done()
        # (one rewrite per read: a second upgrade request pipelined behind the first is the server's)
        plain = None if self.rewriting else _without_upgrade(data, end, self.parser.get_method(), self.url)
        if plain is None or plain[1] == data[plain[0] : end]:
            self.parser, self.deaf = None, True
            return data
        start, head = plain
        self.parser = httptools.HttpRequestParser(self)  # at the boundary where the request begins
        self.rewriting = True
        try:
            rest = self._read(head + data[end:])
        finally:
            self.rewriting = False
        return None if rest is None else data[:start] + rest

    def _too_large(self) -> str:
        return f"The request line and headers exceed this gateway's limit of {self.lim.max_bytes} bytes."

    def _head_done(self) -> None:
        self.in_head = False
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None
            self.lim.incomplete -= 1

    def _answer(self, status: int, reason: str, message: str, code: str, type_: str = "invalid_request_error") -> None:
        self._head_done()
        self.parser, self.deaf = None, True
        assert self.transport is not None
        if not self.transport.is_closing():
            self.transport.write(error_bytes(status, reason, message, code, type_))
            self.transport.close()

    def _head_timed_out(self) -> None:
        self.head_timer = None
        self.lim.incomplete -= 1
        message = f"The request line and headers did not arrive within {self.lim.header_timeout:g} s."
        self._answer(408, "Request Timeout", message, "request_timeout")

    def _idle(self) -> None:
        self.idle_timer = None
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


def _without_upgrade(data: bytes, end: int, method: bytes, url: bytes) -> tuple[int, bytes] | None:
    """Where in ``data`` the request head ending at ``end`` starts, and that head without its
    ``Upgrade`` header and the ``upgrade`` option of ``Connection``; None when the head did not
    start in ``data`` or asks for a WebSocket. The head starts at the last line that begins with its
    request line: a header line cannot (a field name has no space)."""
    if method == b"CONNECT":
        return None
    line = method + b" " + url + b" "
    start = data.rfind(b"\n" + line, 0, end) + 1
    if start == 0 and not data.startswith(line):
        return None
    lines = data[start:end].split(b"\r\n")
    out = [lines[0]]
    for raw in lines[1:]:
        name, colon, value = raw.partition(b":")
        field = name.strip().lower()
        if colon and field == b"upgrade":
            if value.strip().lower() == b"websocket":
                return None  # the server's WebSocket handling decides
            continue
        if colon and field == b"connection":
            options = [o for o in value.split(b",") if o.strip().lower() != b"upgrade"]
            if not any(o.strip() for o in options):
                continue
            raw = name + b":" + b",".join(options)
        out.append(raw)
    return start, b"\r\n".join(out)


@types.coroutine
def _finish(coro: Any, waiting: Any) -> Generator[Any, Any, Any]:
    """Drives ``coro``, suspended on ``waiting``, to its end, as ``await`` would have: what the task
    sends in goes to it, and what is thrown in (the deadline's cancellation) goes into it."""
    value = waiting
    while True:
        try:
            sent = yield value
        except BaseException as exc:
            try:
                value = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
            continue
        try:
            value = coro.send(sent)
        except StopIteration as stop:
            return stop.value


class BodyDeadline:
    """A request body must arrive within ``seconds`` of the app's first read of it (408 otherwise,
    and the connection is closed); later reads pass through untimed.

    A read is first run one step: when the body is already there (the usual request, whose body
    came with its head) it ends at once and no timer is armed; only a read that has to wait
    continues under the deadline."""

    def __init__(self, app: ASGIApp, seconds: float):
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        seconds = self.seconds
        deadline: float | None = None
        complete = False

        async def receive_in_time() -> Message:
            nonlocal deadline, complete
            if complete:
                return await receive()
            read: Any = receive()
            try:
                # a coroutine (as servers' receive is), else awaited as it is under the deadline
                waiting = read.send(None) if hasattr(read, "send") else read
            except StopIteration as done:
                message: Message = done.value
            else:
                if deadline is None:  # the first read that has to wait (those before it took no time)
                    deadline = asyncio.get_running_loop().time() + seconds
                try:
                    async with asyncio.timeout_at(deadline):
                        message = await (_finish(read, waiting) if waiting is not read else read)
                except TimeoutError:
                    raise APIError(
                        408,
                        f"The request body did not arrive within {seconds:g} s.",
                        code="request_timeout",
                        headers={"connection": "close"},
                    ) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                complete = True
            return message

        await self.app(scope, receive_in_time, send)
