"""The server-sent-events response (router/sse.py) pumps its body in the response's own task while a
second task watches for the client leaving. Whatever ends the stream (its end, the client leaving,
the server cancelling the request), the body iterator is closed and ``on_close`` (which meters the
request) runs to its end exactly once. Synchronised on events, not on time."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

import pytest

from router.sse import SSEResponse


class Stream:
    """A body of endless events that records how it ended, with an ``on_close`` that takes a few
    turns of the loop (as metering does) and records whether it finished."""

    def __init__(self) -> None:
        self.closed = False
        self.close_runs = 0
        self.close_finished = 0

    async def body(self) -> AsyncIterator[bytes]:
        try:
            i = 0
            while True:
                i += 1
                yield f"data: {i}\n\n".encode()
                await asyncio.sleep(0)
        finally:
            self.closed = True

    async def on_close(self) -> None:
        self.close_runs += 1
        for _ in range(5):
            await asyncio.sleep(0)
        self.close_finished += 1


class Client:
    """ASGI receive and send: the client leaves once ``leave_after`` body messages have reached it."""

    def __init__(self, leave_after: int | None):
        self.leave_after = leave_after
        self.bodies: list[bytes] = []
        self.ended = False
        self.left = asyncio.Event()
        self.sent_one = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        await self.left.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            self.bodies.append(message["body"])
            self.sent_one.set()
            if not message.get("more_body", False):
                self.ended = True
            if self.leave_after is not None and len(self.bodies) >= self.leave_after:
                self.left.set()
        await asyncio.sleep(0)


def test_a_client_that_leaves_ends_the_stream_and_it_is_closed_and_metered_once() -> None:
    async def run() -> None:
        stream, client = Stream(), Client(leave_after=3)
        response = SSEResponse(stream.body(), on_close=stream.on_close)
        await response({"type": "http"}, client.receive, client.send)  # returns: nothing to tell a client gone
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0  # its own cancellation is not left pending
        assert 3 <= len(client.bodies) < 10 and not client.ended
        assert stream.closed and stream.close_runs == stream.close_finished == 1

    asyncio.run(run())


def test_a_stream_that_ends_is_closed_and_metered_once_though_the_client_leaves_as_it_ends() -> None:
    async def finite() -> AsyncIterator[bytes]:
        for i in range(3):
            yield f"data: {i}\n\n".encode()

    async def run() -> None:
        stream, client = Stream(), Client(leave_after=4)  # leaves on the final (empty) body message
        response = SSEResponse(finite(), on_close=stream.on_close)
        await response({"type": "http"}, client.receive, client.send)
        assert client.ended and client.bodies[-1] == b""
        # the client left while on_close ran; on_close still finished
        assert stream.close_runs == stream.close_finished == 1

    asyncio.run(run())


def test_the_server_cancelling_the_request_still_closes_and_meters_it() -> None:
    async def run() -> None:
        stream, client = Stream(), Client(leave_after=None)
        response = SSEResponse(stream.body(), on_close=stream.on_close)
        task = asyncio.ensure_future(response({"type": "http"}, client.receive, client.send))
        await client.sent_one.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert stream.closed and stream.close_runs == stream.close_finished == 1

    asyncio.run(run())


def test_a_body_that_fails_is_closed_metered_and_its_error_raised() -> None:
    async def failing() -> AsyncIterator[bytes]:
        yield b"data: 1\n\n"
        raise ValueError("the body broke")

    async def run() -> None:
        stream, client = Stream(), Client(leave_after=None)
        response = SSEResponse(failing(), on_close=stream.on_close)
        with pytest.raises(ValueError, match="the body broke"):
            await response({"type": "http"}, client.receive, client.send)
        assert stream.close_runs == stream.close_finished == 1

    asyncio.run(run())
