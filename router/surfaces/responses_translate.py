"""The Responses API's request (its schema) and its items, translated to and from chat messages:
input items to the gateway's chat request, a chat answer to output items, usage both ways."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

import orjson
from pydantic import Field, StrictBool, StrictInt, StrictStr

from router.errors import APIError, invalid_request
from router.protocol import MAX_FALLBACKS, Num, PosInt, _Open


# what a deployment that speaks the Responses API gets of the request (the gateway's own fields out;
# ``store`` is always false there: the gateway keeps the conversation)
NATIVE_FIELDS = frozenset(
    {
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "text",
        "max_output_tokens",
        "reasoning",
        "temperature",
        "top_p",
        "metadata",
        "user",
        "parallel_tool_calls",
        "stream",
        "truncation",
        "top_logprobs",
        "service_tier",
        "safety_identifier",
        "prompt_cache_key",
        "include",
    }
)


Name = Annotated[StrictStr, Field(min_length=1, max_length=256)]


Metadata = Annotated[
    dict[Annotated[StrictStr, Field(max_length=64)], Annotated[StrictStr, Field(max_length=512)]], Field(max_length=16)
]


class TextFormat(_Open):
    type: Literal["text", "json_object", "json_schema"]
    name: Annotated[StrictStr, Field(min_length=1, max_length=64)] | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: StrictBool | None = None
    description: StrictStr | None = None


class TextConfig(_Open):
    format: TextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class Reasoning(_Open):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    summary: StrictStr | None = None


class FunctionTool(_Open):
    type: StrictStr
    name: StrictStr | None = None
    description: StrictStr | None = None
    parameters: dict[str, Any] | None = None
    strict: StrictBool | None = None


class ResponsesRequest(_Open):
    model: Name
    input: StrictStr | Annotated[list[dict[str, Any]], Field(min_length=1)]
    instructions: StrictStr | None = None
    tools: Annotated[list[FunctionTool], Field(max_length=128)] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    text: TextConfig | None = None
    max_output_tokens: PosInt | None = None
    reasoning: Reasoning | None = None
    temperature: Annotated[Num, Field(ge=0, le=2)] | None = None
    top_p: Annotated[Num, Field(ge=0, le=1)] | None = None
    metadata: Metadata | None = None
    user: Annotated[StrictStr, Field(max_length=256)] | None = None
    parallel_tool_calls: StrictBool | None = None
    store: StrictBool | None = None
    previous_response_id: Annotated[StrictStr, Field(min_length=1, max_length=64)] | None = None
    stream: StrictBool | None = None
    truncation: Literal["auto", "disabled"] | None = None
    top_logprobs: Annotated[StrictInt, Field(ge=0, le=20)] | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority"] | None = None
    safety_identifier: Annotated[StrictStr, Field(max_length=256)] | None = None
    prompt_cache_key: Annotated[StrictStr, Field(max_length=1024)] | None = None
    background: StrictBool | None = None
    fallbacks: Annotated[list[Name], Field(min_length=1, max_length=MAX_FALLBACKS)] | None = None
    models: Annotated[list[Name], Field(min_length=1, max_length=MAX_FALLBACKS + 1)] | None = None
    timeout: PosInt | Num | None = None


def unsupported(message: str, param: str) -> APIError:
    return invalid_request(message, param=param, code="unsupported_value")


def _part(part: Any, where: str, role: str) -> dict[str, Any] | None:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text", "text"):
        if not isinstance(part.get("text"), str):
            raise invalid_request(
                f"Invalid value for '{where}.text': a string.", param=f"{where}.text", code="invalid_value"
            )
        return {"type": "text", "text": part["text"]}
    if kind == "refusal" and role == "assistant":
        return {"type": "text", "text": str(part.get("refusal", ""))}
    if kind == "input_image" and role != "assistant":
        if not isinstance(part.get("image_url"), str):
            raise unsupported(
                "Images must be sent as 'image_url' (a URL or data URL); file ids are not supported by this gateway.",
                f"{where}.image_url",
            )
        image: dict[str, Any] = {"url": part["image_url"]}
        if part.get("detail") in ("low", "high", "auto"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file" and role != "assistant":
        if not isinstance(part.get("file_data"), str):
            raise unsupported(
                "Files must be sent as 'file_data'; file ids and URLs are not supported by this gateway.",
                f"{where}.file_data",
            )
        return {
            "type": "file",
            "file": {"file_data": part["file_data"], "filename": str(part.get("filename") or "file")},
        }
    raise invalid_request(
        f"Invalid value for '{where}.type': '{str(kind)[:40]}' is not a content part a {role} message can hold.",
        param=f"{where}.type",
        code="invalid_value",
    )


def _message(item: dict[str, Any], where: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise invalid_request(
            f"Invalid value for '{where}.role': one of user, assistant, system, developer.",
            param=f"{where}.role",
            code="invalid_value",
        )
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise invalid_request(
            f"Invalid value for '{where}.content': a string or a list of parts.",
            param=f"{where}.content",
            code="invalid_value",
        )
    parts = [p for j, c in enumerate(content) if (p := _part(c, f"{where}.content[{j}]", role)) is not None]
    if role == "assistant" or role in ("system", "developer"):
        return {"role": role, "content": "".join(p.get("text", "") for p in parts)}
    return {"role": role, "content": parts}


def _function_call(item: dict[str, Any], where: str, out: list[dict[str, Any]]) -> None:
    """A function call joins the assistant turn just before it (consecutive calls are one turn)."""
    if not all(isinstance(item.get(k), str) for k in ("call_id", "name", "arguments")):
        raise invalid_request(
            f"Invalid value for '{where}': a function_call item needs 'call_id', 'name' and 'arguments' as strings.",
            param=where,
            code="invalid_value",
        )
    call = {
        "id": item["call_id"],
        "type": "function",
        "function": {"name": item["name"], "arguments": item["arguments"]},
    }
    last = out[-1] if out else None
    if last is not None and last["role"] == "assistant":
        last.setdefault("tool_calls", []).append(call)
    else:
        out.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _function_output(item: dict[str, Any], where: str) -> dict[str, Any]:
    output = item.get("output")
    if isinstance(output, list):
        output = "".join(str(p.get("text", "")) for p in output if isinstance(p, dict))
    if not isinstance(item.get("call_id"), str) or not isinstance(output, str):
        raise invalid_request(
            f"Invalid value for '{where}': a function_call_output item needs 'call_id' and 'output' as strings.",
            param=where,
            code="invalid_value",
        )
    return {"role": "tool", "tool_call_id": item["call_id"], "content": output}


def to_chat_messages(items: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The input items as chat-completions messages (consecutive function calls join one assistant turn)."""
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    out: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        where = f"input[{i}]"
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            out.append(_message(item, where))
        elif kind == "function_call":
            _function_call(item, where, out)
        elif kind == "function_call_output":
            out.append(_function_output(item, where))
        elif kind != "reasoning":  # (a model's own reasoning is dropped: chat completions cannot send it back)
            raise unsupported(
                f"Input items of type '{str(kind)[:40]}' are not supported by this gateway "
                "(messages, function_call and function_call_output are).",
                f"{where}.type",
            )
    return out


def chat_tools(req: ResponsesRequest) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if req.tools:
        tools = []
        for i, t in enumerate(req.tools):
            if t.type != "function":
                raise unsupported(
                    f"Tools of type '{t.type[:40]}' are not supported by this gateway; it runs no "
                    "built-in tools (function tools are supported).",
                    f"tools[{i}].type",
                )
            if not t.name:
                raise invalid_request(
                    f"Missing required parameter: 'tools[{i}].name'.",
                    param=f"tools[{i}].name",
                    code="missing_required_parameter",
                )
            fn: dict[str, Any] = {"name": t.name, "parameters": t.parameters or {"type": "object", "properties": {}}}
            if t.description:
                fn["description"] = t.description
            if t.strict is not None:
                fn["strict"] = t.strict
            tools.append({"type": "function", "function": fn})
        out["tools"] = tools
    choice = req.tool_choice
    if isinstance(choice, dict):
        if choice.get("type") != "function" or not isinstance(choice.get("name"), str):
            raise unsupported(
                '\'tool_choice\' must be none, auto, required or {"type": "function", "name": ...}.', "tool_choice"
            )
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    elif choice is not None:
        out["tool_choice"] = choice
    if req.parallel_tool_calls is not None and req.tools:
        out["parallel_tool_calls"] = req.parallel_tool_calls
    return out


def chat_format(req: ResponsesRequest) -> dict[str, Any]:
    fmt = req.text.format if req.text is not None else None
    if fmt is None or fmt.type == "text":
        return {}
    if fmt.type == "json_object":
        return {"response_format": {"type": "json_object"}}
    if not fmt.name:
        raise invalid_request(
            "Missing required parameter: 'text.format.name'.",
            param="text.format.name",
            code="missing_required_parameter",
        )
    js: dict[str, Any] = {"name": fmt.name, "schema": fmt.schema_ or {}}
    if fmt.strict is not None:
        js["strict"] = fmt.strict
    if fmt.description:
        js["description"] = fmt.description
    return {"response_format": {"type": "json_schema", "json_schema": js}}


def response_usage(usage: dict[str, Any]) -> dict[str, Any]:
    pd, cd = usage.get("prompt_tokens_details") or {}, usage.get("completion_tokens_details") or {}
    return {
        "input_tokens": usage["prompt_tokens"],
        "input_tokens_details": {
            "cached_tokens": pd.get("cached_tokens", 0),
            "cache_write_tokens": pd.get("cache_write_tokens", 0),
        },
        "output_tokens": usage["completion_tokens"],
        "output_tokens_details": {"reasoning_tokens": cd.get("reasoning_tokens", 0)},
        "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"],
    }


def chat_usage(usage: dict[str, Any]) -> dict[str, Any]:
    """A Response's usage the chat-completions way."""
    pd, od = usage.get("input_tokens_details") or {}, usage.get("output_tokens_details") or {}
    prompt, completion = usage.get("input_tokens") or 0, usage.get("output_tokens") or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": pd.get("cached_tokens") or 0},
        "completion_tokens_details": {"reasoning_tokens": od.get("reasoning_tokens") or 0},
    }


def to_items(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat-completions messages as Responses input items (a stored conversation, sent to a deployment
    that speaks the Responses API)."""
    items: list[dict[str, Any]] = []
    for m in messages:
        role, content = m.get("role"), m.get("content")
        if role == "tool":
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": m.get("tool_call_id"),
                    "output": content if isinstance(content, str) else orjson.dumps(content).decode(),
                }
            )
        elif role == "assistant":
            if content:
                items.append(
                    {
                        "type": "message",
                        "role": "assistant",
                        "content": [
                            {
                                "type": "output_text",
                                "text": content
                                if isinstance(content, str)
                                else "".join(p.get("text", "") for p in content),
                            }
                        ],
                    }
                )
            for c in m.get("tool_calls") or ():
                fn = c.get("function") or {}
                items.append(
                    {
                        "type": "function_call",
                        "call_id": c.get("id"),
                        "name": fn.get("name"),
                        "arguments": fn.get("arguments") or "",
                    }
                )
        elif isinstance(content, str):
            items.append({"type": "message", "role": role, "content": content})
        else:
            parts = []
            for p in content or ():
                if p.get("type") == "text":
                    parts.append({"type": "input_text", "text": p.get("text", "")})
                elif p.get("type") == "image_url":
                    img = p.get("image_url") or {}
                    parts.append(
                        {"type": "input_image", "image_url": img.get("url"), "detail": img.get("detail", "auto")}
                    )
                elif p.get("type") == "file":
                    f = p.get("file") or {}
                    parts.append({"type": "input_file", "file_data": f.get("file_data"), "filename": f.get("filename")})
            items.append({"type": "message", "role": role, "content": parts})
    return items


def hex_id() -> str:
    return uuid.uuid4().hex


def message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def chat_turn(msg: dict[str, Any]) -> dict[str, Any]:
    turn: dict[str, Any] = {"role": "assistant", "content": msg.get("content")}
    if msg.get("tool_calls"):
        turn["tool_calls"] = [
            {"id": c.get("id"), "type": "function", "function": c.get("function")} for c in msg["tool_calls"]
        ]
    return turn
