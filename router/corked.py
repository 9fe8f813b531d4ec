"""The connection's transport as an HTTP server sees it, corked: what the server writes in one turn of
the event loop leaves in one write. ``HeadGuard`` (router/http.py) hands it to uvicorn's protocol."""

from __future__ import annotations

import asyncio
from typing import Any


class CorkedTransport:
    """The connection's transport as the server's protocol sees it: what the server writes in one turn
    of the event loop leaves in one write, at the end of that turn. uvicorn writes a response's head
    and its body apart, two system calls for a non-streaming answer (and for a loopback peer, two passes
    through its TCP stack in this process); corked, one. Writes past ``FLUSH_AT`` bytes, ``close``,
    ``write_eof`` and ``abort`` act at once, in order. Everything else is the transport's own."""

    FLUSH_AT = 65536
    __slots__ = ("transport", "loop", "pending", "size")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop):
        self.transport = transport
        self.loop = loop
        self.pending: list[bytes] | None = None
        self.size = 0

    def write(self, data: bytes) -> None:
        if type(data) is not bytes:  # a writer may reuse its buffer once write returns, as the transport copies
            data = bytes(data)
        if self.pending is None:
            self.pending, self.size = [data], len(data)
            self.loop.call_soon(self.flush)
        else:
            self.pending.append(data)
            self.size += len(data)
        if self.size >= self.FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        pending, self.pending = self.pending, None
        if pending and not self.transport.is_closing():
            self.transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def writelines(self, data: Any) -> None:
        for d in data:
            self.write(d)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def write_eof(self) -> None:
        self.flush()
        self.transport.write_eof()

    def abort(self) -> None:
        self.pending = None
        self.transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)
