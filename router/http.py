"""uvicorn's httptools protocol, with the two client timeouts a gateway needs that uvicorn lacks.

- A connection that opens and sends nothing is closed after the keep-alive timeout: uvicorn
  starts that timer only after a response; here it also runs from the moment a connection opens,
  and the first bytes received cancel it, as they do between requests.
- A request whose body does not arrive within ``body_timeout`` gets a 408 (OpenAI-style error)
  and its connection is closed. The timer is armed only when a body is still incomplete after a
  read, so the usual request, whose body arrives with its headers, costs no timer at all.
"""

from __future__ import annotations

import os
from asyncio import TimerHandle, Transport
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle


ENV_BODY_TIMEOUT = "SWITCHYARD_BODY_TIMEOUT"  # set by `switchyard serve`; workers inherit it


class SwitchyardHttp(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.body_timeout = float(os.environ.get(ENV_BODY_TIMEOUT) or 30.0)
        self._body_timer: TimerHandle | None = None

    def connection_made(self, transport: Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        cycle = self.cycle
        if cycle is not None and cycle.more_body and self._body_timer is None and not cycle.response_complete:
            self._body_timer = self.loop.call_later(self.body_timeout, self._body_timed_out, cycle)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._cancel_body_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_body_timer()
        super().connection_lost(exc)

    def _cancel_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_timed_out(self, cycle: RequestResponseCycle) -> None:
        self._body_timer = None
        if cycle is not self.cycle or not cycle.more_body or self.transport.is_closing():
            return
        if not cycle.response_started:
            body = orjson.dumps({"error": {
                "message": f"The request body did not arrive within {self.body_timeout:g} s.",
                "type": "invalid_request_error", "param": None, "code": "request_timeout"}})
            self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                                 b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body) + body)
            cycle.response_started = cycle.response_complete = True  # the app's own answer is dropped
        self.transport.close()  # the handler waiting for the body sees a disconnect
