"""uvicorn's httptools protocol, closing connections that never send a request.

uvicorn starts its keep-alive timer only after a response, so a client that connects and sends
nothing would hold its socket forever. Here the same timer also runs from the moment a
connection opens; the first bytes received cancel it, as they do between requests.
"""

from __future__ import annotations

from asyncio import Transport

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class SwitchyardHttp(HttpToolsProtocol):
    def connection_made(self, transport: Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)
