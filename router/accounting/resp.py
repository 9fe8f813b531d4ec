"""A lean Redis client for the request path: one connection, commands pipelined, replies read by hiredis.

Every admission and settlement is a Lua script call to Redis. Through redis-py's asyncio client (with
hiredis) an admission costs about 75 us of the gateway's CPU (a pooled connection taken and given
back, a retry wrapper, a read with its own timeout, the reply parsed); here about 20 us, 4 of them the
benchmark's own (`benchmarks/resp_client.py`).
Commands are written on one connection and their replies, which Redis sends in order, resolve them in
order; the commands of one turn of the event loop leave in one write. redis-py stays for everything
else (pipelines, the administrative calls) and for whatever this client does not take: see
``supported``.

Failures, as the callers (rate limits, budgets) need them:
- A call not answered within ``timeout`` fails with ``TimeoutError``, and so does every call sent
  after it on the connection, which is closed: a reply that comes late can no longer be matched to
  its call. The next call opens a new connection.
- A connection that breaks fails its calls in flight with ``ConnectionError``; none is sent again
  (a script may have run, and running an admission twice would count the request twice). A
  connection found closed before a call is written is replaced first, so a Redis that restarted
  between two requests costs none of them.
- A script Redis does not hold (a restart empties its cache) is sent again in full (``EVAL``): the
  ``NOSCRIPT`` answer means it did not run.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import ssl
from typing import Any, Protocol, Sequence
from urllib.parse import unquote, urlsplit


class ReplyError(Exception):
    """An error Redis answered with (the connection stays usable)."""


def supported(url: str) -> bool:
    """What this client takes: redis:// and rediss:// with an optional user, password and database
    number, no query options; and hiredis installed. Anything else goes to redis-py."""
    try:
        import hiredis  # noqa: F401
    except ImportError:
        return False
    u = urlsplit(url)
    if u.scheme not in ("redis", "rediss") or u.query or u.fragment or not u.hostname:
        return False
    path = u.path.strip("/")
    return not path or path.isdigit()


def pack(args: Sequence[Any]) -> bytes:
    """One command in RESP: an array of bulk strings (str as UTF-8, int in decimal, float by repr)."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = b"%d" % a
        elif isinstance(a, float):
            a = repr(a).encode()
        elif not isinstance(a, bytes):
            raise TypeError(f"cannot send {type(a).__name__} to Redis")
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Scripted(Protocol):
    """A Lua script and its SHA-1 (redis-py's registered scripts have both)."""

    script: str | bytes
    sha: str


class Script:
    """A Lua script, called by its SHA-1 and sent in full only when Redis does not hold it."""

    def __init__(self, script: str):
        self.script = script
        self.sha = hashlib.sha1(script.encode()).hexdigest()


class _Connection(asyncio.Protocol):
    def __init__(self, timeout: float):
        import hiredis

        self._reader = hiredis.Reader()
        self._timeout = timeout
        self._pending: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self._out: list[bytes] = []
        self._timer: asyncio.TimerHandle | None = None
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.failed: BaseException | None = None

    # -- the asyncio protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        pending = self._pending
        while True:
            try:
                reply = self._reader.gets()
            except Exception as exc:  # noqa: BLE001 - hiredis.ProtocolError: nothing after it can be trusted
                self.fail(ConnectionError(f"Redis protocol error: {exc}"))
                return
            if reply is False:
                return
            if not pending:
                self.fail(ConnectionError("Redis sent a reply nobody asked for"))
                return
            fut = pending.popleft()[0]
            if fut.done():  # its caller left (cancelled): the reply is dropped, the order kept
                continue
            if isinstance(reply, Exception):  # hiredis.ReplyError: an error answer
                fut.set_exception(ReplyError(str(reply)))
            else:
                fut.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(ConnectionError(f"Redis connection lost: {exc or 'closed by the server'}"))

    def eof_received(self) -> bool:
        return False  # close: Redis does not half-close

    # -- calls --------------------------------------------------------------------------------------
    @property
    def usable(self) -> bool:
        return self.failed is None and self.transport is not None and not self.transport.is_closing()

    def send(self, payload: bytes) -> asyncio.Future[Any]:
        fut = self.loop.create_future()
        deadline = self.loop.time() + self._timeout
        if not self._pending and self._timer is None:
            self._timer = self.loop.call_at(deadline, self._expire)
        self._pending.append((fut, deadline))
        if not self._out:  # the first command of this turn: written once the turn's commands are in
            self.loop.call_soon(self._flush)
        self._out.append(payload)
        return fut

    def _flush(self) -> None:
        out, self._out = self._out, []
        if out and self.usable:
            assert self.transport is not None
            self.transport.write(b"".join(out))

    def _expire(self) -> None:
        """The oldest call's deadline: fail the connection if it is unanswered, else look again later."""
        self._timer = None
        if not self._pending or self.failed is not None:
            return
        deadline = self._pending[0][1]
        if deadline <= self.loop.time():
            self.fail(TimeoutError(f"Redis did not answer within {self._timeout:g} s"))
        else:
            self._timer = self.loop.call_at(deadline, self._expire)

    def fail(self, exc: BaseException) -> None:
        """Fail every call in flight and close: no later reply can be matched to its call. (A connection
        whose event loop has ended has no caller left to tell, nor a transport that can still close.)"""
        if self.failed is None:
            self.failed = exc
        self._out = []
        if self.loop.is_closed():
            self._pending.clear()
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._pending:
            fut = self._pending.popleft()[0]
            if not fut.done():
                fut.set_exception(exc)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


class LeanRedis:
    """The client: ``call`` sends one command, ``script`` runs a Lua script; both await the reply."""

    def __init__(self, url: str, *, timeout: float, connect_timeout: float | None = None):
        u = urlsplit(url)
        self._host = u.hostname or "localhost"
        self._port = u.port or 6379
        self._tls = u.scheme == "rediss"
        self._user = unquote(u.username) if u.username else None
        self._password = unquote(u.password) if u.password else None
        path = u.path.strip("/")
        self._db = int(path) if path else 0
        self._timeout = timeout
        self._connect_timeout = connect_timeout or timeout
        self._conn: _Connection | None = None
        self._connecting: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    async def _connection(self) -> _Connection:
        loop = asyncio.get_running_loop()
        conn = self._conn
        if conn is not None and conn.usable and conn.loop is loop:
            return conn
        if self._connecting is None or self._lock_loop is not loop:  # (a client used from a new event loop)
            self._connecting, self._lock_loop = asyncio.Lock(), loop
        async with self._connecting:  # one connection is opened, whoever asks meanwhile waits for it
            conn = self._conn
            if conn is not None and conn.usable and conn.loop is loop:
                return conn
            if conn is not None and conn.loop is not loop:
                conn.fail(ConnectionError("the event loop of this connection has ended"))
            self._conn = None
            context = ssl.create_default_context() if self._tls else None
            _, fresh = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Connection(self._timeout),
                    self._host,
                    self._port,
                    ssl=context,
                    server_hostname=self._host if context is not None else None,
                ),
                self._connect_timeout,
            )
            try:
                if self._password is not None:
                    auth = ("AUTH", self._user, self._password) if self._user else ("AUTH", self._password)
                    await fresh.send(pack(auth))
                if self._db:
                    await fresh.send(pack(("SELECT", self._db)))
            except BaseException:
                fresh.fail(ConnectionError("Redis refused the connection's setup"))
                raise
            self._conn = fresh
            return fresh

    async def call(self, *args: Any) -> Any:
        conn = self._conn
        if conn is None or not conn.usable or conn.loop is not asyncio.get_running_loop():
            conn = await self._connection()
        return await conn.send(pack(args))

    async def script(self, script: Scripted, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await self.call("EVALSHA", script.sha, len(keys), *keys, *args)
        except ReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            return await self.call("EVAL", script.script, len(keys), *keys, *args)

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.fail(ConnectionError("the client was closed"))
