"""Anthropic's Messages request (its schema) translated to the gateway's chat request (system,
content blocks, tool use and results, tools), and usage and stop reasons both ways."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import orjson
from pydantic import Field, StrictBool, StrictStr

from router.errors import invalid_request
from router.protocol import MAX_FALLBACKS, Num, PosInt, _Open


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


def msg_id(chat_id: str) -> str:
    return "msg_" + chat_id.removeprefix("chatcmpl-").removeprefix("req_")


def tool_input(raw: Any) -> Any:
    """A tool call's arguments as the object Anthropic's ``input`` is (the text when it is not JSON)."""
    if not isinstance(raw, str) or not raw:
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {"_raw": raw}
    return value if isinstance(value, dict) else {"value": value}
