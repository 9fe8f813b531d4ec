"""The guard in front of uvicorn's HTTP protocol (router/http.py), run with each of uvicorn's two
HTTP/1.1 protocols behind it: it holds the server's protocol and calls only its asyncio.Protocol
methods, so it does not depend on either's internals. (The gateway's own process, with its
config's limits, is tested in tests/test_hostile.py and tests/test_security.py.)"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from router.http import HeadGuard, HeadLimits
from tests.conftest import free_port


async def echo_app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    answer = json.dumps({"path": scope["path"], "bytes": len(body)}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(answer))]})
    await send({"type": "http.response.body", "body": answer})


@pytest.fixture(params=["httptools", "h11"])
def server(request) -> Iterator[int]:  # type: ignore[no-untyped-def]
    class Guard(HeadGuard):
        limits = HeadLimits(header_timeout=2.0, max_incomplete=2, max_bytes=2048, max_headers=20)
        inner_class = request.param

    with serving(Guard) as port:
        yield port
    assert Guard.limits.incomplete == 0, "every slow head was counted out again"


@contextlib.contextmanager
def serving(guard: type[HeadGuard]) -> Iterator[int]:
    """``echo_app`` under uvicorn in a thread, ``guard`` as its HTTP protocol; the port."""
    port = free_port()
    srv = uvicorn.Server(
        uvicorn.Config(echo_app, host="127.0.0.1", port=port, http=guard, log_level="warning", timeout_keep_alive=1)
    )
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    while not srv.started:
        time.sleep(0.01)
    try:
        yield port
    finally:
        srv.should_exit = True
        thread.join(10)


def exchange(port: int, *parts: bytes) -> bytes:
    """Sends the parts (a pause between them) and reads until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        for i, part in enumerate(parts):
            if i:
                time.sleep(0.05)
            s.sendall(part)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def status_and_error(reply: bytes) -> tuple[int, str | None]:
    head, _, body = reply.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    return status, json.loads(body)["error"]["code"] if status >= 400 else None


def test_the_guard_is_no_subclass_of_the_servers_protocols() -> None:
    assert not any(c.__module__.startswith("uvicorn") for c in HeadGuard.__mro__)


def test_whole_split_and_pipelined_requests_pass_through(server: int) -> None:
    close = b"connection: close\r\n\r\n"
    assert exchange(server, b"GET /a HTTP/1.1\r\nhost: x\r\n" + close).startswith(b"HTTP/1.1 200")
    # a head in three reads, then a body in two: the guard counts it as one request
    reply = exchange(
        server,
        b"POST /b HTTP/1.1\r\nho",
        b"st: x\r\ncontent-length: 10\r\n",
        close + b"01234",
        b"56789",
    )
    assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b'{"path": "/b", "bytes": 10}')
    two = exchange(server, b"GET /c HTTP/1.1\r\nhost: x\r\n\r\nGET /d HTTP/1.1\r\nhost: x\r\n" + close)
    assert two.count(b"HTTP/1.1 200") == 2 and b'"/c"' in two and b'"/d"' in two
    # a body larger than the head limit is not mistaken for a head
    big = b"x" * 50_000
    reply = exchange(server, b"POST /e HTTP/1.1\r\nhost: x\r\ncontent-length: 50000\r\n" + close + big)
    assert reply.endswith(b'"bytes": 50000}')


def test_heads_over_the_limits_get_431_and_bad_http_400(server: int) -> None:
    one_read = exchange(server, b"GET / HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 3000 + b"\r\n\r\n")
    assert status_and_error(one_read) == (431, "headers_too_large")
    # a header that never ends, sent in pieces: refused once its bytes pass the limit
    with socket.create_connection(("127.0.0.1", server), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nhost: x\r\nx-big: ")
        reply = b""
        for _ in range(10):
            try:
                s.sendall(b"a" * 1000)
            except OSError:
                break
            time.sleep(0.02)
        while chunk := s.recv(65536):
            reply += chunk
    assert status_and_error(reply) == (431, "headers_too_large")
    many = exchange(server, b"GET / HTTP/1.1\r\nhost: x\r\n" + b"x-h: v\r\n" * 21 + b"\r\n")
    assert status_and_error(many) == (431, "headers_too_large")
    fine = exchange(server, b"GET / HTTP/1.1\r\nhost: x\r\n" + b"x-h: v\r\n" * 18 + b"connection: close\r\n\r\n")
    assert fine.startswith(b"HTTP/1.1 200")
    assert status_and_error(exchange(server, b"NOT HTTP AT ALL\r\n\r\n")) == (400, "invalid_http")


def test_slow_heads_time_out_and_their_number_is_bounded(server: int) -> None:
    held = []
    try:
        for _ in range(2):
            s = socket.create_connection(("127.0.0.1", server), timeout=10)
            s.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n")
            held.append(s)
        # a third slow head is refused at once, while a whole request is still served
        third = exchange(server, b"GET / HTTP/1.1\r\nhost: x\r\n")
        assert status_and_error(third) == (503, "server_busy")
        assert exchange(server, b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").startswith(b"HTTP/1.1 200")
        for s in held:
            assert status_and_error(s.recv(65536)) == (408, "request_timeout")
    finally:
        for s in held:
            s.close()


def test_a_connection_that_sends_nothing_is_closed(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server), timeout=10) as s:
        assert s.recv(100) == b""  # closed by the server (timeout_keep_alive), not by this timeout


def test_the_body_deadline_bounds_the_body_and_not_the_reads_after_it() -> None:
    """BodyDeadline (the pipeline's body timeout): a body that stalls is a 408 that closes the
    connection; once the body is complete, a read that waits (a stream watching for the client
    leaving) is not cut off by the deadline."""
    import asyncio

    from router.errors import APIError
    from router.http import BodyDeadline

    seen: list[dict] = []

    async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        seen.append(await receive())
        seen.append(await receive())

    async def whole_body_then_a_late_disconnect():  # type: ignore[no-untyped-def]
        if not seen:
            return {"type": "http.request", "body": b"{}", "more_body": False}
        await asyncio.sleep(0.3)  # longer than the deadline
        return {"type": "http.disconnect"}

    async def stalled_body():  # type: ignore[no-untyped-def]
        if not seen:
            return {"type": "http.request", "body": b"{", "more_body": True}
        await asyncio.Event().wait()  # the rest never comes

    arrived = asyncio.Event()

    async def body_in_two_parts():  # type: ignore[no-untyped-def]
        if not seen:
            return {"type": "http.request", "body": b'{"a":', "more_body": True}
        await arrived.wait()  # the rest comes while the read waits, within the deadline
        return {"type": "http.request", "body": b"1}", "more_body": False}

    async def run() -> None:
        guarded = BodyDeadline(app, 0.05)
        slow = BodyDeadline(app, 30)
        asyncio.get_running_loop().call_soon(arrived.set)
        await slow({"type": "http"}, body_in_two_parts, None)
        assert [m["body"] for m in seen] == [b'{"a":', b"1}"]
        seen.clear()
        await guarded({"type": "http"}, whole_body_then_a_late_disconnect, None)
        assert [m["type"] for m in seen] == ["http.request", "http.disconnect"]
        seen.clear()
        with pytest.raises(APIError) as refused:
            await guarded({"type": "http"}, stalled_body, None)
        assert refused.value.status == 408 and refused.value.code == "request_timeout"
        assert refused.value.headers == {"connection": "close"}

    asyncio.run(run())


def read_answers(s: socket.socket, n: int) -> list[bytes]:
    """``n`` answers of the echo app from ``s`` (each ends with its JSON object)."""
    out = b""
    while out.count(b"HTTP/1.1 ") < n or not out.endswith(b"}"):
        chunk = s.recv(65536)
        assert chunk, out
        out += chunk
    return [b"HTTP/1.1 " + a for a in out.split(b"HTTP/1.1 ")[1:]]


H2C = b"connection: Upgrade, HTTP2-Settings\r\nupgrade: h2c\r\nhttp2-settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n"


def test_an_upgrade_request_is_answered_as_plain_http_with_its_body(server: int) -> None:
    """curl --http2 asks an http:// URL for h2c, its body in the same read as its head. No route
    takes another protocol, so the request is answered as HTTP/1.1 (RFC 9110, 7.8): its body reaches
    the app, and the connection serves the requests after it, pipelined too."""
    with socket.create_connection(("127.0.0.1", server), timeout=10) as s:
        s.sendall(b"POST /u HTTP/1.1\r\nhost: x\r\n" + H2C + b"content-length: 3\r\n\r\nabc")
        [reply] = read_answers(s, 1)
        assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b'{"path": "/u", "bytes": 3}'), reply
        # the same connection again: a plain request, then an upgrade request pipelined between two others
        s.sendall(b"POST /v HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nab")
        assert read_answers(s, 1)[0].endswith(b'{"path": "/v", "bytes": 2}')
        s.sendall(
            b"GET /w HTTP/1.1\r\nhost: x\r\n\r\n"
            + b"POST /x HTTP/1.1\r\nhost: x\r\n"
            + H2C
            + b"content-length: 4\r\n\r\nabcd"
            + b"POST /y HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\n\r\na"
        )
        answers = read_answers(s, 3)
        assert [a.rsplit(b"\r\n\r\n", 1)[1] for a in answers] == [
            b'{"path": "/w", "bytes": 0}',
            b'{"path": "/x", "bytes": 4}',
            b'{"path": "/y", "bytes": 1}',
        ]
        assert all(b"101" not in a.split(b"\r\n")[0] for a in answers)


def test_after_an_upgrade_request_the_server_takes_trickled_bytes_cannot_hold_the_connection(server: int) -> None:
    """An upgrade request whose head came in two reads (its start is the server's already) goes to the
    server as it is; the server answers it and reads nothing after it. What a client sends next must
    not keep the connection open: it is closed within the keep-alive timeout (1 s here) of the
    answer, however the client trickles bytes."""
    with socket.create_connection(("127.0.0.1", server), timeout=10) as s:
        s.sendall(b"GET /u HTTP/1.1\r\nhost: x\r\n")
        time.sleep(0.05)
        s.sendall(H2C + b"\r\n")
        [reply] = read_answers(s, 1)
        assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b'{"path": "/u", "bytes": 0}')
        s.settimeout(0.1)
        closed_after = None
        started = time.monotonic()
        while time.monotonic() - started < 10:  # ten times the keep-alive timeout
            try:
                s.sendall(b"G")
                if s.recv(65536) == b"":
                    closed_after = time.monotonic() - started
                    break
            except TimeoutError:
                continue
            except OSError:
                closed_after = time.monotonic() - started
                break
        assert closed_after is not None, "a trickle of bytes held the connection open"
