"""The corked transport in front of the server's protocol (router/corked.py): what the server writes in
one turn of the event loop leaves in one write, in order, and nothing is lost or reordered by close,
abort, a large write or a connection already closing."""

from __future__ import annotations

import asyncio
import socket
from typing import Any, Iterator

import pytest

from router.corked import CorkedTransport
from router.http import HeadGuard, HeadLimits
from tests.test_http_guard import serving


class FakeTransport:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        assert not self.closing
        self.events.append(("write", data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True
        self.events.append(("close", None))

    def abort(self) -> None:
        self.closing = True
        self.events.append(("abort", None))

    def write_eof(self) -> None:
        self.events.append(("eof", None))

    def get_extra_info(self, name: str) -> Any:
        return ("peer", name)


Corked = tuple[CorkedTransport, FakeTransport, asyncio.AbstractEventLoop]


@pytest.fixture
def corked() -> Iterator[Corked]:
    """A corked fake transport on a loop of its own (closed after the test)."""
    loop = asyncio.new_event_loop()
    fake = FakeTransport()
    try:
        yield CorkedTransport(fake, loop), fake, loop  # type: ignore[arg-type]
    finally:
        loop.close()


def turn(loop: asyncio.AbstractEventLoop) -> None:
    loop.run_until_complete(asyncio.sleep(0))


def test_writes_of_one_turn_leave_as_one_write_in_order(corked: Corked) -> None:
    t, fake, loop = corked
    t.write(b"head ")
    t.write(b"body")
    assert fake.events == []  # nothing leaves before the turn ends
    turn(loop)
    assert fake.events == [("write", b"head body")]
    t.write(b"next")
    turn(loop)
    assert fake.events[-1] == ("write", b"next")
    turn(loop)
    assert len(fake.events) == 2  # nothing written twice


def test_close_eof_and_large_writes_act_at_once_and_abort_drops(corked: Corked) -> None:
    t, fake, loop = corked
    t.write(b"a")
    t.write_eof()
    assert fake.events == [("write", b"a"), ("eof", None)]
    t.write(b"x" * CorkedTransport.FLUSH_AT)
    assert fake.events[-1] == ("write", b"x" * CorkedTransport.FLUSH_AT)
    t.write(b"last")
    t.close()
    assert fake.events[-2:] == [("write", b"last"), ("close", None)]
    turn(loop)  # the scheduled flush finds nothing, and the closed transport gets no write
    assert fake.events[-1] == ("close", None)
    t2 = CorkedTransport(FakeTransport(), loop)  # type: ignore[arg-type]
    t2.write(b"dropped")
    t2.abort()
    turn(loop)
    assert t2.transport.events == [("abort", None)]  # type: ignore[attr-defined]
    assert t.get_extra_info("peername") == ("peer", "peername")  # the rest is the transport's own


def test_a_buffer_reused_after_its_write_is_sent_as_it_was(corked: Corked) -> None:
    t, fake, loop = corked
    buf = bytearray(b"first")
    t.write(buf)
    buf[:] = b"XXXXX"  # the writer's buffer, reused once write returned
    t.write(memoryview(b"second"))
    turn(loop)
    assert fake.events == [("write", b"firstsecond")]


def test_a_write_pending_when_the_peer_left_is_dropped(corked: Corked) -> None:
    t, fake, loop = corked
    t.write(b"late")
    fake.closing = True  # the connection was lost before the turn ended
    turn(loop)
    assert fake.events == []


class Counting:
    """The real transport, its writes recorded."""

    def __init__(self, transport: Any, writes: list[bytes]):
        self._t, self._writes = transport, writes

    def write(self, data: bytes) -> None:
        self._writes.append(bytes(data))
        self._t.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._t, name)


@pytest.fixture(params=["httptools", "h11"])
def counted(request) -> Iterator[tuple[int, list[bytes]]]:  # type: ignore[no-untyped-def]
    writes: list[bytes] = []

    class Guard(HeadGuard):
        limits = HeadLimits(header_timeout=2.0, max_incomplete=2, max_bytes=2048, max_headers=20)
        inner_class = request.param

        def connection_made(self, transport: Any) -> None:
            super().connection_made(Counting(transport, writes))

    with serving(Guard) as port:
        yield port, writes


def test_each_answer_leaves_in_one_write_and_whole(counted: tuple[int, list[bytes]]) -> None:
    port, writes = counted
    requests = [b"POST /p%d HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc" % i for i in range(3)]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        for i, r in enumerate(requests):
            s.sendall(r)
            want = b'{"path": "/p%d", "bytes": 3}' % i
            got = b""
            while not got.endswith(want):
                chunk = s.recv(65536)
                assert chunk, got
                got += chunk
    assert len(writes) == 3, writes  # the head and the body of each answer together
    for i, w in enumerate(writes):
        assert w.startswith(b"HTTP/1.1 200") and w.endswith(b'{"path": "/p%d", "bytes": 3}' % i)
