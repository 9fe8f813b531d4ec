"""A controllable mock OpenAI-compatible upstream, run as its own process by the tests.

The requested model name picks a behaviour (see BEHAVIOURS). It keeps its own counts, served at
GET /_stats, so tests can reconcile what the gateway says against what the upstream saw.

    python tests/mock_upstream.py PORT
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

BEHAVIOURS = {
    "mock-gpt": "normal answer with usage",
    "mock-nousage": "normal answer, no usage anywhere",
    "mock-tools": "answers with a tool call",
    "mock-500": "HTTP 500",
    "mock-503": "HTTP 503",
    "mock-429": "HTTP 429 with retry-after: 7",
    "mock-400": "HTTP 400 naming the bad parameter",
    "mock-401": "HTTP 401 that echoes the provider key",
    "mock-badjson": "200 with a body that is not JSON",
    "mock-timeout": "no answer for 30 s",
    "mock-cut": "stream: 3 chunks then the connection drops",
    "mock-nodone": "stream: ends without [DONE]",
    "mock-slow": "stream: 200 chunks, one every 50 ms",
    "mock-huge": "an answer of about 3 MB",
    "mock-flaky": 'HTTP 503 while POST /_flaky {"fail": true} is in force, else normal',
    "mock-slowbody": "200 with JSON headers, then one body byte a second",
}
FLAKY = {"fail": False}

STATS: dict[str, Any] = {
    "requests": Counter(),
    "fields": Counter(),
    "streams_started": 0,
    "streams_completed": 0,
    "streams_aborted": 0,
    "last_body": None,
    "last_raw": None,  # the last chat body as the bytes arrived (text)
    "last_headers": None,
}


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def _words(n: int) -> list[str]:
    return [("hello" if i == 0 else " world") for i in range(n)]


async def chat(request: web.Request) -> web.StreamResponse:
    raw = await request.read()
    body = orjson.loads(raw)
    STATS["last_raw"] = raw.decode()
    model = body.get("model", "")
    STATS["requests"][model] += 1
    STATS["fields"].update(list(body) if isinstance(body, dict) else [])
    STATS["last_body"] = body
    STATS["last_headers"] = {str(k).lower(): v for k, v in request.headers.items()}
    if model in ("mock-500", "mock-503"):
        return web.json_response(
            {"error": {"message": "upstream is sad", "type": "server_error"}}, status=int(model[-3:])
        )
    if model == "mock-429":
        return web.json_response(
            {"error": {"message": "slow down", "type": "rate_limit"}}, status=429, headers={"retry-after": "7"}
        )
    if model == "mock-400":
        return web.json_response(
            {"error": {"message": "Unsupported parameter: 'frobnicate'", "param": "frobnicate"}}, status=400
        )
    if model == "mock-401":
        key = request.headers.get("authorization", "")
        return web.json_response({"error": {"message": f"Incorrect API key provided: {key}"}}, status=401)
    if model == "mock-badjson":
        return web.Response(text="<html>oops</html>", content_type="application/json")
    if model == "mock-flaky" and FLAKY["fail"]:
        return web.json_response({"error": {"message": "flaky is down"}}, status=503)
    if model == "mock-timeout":
        await asyncio.sleep(30)
    if model == "mock-slowbody":
        resp = web.StreamResponse(headers={"content-type": "application/json"})
        await resp.prepare(request)
        try:
            for ch in b'{"choices": []}':
                await resp.write(bytes([ch]))
                await asyncio.sleep(1.0)
        except (ConnectionResetError, asyncio.CancelledError, RuntimeError):
            pass
        return resp
    n = min(int(body.get("max_tokens") or body.get("max_completion_tokens") or 5), 1000)
    if body.get("stream"):
        return await _stream(request, body, model, n)
    content = "".join(_words(n))
    if model in ("mock-judge-yes", "mock-judge-no"):  # a cascade's judge: a one-word verdict
        content = "YES" if model.endswith("yes") else "NO"
    if model == "mock-huge":
        content = "x" * 3_000_000
    msg: dict[str, Any] = {"role": "assistant", "content": content}
    finish = "stop"
    if model == "mock-tools" or (body.get("tools") and body.get("tool_choice") == "required"):
        msg = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": body["tools"][0]["function"]["name"], "arguments": '{"city": "Paris"}'},
                }
            ],
        }
        finish = "tool_calls"
    out: dict[str, Any] = {
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": msg, "finish_reason": finish}],
    }
    if model != "mock-nousage":
        out["usage"] = _usage(11, n)
    return web.Response(body=orjson.dumps(out), content_type="application/json")


async def _stream(request: web.Request, body: dict[str, Any], model: str, n: int) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await resp.prepare(request)
    STATS["streams_started"] += 1
    base = {"id": "chatcmpl-mockstream", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}

    async def send(obj: Any) -> None:
        await resp.write(b"data: " + (obj if isinstance(obj, bytes) else orjson.dumps(obj)) + b"\n\n")

    try:
        await send(
            {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
        )
        count = int(body.get("max_tokens") or 200) if model == "mock-slow" else n
        for i, word in enumerate(_words(count)):
            if model == "mock-cut" and i == 3:
                request.transport.close()  # drop the connection mid-stream
                STATS["streams_aborted"] += 1
                return resp
            if model == "mock-slow":
                await asyncio.sleep(0.05)
            await send({**base, "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]})
        await send({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if model != "mock-nousage" and (body.get("stream_options") or {}).get("include_usage"):
            await send({**base, "choices": [], "usage": _usage(11, count)})
        if model != "mock-nodone":
            await send(b"[DONE]")
        await resp.write_eof()
        STATS["streams_completed"] += 1
    except (ConnectionResetError, asyncio.CancelledError, RuntimeError):
        STATS["streams_aborted"] += 1
        raise
    return resp


async def embeddings(request: web.Request) -> web.Response:
    body = await request.json(loads=orjson.loads)
    STATS["requests"][body.get("model", "")] += 1
    STATS["last_body"] = body
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    dims = body.get("dimensions") or 8
    data = [{"object": "embedding", "index": i, "embedding": [0.1] * dims} for i in range(len(inputs))]
    return web.json_response(
        {
            "object": "list",
            "data": data,
            "model": body.get("model"),
            "usage": {"prompt_tokens": 3 * len(inputs), "total_tokens": 3 * len(inputs)},
        }
    )


async def stats(request: web.Request) -> web.Response:
    return web.Response(
        body=orjson.dumps({**STATS, "requests": dict(STATS["requests"]), "fields": dict(STATS["fields"])}),
        content_type="application/json",
    )


async def reset(request: web.Request) -> web.Response:
    STATS.update(
        requests=Counter(),
        fields=Counter(),
        streams_started=0,
        streams_completed=0,
        streams_aborted=0,
        last_body=None,
        last_raw=None,
        last_headers=None,
    )
    return web.json_response({"ok": True})


async def flaky(request: web.Request) -> web.Response:
    FLAKY["fail"] = bool((await request.json()).get("fail"))
    return web.json_response(FLAKY)


def make_app() -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_get("/_stats", stats)
    app.router.add_post("/_reset", reset)
    app.router.add_post("/_flaky", flaky)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import mock_native  # the Anthropic and Gemini shapes, for the litellm backend's native providers

    mock_native.add_routes(app, STATS)
    return app


if __name__ == "__main__":
    web.run_app(make_app(), host="127.0.0.1", port=int(sys.argv[1]), print=None, handler_cancellation=True)
