"""A server-sent-events response that notices a client leaving at once.

Starlette's StreamingResponse (ASGI 2.4 servers) only learns of a disconnect on its next write
and never closes the body iterator itself. Here the body is pumped in the response's own task
while a second waits for ``http.disconnect``; a disconnect cancels the pump, and the body iterator
is always closed, so its ``finally`` (abort the upstream call, meter the partial usage) runs
promptly.
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator, Awaitable, Callable, Mapping

from starlette.responses import Response
from starlette.types import Receive, Scope, Send


class SSEResponse(Response):
    media_type = "text/event-stream"

    def __init__(
        self,
        body: AsyncIterator[bytes],
        headers: Mapping[str, str] | None = None,
        on_close: Callable[[], Awaitable[None]] | None = None,
    ):
        self.body_iterator = body
        self.on_close = on_close  # runs last, whether or not the body was ever read
        self.status_code = 200
        self.background = None
        self.init_headers({"cache-control": "no-cache", "x-accel-buffering": "no", **(headers or {})})

    async def _pump(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        async for chunk in self.body_iterator:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    @staticmethod
    async def _watch(receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The body is pumped in this task; one more task waits for the client to leave and, if it
        # leaves while the pump runs, cancels this task (the pump), which then carries on below.
        task = asyncio.current_task()
        assert task is not None
        pumping, left = True, False

        def on_leave(watch: asyncio.Task[None]) -> None:
            nonlocal left
            # its outcome is always read (no "exception never retrieved" for a watch nobody awaits)
            if not watch.cancelled() and watch.exception() is None and pumping:
                left = True
                task.cancel()

        watch = asyncio.ensure_future(self._watch(receive))
        watch.add_done_callback(on_leave)
        try:
            await self._pump(send)
        except asyncio.CancelledError:
            if not left:
                raise  # cancelled from outside (the server shutting down): the finally still runs
            task.uncancel()  # our own cancellation, for the client that left: nothing to say to it
        except OSError:
            pass  # the client went away mid-write: nothing more to say to it
        finally:  # any other error is raised once the body is closed and the request metered
            pumping = False
            watch.cancel()  # not awaited: it ends on the loop's next turn, its leaving ignored (pumping is off)
            await self.body_iterator.aclose()  # type: ignore[attr-defined]
            if self.on_close is not None:
                await self.on_close()
