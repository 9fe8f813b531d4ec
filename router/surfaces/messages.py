"""Anthropic's Messages API (``POST /v1/messages``, ``/v1/messages/count_tokens``), over the
gateway's chat requests.

In: ``system`` (a string or text blocks), content blocks (text, image, document, tool_use,
tool_result; thinking blocks are dropped, ``cache_control`` marks ignored), ``tools`` and
``tool_choice``, ``max_tokens``, ``stop_sequences``, ``temperature``, ``top_p``,
``metadata.user_id``. A user turn's tool results become tool messages ahead of the rest of its
content, as chat completions require. Out: a ``message`` with text and tool_use blocks, the stop
reason, and usage split the Anthropic way (``input_tokens`` excludes cache reads and writes, which
are ``cache_read_input_tokens`` and ``cache_creation_input_tokens``). A stream is Anthropic's event
sequence (``message_start``, ``ping``, ``content_block_start``/``delta``/``stop`` with text and
``input_json_delta``, ``message_delta`` with the usage, ``message_stop``); errors are Anthropic's
``{"type": "error", "error": {"type", "message"}}`` with its status codes.

``top_k`` and ``thinking`` are accepted and not forwarded (chat completions has no such fields);
``message_start`` reports 0 input tokens and ``message_delta`` the real count.
"""

from __future__ import annotations

import uuid
from typing import Any, AsyncGenerator, AsyncIterator, TYPE_CHECKING

import orjson
from starlette.responses import Response

from router.errors import APIError, invalid_request
from router.protocol import parse_body, validate_chat
from router.wire import normalize_chat
from router.surfaces.base import NATIVE, Encoder, Surface
from router.surfaces.messages_stream import MessagesEvents
from router.surfaces.messages_translate import (
    FINISH_REASONS,
    NATIVE_FIELDS,
    STOP_REASONS,
    CountTokensRequest,
    MessagesRequest,
    anthropic_usage,
    msg_id,
    openai_usage,
    to_chat_messages,
    to_chat_tools,
    tool_input,
)

if TYPE_CHECKING:
    from router.registry import Deployment

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


class Messages(Surface):
    endpoint = "messages"
    NATIVE_HEADERS = ("anthropic-beta",)  # the client's beta features, for an Anthropic deployment

    def chat(self, *, max_messages: int, max_tokens_limit: int) -> dict[str, Any]:
        req = parse_body(MessagesRequest, self.body)
        chat: dict[str, Any] = {
            "model": req.model,
            "messages": to_chat_messages(req),
            "max_tokens": req.max_tokens,
            **to_chat_tools(req),
        }
        if req.stop_sequences:
            if len(req.stop_sequences) > 4:
                raise invalid_request(
                    "This gateway accepts at most 4 'stop_sequences'.", param="stop_sequences", code="invalid_value"
                )
            chat["stop"] = req.stop_sequences
        for name in ("temperature", "top_p", "fallbacks", "timeout", "stream"):
            if getattr(req, name) is not None:
                chat[name] = getattr(req, name)
        if req.metadata is not None and req.metadata.user_id:
            chat["user"] = req.metadata.user_id
        validate_chat(chat, max_messages=max_messages, max_tokens_limit=max_tokens_limit)
        return chat

    def answer(self, out: dict[str, Any]) -> dict[str, Any]:
        native = out.get(NATIVE)
        if native is not None:  # the Anthropic deployment's own answer, as it came (but the model's name)
            return {**native, "model": out["model"]}
        choice = out["choices"][0]
        msg = choice["message"]
        content: list[dict[str, Any]] = []
        if msg.get("content"):
            content.append({"type": "text", "text": msg["content"]})
        for call in msg.get("tool_calls") or ():
            fn = call.get("function") or {}
            content.append(
                {
                    "type": "tool_use",
                    "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}",
                    "name": fn.get("name", ""),
                    "input": tool_input(fn.get("arguments")),
                }
            )
        return {
            "id": msg_id(out["id"]),
            "type": "message",
            "role": "assistant",
            "model": out["model"],
            "content": content,
            "stop_reason": STOP_REASONS.get(choice["finish_reason"], "end_turn"),
            "stop_sequence": None,
            "usage": anthropic_usage(out["usage"]),
        }

    def encoder(self, stream_id: str, created: int, model: str, client_usage: bool) -> Encoder:
        return MessagesEvents(msg_id(stream_id), model)

    @staticmethod
    def error(exc: APIError) -> Response:
        return anthropic_error(exc)

    # -- Anthropic deployments: the request as it came --------------------------------------------
    def native_call(self, dep: Deployment) -> tuple[Any, dict[str, Any]] | None:
        client = (getattr(dep.backend, "native", None) or {}).get("messages")
        if client is None:
            return None
        body = {k: v for k, v in self.body.items() if k in NATIVE_FIELDS}
        body["model"] = dep.upstream_model
        return client, body

    def from_native(self, answer: dict[str, Any], model: str) -> tuple[dict[str, Any], dict[str, Any]]:
        if not isinstance(answer.get("content"), list) or not isinstance(answer.get("usage"), dict):
            raise ValueError("an Anthropic message without content or usage")
        text = "".join(b.get("text", "") for b in answer["content"] if isinstance(b, dict) and b.get("type") == "text")
        calls = [
            {
                "id": b.get("id"),
                "type": "function",
                "function": {"name": b.get("name"), "arguments": orjson.dumps(b.get("input") or {}).decode()},
            }
            for b in answer["content"]
            if isinstance(b, dict) and b.get("type") == "tool_use"
        ]
        message: dict[str, Any] = {
            "role": "assistant",
            "content": text or None,
            **({"tool_calls": calls} if calls else {}),
        }
        raw = {
            "id": answer.get("id"),
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": FINISH_REASONS.get(str(answer.get("stop_reason")), "stop"),
                }
            ],
            "usage": openai_usage(answer["usage"]),
        }
        out = normalize_chat(raw, model)
        out[NATIVE] = answer
        return raw, out

    async def native_chunks(
        self, events: AsyncIterator[tuple[dict[str, Any], bytes]], model: str
    ) -> AsyncGenerator[dict[str, Any], None]:
        usage: dict[str, Any] = {}
        async for event, raw in events:
            kind = event["type"]
            chunk: dict[str, Any] = {"choices": [], NATIVE: raw}
            delta: dict[str, Any] | None = None
            finish = None
            if kind == "message_start":
                usage = dict((event.get("message") or {}).get("usage") or {})
                chunk["usage"] = openai_usage(usage)
            elif kind == "content_block_start":
                block = event.get("content_block") or {}
                if block.get("type") == "tool_use":
                    delta = {
                        "tool_calls": [
                            {
                                "index": event.get("index", 0),
                                "id": block.get("id"),
                                "type": "function",
                                "function": {"name": block.get("name"), "arguments": ""},
                            }
                        ]
                    }
            elif kind == "content_block_delta":
                d = event.get("delta") or {}
                if d.get("type") == "text_delta":
                    delta = {"content": d.get("text", "")}
                elif d.get("type") == "input_json_delta":
                    delta = {
                        "tool_calls": [
                            {"index": event.get("index", 0), "function": {"arguments": d.get("partial_json", "")}}
                        ]
                    }
            elif kind == "message_delta":
                usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
                chunk["usage"] = openai_usage(usage)
                finish = FINISH_REASONS.get(str((event.get("delta") or {}).get("stop_reason")), "stop")
                delta = {}
            if delta is not None:
                chunk["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish}]
            yield chunk


def anthropic_error(exc: APIError) -> Response:
    kind = ERROR_TYPES.get(exc.status, "api_error" if exc.status >= 500 else "invalid_request_error")
    if exc.status == 503:
        kind = "overloaded_error"
    body = {"type": "error", "error": {"type": kind, "message": exc.message}}
    return Response(orjson.dumps(body), status_code=exc.status, media_type="application/json", headers=exc.headers)


def count_tokens(body: Any, *, max_messages: int, max_tokens_limit: int) -> tuple[str, dict[str, Any]]:
    """The model and the chat request whose prompt ``/v1/messages/count_tokens`` counts."""
    req = parse_body(CountTokensRequest, body)
    chat = {"model": req.model, "messages": to_chat_messages(req), "max_tokens": 1, **to_chat_tools(req)}
    validate_chat(chat, max_messages=max_messages, max_tokens_limit=max_tokens_limit)
    return req.model, chat
