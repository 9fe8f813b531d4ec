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
from dataclasses import dataclass, field
from typing import Annotated, Any, AsyncGenerator, AsyncIterator, Literal, TYPE_CHECKING

import orjson
from pydantic import Field, StrictBool, StrictStr
from starlette.responses import Response

from router.errors import APIError, invalid_request
from router.protocol import MAX_FALLBACKS, Num, PosInt, _Open, normalize_chat, parse_body, validate_chat
from router.surfaces.base import NATIVE, BlockEncoder, Encoder, Surface, sse

if TYPE_CHECKING:
    from router.registry import Deployment

Name = Annotated[StrictStr, Field(min_length=1, max_length=256)]
# what an Anthropic deployment gets of a Messages request (nothing that makes the provider fetch URLs
# or run servers on the operator's account: no mcp_servers, no container)
NATIVE_FIELDS = frozenset(
    {
        "messages",
        "system",
        "max_tokens",
        "metadata",
        "stop_sequences",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "thinking",
        "service_tier",
    }
)
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
}
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


class TextBlock(_Open):
    type: Literal["text"]
    text: StrictStr


class AnthropicMessage(_Open):
    role: Literal["user", "assistant"]
    content: StrictStr | Annotated[list[dict[str, Any]], Field(min_length=0)]


class AnthropicTool(_Open):
    type: Literal["custom"] | None = None
    name: StrictStr = Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")
    description: StrictStr | None = None
    input_schema: dict[str, Any]


class AnthropicToolChoice(_Open):
    type: Literal["auto", "any", "tool", "none"]
    name: StrictStr | None = None
    disable_parallel_tool_use: StrictBool | None = None


class AnthropicMetadata(_Open):
    user_id: Annotated[StrictStr, Field(max_length=256)] | None = None


class Thinking(_Open):
    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: PosInt | None = None


class MessagesRequest(_Open):
    model: Name
    max_tokens: PosInt
    messages: Annotated[list[AnthropicMessage], Field(min_length=1)]
    system: StrictStr | list[TextBlock] | None = None
    stop_sequences: list[StrictStr] | None = None
    stream: StrictBool | None = None
    temperature: Annotated[Num, Field(ge=0, le=1)] | None = None
    top_p: Annotated[Num, Field(ge=0, le=1)] | None = None
    top_k: PosInt | None = None
    tools: Annotated[list[AnthropicTool], Field(max_length=128)] | None = None
    tool_choice: AnthropicToolChoice | None = None
    metadata: AnthropicMetadata | None = None
    thinking: Thinking | None = None
    fallbacks: Annotated[list[Name], Field(min_length=1, max_length=MAX_FALLBACKS)] | None = None
    timeout: PosInt | Num | None = None


class CountTokensRequest(MessagesRequest):
    max_tokens: PosInt | None = None  # type: ignore[assignment]


def _image(block: dict[str, Any], where: str) -> dict[str, Any]:
    src = block.get("source")
    if isinstance(src, dict) and src.get("type") == "base64" and isinstance(src.get("data"), str):
        url = f"data:{src.get('media_type') or 'image/png'};base64,{src['data']}"
    elif isinstance(src, dict) and src.get("type") == "url" and isinstance(src.get("url"), str):
        url = src["url"]
    else:
        raise invalid_request(
            f"Invalid value for '{where}.source': an image needs a base64 or url source.",
            param=f"{where}.source",
            code="invalid_value",
        )
    return {"type": "image_url", "image_url": {"url": url}}


def _document(block: dict[str, Any], where: str) -> dict[str, Any]:
    src = block.get("source")
    if isinstance(src, dict) and src.get("type") == "text" and isinstance(src.get("data"), str):
        return {"type": "text", "text": src["data"]}
    if isinstance(src, dict) and src.get("type") == "base64" and isinstance(src.get("data"), str):
        media = src.get("media_type") or "application/pdf"
        return {
            "type": "file",
            "file": {
                "filename": str(block.get("title") or "document"),
                "file_data": f"data:{media};base64,{src['data']}",
            },
        }
    raise invalid_request(
        f"Invalid value for '{where}.source': a document needs a text or base64 source.",
        param=f"{where}.source",
        code="invalid_value",
    )


def _text_of(content: Any, where: str) -> tuple[str, list[dict[str, Any]]]:
    """A tool result's content: its text, and its images (sent after the tool messages)."""
    if isinstance(content, str):
        return content, []
    if content is None:
        return "", []
    if not isinstance(content, list):
        raise invalid_request(
            f"Invalid value for '{where}': a string or a list of blocks.", param=where, code="invalid_value"
        )
    texts, images = [], []
    for j, b in enumerate(content):
        kind = b.get("type") if isinstance(b, dict) else None
        if kind == "text" and isinstance(b.get("text"), str):
            texts.append(b["text"])
        elif kind == "image":
            images.append(_image(b, f"{where}[{j}]"))
        else:
            raise invalid_request(
                f"Invalid value for '{where}[{j}]': a tool result holds text and image blocks.",
                param=f"{where}[{j}]",
                code="invalid_value",
            )
    return "\n".join(texts), images


@dataclass
class _Turn:
    """One Messages turn's content blocks, sorted into what chat completions carries them as."""

    role: str
    parts: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    late_images: list[dict[str, Any]] = field(default_factory=list)

    def add(self, block: Any, at: str) -> None:
        kind, role = block.get("type") if isinstance(block, dict) else None, self.role
        if kind == "text":
            if not isinstance(block.get("text"), str):
                raise invalid_request(
                    f"Invalid value for '{at}.text': a string.", param=f"{at}.text", code="invalid_value"
                )
            self.parts.append({"type": "text", "text": block["text"]})
        elif kind == "image" and role == "user":
            self.parts.append(_image(block, at))
        elif kind == "document" and role == "user":
            self.parts.append(_document(block, at))
        elif kind == "tool_use" and role == "assistant":
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                raise invalid_request(
                    f"Invalid value for '{at}': a tool_use block needs 'id' and 'name'.", param=at, code="invalid_value"
                )
            self.calls.append(
                {
                    "id": block["id"],
                    "type": "function",
                    "function": {"name": block["name"], "arguments": orjson.dumps(block.get("input") or {}).decode()},
                }
            )
        elif kind == "tool_result" and role == "user":
            self.result(block, at)
        elif kind not in ("thinking", "redacted_thinking") or role != "assistant":
            # (a model's own reasoning is dropped: chat completions has no way to send it back)
            raise invalid_request(
                f"Invalid value for '{at}.type': '{str(kind)[:40]}' is not a content block a "
                f"{role} message can hold here.",
                param=f"{at}.type",
                code="invalid_value",
            )

    def result(self, block: dict[str, Any], at: str) -> None:
        if not isinstance(block.get("tool_use_id"), str):
            raise invalid_request(
                f"Missing required parameter: '{at}.tool_use_id'.",
                param=f"{at}.tool_use_id",
                code="missing_required_parameter",
            )
        text, images = _text_of(block.get("content"), f"{at}.content")
        if block.get("is_error"):
            text = "Error: " + text
        self.results.append({"role": "tool", "tool_call_id": block["tool_use_id"], "content": text})
        self.late_images.extend(images)

    def messages(self) -> list[dict[str, Any]]:
        if self.role == "assistant":
            text = "".join(p["text"] for p in self.parts)
            turn: dict[str, Any] = {"role": "assistant", "content": text or None}
            if self.calls:
                turn["tool_calls"] = self.calls
            return [turn]
        parts = self.late_images + self.parts
        # tool results answer the assistant turn just before: they come first
        return self.results + ([{"role": "user", "content": parts}] if parts else [])


def to_chat_messages(req: MessagesRequest) -> list[dict[str, Any]]:
    """The conversation as chat-completions messages."""
    out: list[dict[str, Any]] = []
    if isinstance(req.system, str) and req.system:
        out.append({"role": "system", "content": req.system})
    elif isinstance(req.system, list) and req.system:
        out.append({"role": "system", "content": "\n".join(b.text for b in req.system)})
    for i, msg in enumerate(req.messages):
        if isinstance(msg.content, str):
            out.append({"role": msg.role, "content": msg.content})
            continue
        turn = _Turn(msg.role)
        for j, block in enumerate(msg.content):
            turn.add(block, f"messages[{i}].content[{j}]")
        out += turn.messages()
    return out


def to_chat_tools(req: MessagesRequest) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if req.tools:
        out["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    **({"description": t.description} if t.description else {}),
                    "parameters": t.input_schema,
                },
            }
            for t in req.tools
        ]
    choice = req.tool_choice
    if choice is not None and req.tools:
        if choice.type == "tool":
            if not choice.name:
                raise invalid_request(
                    "Missing required parameter: 'tool_choice.name'.",
                    param="tool_choice.name",
                    code="missing_required_parameter",
                )
            out["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
        else:
            out["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[choice.type]
        if choice.disable_parallel_tool_use:
            out["parallel_tool_calls"] = False
    return out


def openai_usage(usage: dict[str, Any]) -> dict[str, Any]:
    """Anthropic usage the OpenAI way: the prompt includes what was read from and written to the cache."""
    read, written = usage.get("cache_read_input_tokens") or 0, usage.get("cache_creation_input_tokens") or 0
    prompt = (usage.get("input_tokens") or 0) + read + written
    out = usage.get("output_tokens") or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": out,
        "total_tokens": prompt + out,
        "prompt_tokens_details": {"cached_tokens": read, "cache_write_tokens": written},
    }


def anthropic_usage(usage: dict[str, Any]) -> dict[str, Any]:
    """OpenAI usage the Anthropic way: input excludes what was read from or written to the cache."""
    details = usage.get("prompt_tokens_details") or {}
    cached, written = details.get("cached_tokens", 0), details.get("cache_write_tokens", 0)
    return {
        "input_tokens": max(0, usage["prompt_tokens"] - cached - written),
        "output_tokens": usage["completion_tokens"],
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": cached,
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
                    "input": _arguments(fn.get("arguments")),
                }
            )
        return {
            "id": _msg_id(out["id"]),
            "type": "message",
            "role": "assistant",
            "model": out["model"],
            "content": content,
            "stop_reason": STOP_REASONS.get(choice["finish_reason"], "end_turn"),
            "stop_sequence": None,
            "usage": anthropic_usage(out["usage"]),
        }

    def encoder(self, stream_id: str, created: int, model: str, client_usage: bool) -> Encoder:
        return _Stream(_msg_id(stream_id), model)

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


def _msg_id(chat_id: str) -> str:
    return "msg_" + chat_id.removeprefix("chatcmpl-").removeprefix("req_")


def _arguments(raw: Any) -> Any:
    """A tool call's arguments as the object Anthropic's ``input`` is (the text when it is not JSON)."""
    if not isinstance(raw, str) or not raw:
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {"_raw": raw}
    return value if isinstance(value, dict) else {"value": value}


class _Stream(BlockEncoder):
    """Anthropic's stream events from OpenAI chunks (the first choice)."""

    def __init__(self, msg_id: str, model: str):
        super().__init__()
        self.msg_id, self.model = msg_id, model
        self.index = -1  # the open content block's index

    def begin(self) -> bytes:
        return sse(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": self.msg_id,
                    "type": "message",
                    "role": "assistant",
                    "model": self.model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 0, "output_tokens": 0},
                },
            },
        ) + sse("ping", {"type": "ping"})

    def _block(self, block: dict[str, Any]) -> bytes:
        self.index += 1
        return sse("content_block_start", {"type": "content_block_start", "index": self.index, "content_block": block})

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return sse("content_block_delta", {"type": "content_block_delta", "index": self.index, "delta": delta})

    def open_text(self) -> bytes:
        return self._block({"type": "text", "text": ""})

    def text(self, text: str) -> bytes:
        return self._delta({"type": "text_delta", "text": text})

    def open_tool(self, call_id: str | None, name: str) -> bytes:
        return self._block(
            {"type": "tool_use", "id": call_id or f"toolu_{uuid.uuid4().hex[:24]}", "name": name, "input": {}}
        )

    def arguments(self, fragment: str) -> bytes:
        return self._delta({"type": "input_json_delta", "partial_json": fragment})

    def close_block(self) -> bytes:
        return sse("content_block_stop", {"type": "content_block_stop", "index": self.index})

    def end(self, usage: dict[str, Any], money: dict[str, Any]) -> bytes:
        stop = STOP_REASONS.get(self.finish or "stop", "end_turn")
        return (
            self.close()
            + sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": anthropic_usage(usage),
                },
            )
            + sse("message_stop", {"type": "message_stop"})
        )

    def fail(self, message: str, code: str) -> bytes:
        kind = "overloaded_error" if "rate_limited" in code or "unavailable" in code else "api_error"
        return sse("error", {"type": "error", "error": {"type": kind, "message": message}})
