"""uvicorn's httptools protocol, with the two client timeouts a gateway needs that uvicorn lacks.

- A connection that opens and sends nothing is closed after the keep-alive timeout: uvicorn
  starts that timer only after a response; here it also runs from the moment a connection opens,
  and the first bytes received cancel it, as they do between requests.
- A request whose body does not arrive within ``body_timeout`` gets a 408 (OpenAI-style error)
  and its connection is closed.
- A request head that takes more than one read must arrive within ``server.header_timeout``
  (408), and at most ``server.max_incomplete_requests`` such heads are read at once per process
  (503 beyond): slow-header clients cannot hold the gateway's connections.
- A request line and headers larger than ``server.max_header_bytes`` or with more than
  ``server.max_headers`` headers get a 431 before the parser's cost (which grows faster than the
  head's size) can, and malformed HTTP gets a 400, both in the JSON error shape. The timer is armed only when a body is still incomplete after a
  read, so the usual request, whose body arrives with its headers, costs no timer at all.
"""

from __future__ import annotations

import os
from asyncio import TimerHandle, Transport
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle


ENV_BODY_TIMEOUT = "SWITCHYARD_BODY_TIMEOUT"  # set by `switchyard serve`; workers inherit it
ENV_MAX_HEADER_BYTES = "SWITCHYARD_MAX_HEADER_BYTES"
ENV_MAX_HEADERS = "SWITCHYARD_MAX_HEADERS"
ENV_HEADER_TIMEOUT = "SWITCHYARD_HEADER_TIMEOUT"
ENV_MAX_INCOMPLETE = "SWITCHYARD_MAX_INCOMPLETE"


class _HeadRefused(Exception):
    """Raised in a parser callback to stop parsing; ``send_400_response`` then answers 431."""


def error_response(status: int, reason: str, message: str, code: str, type_: str = "invalid_request_error") -> bytes:
    """A complete HTTP/1.1 response with OpenAI's error body, that closes the connection."""
    body = orjson.dumps({"error": {"message": message, "type": type_, "param": None, "code": code}})
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
        % (status, reason.encode(), len(body))
        + body
    )


class SwitchyardHttp(HttpToolsProtocol):
    incomplete = 0  # connections of this process whose request head is partly read (unauthenticated work)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = float(os.environ.get(ENV_HEADER_TIMEOUT) or 10.0)
        self.max_incomplete = int(os.environ.get(ENV_MAX_INCOMPLETE) or 1024)
        self._head_timer: TimerHandle | None = None
        self.body_timeout = float(os.environ.get(ENV_BODY_TIMEOUT) or 30.0)
        self.max_head = int(os.environ.get(ENV_MAX_HEADER_BYTES) or 32768)
        self.max_headers = int(os.environ.get(ENV_MAX_HEADERS) or 100)
        self._body_timer: TimerHandle | None = None
        self._in_head = True  # reading a request line and headers
        self._head_bytes = 0
        self._header_count = 0
        self._refusal: str | None = None
        self._events = 0  # heads and messages completed: a read that completes either is not counted

    def connection_made(self, transport: Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    def data_received(self, data: bytes) -> None:
        events = self._events
        super().data_received(data)
        if self._in_head and self._events == events and not self.transport.is_closing():
            # The parser's cost for one request's head grows faster than its size: refused once it
            # passes the limit (checked after each read, so at most one read beyond it is parsed).
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head:
                self._refuse(f"The request line and headers exceed this gateway's limit of {self.max_head} bytes.")
                return
            if self._head_timer is None:  # a head that takes more than one read: bounded in time and number
                if SwitchyardHttp.incomplete >= self.max_incomplete:
                    self.transport.write(
                        error_response(
                            503,
                            "Service Unavailable",
                            "Too many requests are arriving slowly at once; try again.",
                            "server_busy",
                            "api_error",
                        )
                    )
                    self.transport.close()
                    return
                SwitchyardHttp.incomplete += 1
                self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)
        cycle = self.cycle
        if cycle is not None and cycle.more_body and self._body_timer is None and not cycle.response_complete:
            self._body_timer = self.loop.call_later(self.body_timeout, self._body_timed_out, cycle)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._header_count = True, 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.max_headers:
            self._refusal = f"The request has more than {self.max_headers} headers."
            raise _HeadRefused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._cancel_head_timer()
        self._in_head, self._head_bytes = False, 0
        self._events += 1
        size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)  # a head that came in one read
        if size > self.max_head:
            self._refusal = f"The request line and headers exceed this gateway's limit of {self.max_head} bytes."
            raise _HeadRefused
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        """Malformed HTTP gets the API's JSON error shape, not plain text; a refused head, 431."""
        if self._refusal is not None:
            self._refuse(self._refusal)
            return
        self.transport.write(error_response(400, "Bad Request", "The request is not valid HTTP/1.1.", "invalid_http"))
        self.transport.close()

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
            SwitchyardHttp.incomplete -= 1

    def _head_timed_out(self) -> None:
        self._head_timer = None
        SwitchyardHttp.incomplete -= 1
        if not self.transport.is_closing():
            self.transport.write(
                error_response(
                    408,
                    "Request Timeout",
                    f"The request line and headers did not arrive within {self.header_timeout:g} s.",
                    "request_timeout",
                )
            )
            self.transport.close()

    def _refuse(self, message: str) -> None:
        self._cancel_head_timer()
        self._in_head = False
        self.transport.write(error_response(431, "Request Header Fields Too Large", message, "headers_too_large"))
        self.transport.close()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._cancel_body_timer()
        self._in_head, self._head_bytes = True, 0
        self._events += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_body_timer()
        self._cancel_head_timer()
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
            self.transport.write(
                error_response(
                    408,
                    "Request Timeout",
                    f"The request body did not arrive within {self.body_timeout:g} s.",
                    "request_timeout",
                )
            )
            cycle.response_started = cycle.response_complete = True  # the app's own answer is dropped
        self.transport.close()  # the handler waiting for the body sees a disconnect
