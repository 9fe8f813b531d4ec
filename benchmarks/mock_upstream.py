"""A lean mock OpenAI upstream for benchmarks: raw asyncio HTTP/1.1 keep-alive, no framework.

    python benchmarks/mock_upstream.py PORT

POST .../chat/completions answers ``max_tokens`` completion tokens (20 when absent; at most 5,000)
with usage; with "stream": true it sends a role chunk, one content chunk per token, a finish chunk,
a usage chunk (when asked) and [DONE]: all at once (a burst, as a fast provider or a busy
gateway's socket buffer delivers them), or, when the request's body holds ``[pace MS]`` (a prompt
that says so, whichever gateway forwarded it), MS milliseconds apart, as a model decodes them:
each event arrives alone.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None

TOKENS = 20
PACED = re.compile(rb"\[pace ([0-9.]+)\]")


def _usage(tokens: int) -> dict:
    return {"prompt_tokens": 30, "completion_tokens": tokens, "total_tokens": 30 + tokens}


def body_nonstream(model: str, tokens: int = TOKENS) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "tok " * tokens}, "finish_reason": "stop"}
            ],
            "usage": _usage(tokens),
        }
    ).encode()


def stream_events(model: str, usage: bool, tokens: int = TOKENS) -> bytes:
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
    out = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
    out += [
        {**base, "choices": [{"index": 0, "delta": {"content": "tok "}, "finish_reason": None}]} for _ in range(tokens)
    ]
    out.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if usage:
        out.append({**base, "choices": [], "usage": _usage(tokens)})
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in out) + b"data: [DONE]\n\n"


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            raw = await reader.readexactly(length) if length else b"{}"
            req = json.loads(raw or b"{}")
            model = req.get("model", "mock")
            tokens = min(5000, int(req.get("max_tokens") or req.get("max_completion_tokens") or TOKENS))
            if req.get("stream"):
                paced = PACED.search(raw)
                pace = float(paced.group(1)) / 1000 if paced else 0.0
                payload = stream_events(model, bool((req.get("stream_options") or {}).get("include_usage")), tokens)
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
                )
                # one HTTP chunk per SSE event, as a real server streams them
                for event in payload.split(b"\n\n")[:-1]:
                    event += b"\n\n"
                    writer.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
                    if pace:
                        await writer.drain()
                        await asyncio.sleep(pace)
                writer.write(b"0\r\n\r\n")
            else:
                payload = body_nonstream(model, tokens)
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                    + str(len(payload)).encode()
                    + b"\r\n\r\n"
                    + payload
                )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    if uvloop is not None:
        uvloop.install()
    asyncio.run(main(int(sys.argv[1])))
