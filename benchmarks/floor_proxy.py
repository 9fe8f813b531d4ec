"""The Python floor: the least a gateway on Switchyard's own stack can cost per request.

    python benchmarks/floor_proxy.py PORT UPSTREAM_URL

uvicorn (httptools and uvloop, as `switchyard serve` runs it; no access log) serving a bare ASGI app that reads the
request body and forwards it unchanged over Switchyard's own HTTP/1.1 client (``router.backends.http1``)
to ``UPSTREAM_URL`` + the request's path, then returns the answer (streamed chunk by chunk when the
upstream streams). No authentication, no routing, no metering, no ledger, no budgets: what is
left is the cost of the server, the ASGI interface and the client, so Switchyard's figure minus
this one is what its own work costs. `benchmarks/sizes.py` measures it beside the gateways.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvicorn  # noqa: E402

from router.backends.http1 import Pool  # noqa: E402


def make_app(upstream: str) -> Any:
    pool = Pool(upstream, proxy=None)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        parts = []
        while True:
            msg = await receive()
            parts.append(msg.get("body", b""))
            if not msg.get("more_body"):
                break
        path = scope["path"].removeprefix("/v1")
        conn = await pool.request(
            "POST", path, b"".join(parts), timeout=30, headers={"content-type": "application/json"}
        )
        try:
            ctype = conn.headers.get("content-type", "application/json").encode()
            length = conn.content_length()
            if length is not None:
                body = await conn.read(64 * 1024 * 1024)
                await send(
                    {
                        "type": "http.response.start",
                        "status": conn.status,
                        "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode())],
                    }
                )
                await send({"type": "http.response.body", "body": body})
            else:
                await send(
                    {"type": "http.response.start", "status": conn.status, "headers": [(b"content-type", ctype)]}
                )
                async for chunk in conn.iter_body():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
        finally:
            conn.release()

    return app


def main() -> None:
    port, upstream = int(sys.argv[1]), sys.argv[2]
    uvicorn.run(
        make_app(upstream),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
