"""Mock Anthropic Messages and Gemini generateContent upstreams, mounted on the mock upstream
process (tests/mock_upstream.py), for the litellm backend's native providers.

- ``POST /v1/messages`` (Anthropic; litellm's ``anthropic/`` with ``api_base`` = the mock's root)
- ``POST /v1/responses`` (OpenAI's Responses API: a text answer, or a function call when the request
  offers function tools and its last input item is not a function call's output)
- ``POST /gemini/models/{model}:generateContent`` and ``:streamGenerateContent?alt=sse``
  (litellm's ``gemini/`` with ``api_base`` = ``<mock>/gemini``)

The model name picks a behaviour: ``*-529`` answers Anthropic's 529 overloaded (retry-after: 3),
``*-500`` a 500; otherwise a text answer, or a tool call when the request offers tools and its
last message is not a tool result. Each request counts under its model in the mock's stats.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

TOOL_ARGS = {"city": "Paris"}
WORDS = ["hello", " world", " world"]


def _note(stats: dict[str, Any], model: str, body: dict[str, Any], request: web.Request) -> None:
    stats["requests"][model] += 1
    stats["last_body"] = body
    stats["last_headers"] = {str(k).lower(): v for k, v in request.headers.items()}


async def _sse(request: web.Request, events: list[tuple[str | None, dict[str, Any]]]) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await resp.prepare(request)
    for name, data in events:
        head = f"event: {name}\n".encode() if name else b""
        await resp.write(head + b"data: " + orjson.dumps(data) + b"\n\n")
    await resp.write_eof()
    return resp


# -- Anthropic ---------------------------------------------------------------------------------------
def _anthropic_wants_tool(body: dict[str, Any]) -> str | None:
    tools = body.get("tools") or []
    last = (body.get("messages") or [{}])[-1]
    content = last.get("content") if isinstance(last, dict) else None
    answered = isinstance(content, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content
    )
    return tools[0]["name"] if tools and not answered else None


def anthropic_handler(stats: dict[str, Any]) -> Any:
    async def messages(request: web.Request) -> web.StreamResponse:
        body = await request.json(loads=orjson.loads)
        model = str(body.get("model", ""))
        _note(stats, model, body, request)
        if model.endswith("-529"):
            return web.json_response(
                {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
                status=529,
                headers={"retry-after": "3"},
            )
        if model.endswith("-500"):
            return web.json_response(
                {"type": "error", "error": {"type": "api_error", "message": "upstream is sad"}}, status=500
            )
        tool = _anthropic_wants_tool(body)
        usage = {"input_tokens": 11, "output_tokens": 5}
        msg = {"id": "msg_mock", "type": "message", "role": "assistant", "model": model, "stop_sequence": None}
        if not body.get("stream"):
            content = (
                [{"type": "tool_use", "id": "toolu_1", "name": tool, "input": TOOL_ARGS}]
                if tool
                else [{"type": "text", "text": "".join(WORDS)}]
            )
            return web.json_response(
                {**msg, "content": content, "stop_reason": "tool_use" if tool else "end_turn", "usage": usage}
            )
        events: list[tuple[str | None, dict[str, Any]]] = [
            (
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        **msg,
                        "content": [],
                        "stop_reason": None,
                        "usage": {"input_tokens": 11, "output_tokens": 1},
                    },
                },
            )
        ]
        if tool:
            events.append(
                (
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "tool_use", "id": "toolu_1", "name": tool, "input": {}},
                    },
                )
            )
            raw = orjson.dumps(TOOL_ARGS).decode()
            for piece in (raw[:5], raw[5:]):
                events.append(
                    (
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": 0,
                            "delta": {"type": "input_json_delta", "partial_json": piece},
                        },
                    )
                )
        else:
            events.append(
                (
                    "content_block_start",
                    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                )
            )
            for w in WORDS:
                events.append(
                    (
                        "content_block_delta",
                        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}},
                    )
                )
        events += [
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "tool_use" if tool else "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": 5},
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
        return await _sse(request, events)

    return messages


# -- OpenAI Responses ------------------------------------------------------------------------------
def _responses_wants_tool(body: dict[str, Any]) -> str | None:
    tools = [t for t in body.get("tools") or [] if t.get("type") == "function"]
    items = body.get("input")
    last = items[-1] if isinstance(items, list) and items else {}
    return tools[0]["name"] if tools and last.get("type") != "function_call_output" else None


def responses_handler(stats: dict[str, Any]) -> Any:
    async def responses(request: web.Request) -> web.StreamResponse:
        body = await request.json(loads=orjson.loads)
        model = str(body.get("model", ""))
        _note(stats, model, body, request)
        tool = _responses_wants_tool(body)
        usage = {
            "input_tokens": 11,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 5,
            "output_tokens_details": {"reasoning_tokens": 2},
            "total_tokens": 16,
        }
        text = "".join(WORDS)
        item = (
            {
                "id": "fc_mock",
                "type": "function_call",
                "status": "completed",
                "call_id": "call_mock",
                "name": tool,
                "arguments": orjson.dumps(TOOL_ARGS).decode(),
            }
            if tool
            else {
                "id": "msg_mock",
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
            }
        )
        resp = {
            "id": "resp_mock" + str(stats["requests"][model]),
            "object": "response",
            "created_at": 1700000000,
            "status": "completed",
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "model": model,
            "output": [item],
            "parallel_tool_calls": True,
            "temperature": 1.0,
            "tool_choice": "auto",
            "tools": body.get("tools") or [],
            "top_p": 1.0,
            "usage": usage,
            "metadata": {},
        }
        if not body.get("stream"):
            return web.json_response(resp)
        seq = iter(range(100))
        ev: list[tuple[str | None, dict[str, Any]]] = []

        def add(kind: str, **data: Any) -> None:
            ev.append((kind, {"type": kind, "sequence_number": next(seq), **data}))

        start = {**resp, "status": "in_progress", "output": [], "usage": None}
        add("response.created", response=start)
        add("response.in_progress", response=start)
        if tool:
            add("response.output_item.added", output_index=0, item={**item, "status": "in_progress", "arguments": ""})
            for piece in (item["arguments"][:5], item["arguments"][5:]):
                add("response.function_call_arguments.delta", item_id="fc_mock", output_index=0, delta=piece)
            add(
                "response.function_call_arguments.done",
                item_id="fc_mock",
                output_index=0,
                name=tool,
                arguments=item["arguments"],
            )
        else:
            add("response.output_item.added", output_index=0, item={**item, "status": "in_progress", "content": []})
            add(
                "response.content_part.added",
                item_id="msg_mock",
                output_index=0,
                content_index=0,
                part={"type": "output_text", "text": "", "annotations": [], "logprobs": []},
            )
            for w in WORDS:
                add(
                    "response.output_text.delta",
                    item_id="msg_mock",
                    output_index=0,
                    content_index=0,
                    delta=w,
                    logprobs=[],
                )
            add(
                "response.output_text.done", item_id="msg_mock", output_index=0, content_index=0, text=text, logprobs=[]
            )
            add(
                "response.content_part.done",
                item_id="msg_mock",
                output_index=0,
                content_index=0,
                part=item["content"][0],
            )
        add("response.output_item.done", output_index=0, item=item)
        add("response.completed", response=resp)
        return await _sse(request, ev)

    return responses


# -- Gemini ------------------------------------------------------------------------------------------
def _gemini_wants_tool(body: dict[str, Any]) -> str | None:
    decls = [
        f
        for t in body.get("tools") or []
        for f in t.get("functionDeclarations") or t.get("function_declarations") or []
    ]
    last = (body.get("contents") or [{}])[-1]
    answered = any("functionResponse" in p or "function_response" in p for p in last.get("parts") or [])
    return decls[0]["name"] if decls and not answered else None


def gemini_handler(stats: dict[str, Any]) -> Any:
    async def generate(request: web.Request) -> web.StreamResponse:
        body = await request.json(loads=orjson.loads)
        model, _, method = request.match_info["tail"].partition(":")
        _note(stats, model, body, request)
        if model.endswith("-500"):
            return web.json_response(
                {"error": {"code": 500, "message": "upstream is sad", "status": "INTERNAL"}}, status=500
            )
        tool = _gemini_wants_tool(body)
        usage = {"promptTokenCount": 11, "candidatesTokenCount": 5, "totalTokenCount": 16}
        parts = [{"functionCall": {"name": tool, "args": TOOL_ARGS}}] if tool else [{"text": "".join(WORDS)}]
        if method == "generateContent":
            return web.json_response(
                {
                    "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
                    "usageMetadata": usage,
                    "modelVersion": model,
                }
            )
        pieces = [parts] if tool else [[{"text": w}] for w in WORDS]
        events: list[tuple[str | None, dict[str, Any]]] = []
        for i, p in enumerate(pieces):
            last = i == len(pieces) - 1
            cand: dict[str, Any] = {"content": {"role": "model", "parts": p}, "index": 0}
            if last:
                cand["finishReason"] = "STOP"
            events.append(
                (None, {"candidates": [cand], **({"usageMetadata": usage} if last else {}), "modelVersion": model})
            )
        return await _sse(request, events)

    return generate


def add_routes(app: web.Application, stats: dict[str, Any]) -> None:
    app.router.add_post("/v1/messages", anthropic_handler(stats))
    app.router.add_post("/v1/responses", responses_handler(stats))
    app.router.add_post("/gemini/models/{tail}", gemini_handler(stats))
