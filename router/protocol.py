"""The OpenAI wire protocol: request validation and response normalisation.

Requests are validated against the fields the gateway understands and must get right; the
client's own dict is what is forwarded (minus fields that would let a client steer upstream
URLs or credentials), so fields the gateway does not model still reach upstreams that accept
them. Responses are normalised to OpenAI's published schema field for field.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError

from router.errors import APIError, invalid_request

# Never forwarded: they would let a client pick upstream URLs, credentials or providers.
FORBIDDEN_FIELDS = frozenset({"api_base", "base_url", "api_key", "api_version", "custom_llm_provider",
                              "extra_headers", "extra_body", "headers", "organization", "azure_ad_token",
                              "aws_access_key_id", "aws_secret_access_key", "vertex_credentials", "mock_response"})
# Read by the gateway itself, not forwarded: ``timeout`` (seconds) bounds the request, fallbacks included.
GATEWAY_FIELDS = frozenset({"timeout"})
FINISH_REASONS = frozenset({"stop", "length", "tool_calls", "content_filter", "function_call"})


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class FunctionDef(_Open):
    name: StrictStr = Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")
    description: StrictStr | None = None
    parameters: dict[str, Any] | None = None
    strict: StrictBool | None = None


class Tool(_Open):
    type: Literal["function"]
    function: FunctionDef


class ToolChoiceFunction(_Open):
    name: StrictStr


class NamedToolChoice(_Open):
    type: Literal["function"]
    function: ToolChoiceFunction


class ContentPart(_Open):
    type: StrictStr


class ToolCallFunction(_Open):
    name: StrictStr
    arguments: StrictStr


class ToolCall(_Open):
    id: StrictStr
    type: Literal["function"] = "function"
    function: ToolCallFunction


class Message(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: StrictStr | list[ContentPart] | None = None
    name: StrictStr | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: StrictStr | None = None


class JsonSchemaFormat(_Open):
    name: StrictStr = Field(min_length=1, max_length=64)
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: StrictBool | None = None


class ResponseFormat(_Open):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class StreamOptions(_Open):
    include_usage: StrictBool | None = None


PosInt = Annotated[StrictInt, Field(ge=1)]
Num = StrictInt | float


class ChatRequest(_Open):
    model: StrictStr = Field(min_length=1, max_length=256)
    messages: list[Message] = Field(min_length=1)
    stream: StrictBool | None = None
    stream_options: StreamOptions | None = None
    max_tokens: PosInt | None = None
    max_completion_tokens: PosInt | None = None
    n: Annotated[StrictInt, Field(ge=1, le=128)] | None = None
    temperature: Annotated[Num, Field(ge=0, le=2)] | None = None
    top_p: Annotated[Num, Field(ge=0, le=1)] | None = None
    presence_penalty: Annotated[Num, Field(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[Num, Field(ge=-2, le=2)] | None = None
    stop: StrictStr | Annotated[list[StrictStr], Field(max_length=4)] | None = None
    tools: Annotated[list[Tool], Field(max_length=128)] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: StrictBool | None = None
    response_format: ResponseFormat | None = None
    seed: StrictInt | None = None
    user: Annotated[StrictStr, Field(max_length=256)] | None = None
    metadata: dict[StrictStr, StrictStr] | None = None
    logprobs: StrictBool | None = None
    top_logprobs: Annotated[StrictInt, Field(ge=0, le=20)] | None = None
    logit_bias: dict[StrictStr, Num] | None = None
    timeout: Annotated[StrictInt | StrictFloat, Field(gt=0, le=86400)] | None = None


EmbeddingInput = (StrictStr | Annotated[list[StrictStr], Field(min_length=1, max_length=2048)]
                  | Annotated[list[StrictInt], Field(min_length=1)]
                  | Annotated[list[Annotated[list[StrictInt], Field(min_length=1)]], Field(min_length=1, max_length=2048)])


class EmbeddingsRequest(_Open):
    model: StrictStr = Field(min_length=1, max_length=256)
    input: EmbeddingInput
    dimensions: Annotated[StrictInt, Field(ge=1, le=65536)] | None = None
    encoding_format: Literal["float", "base64"] | None = None
    user: Annotated[StrictStr, Field(max_length=256)] | None = None
    timeout: Annotated[StrictInt | StrictFloat, Field(gt=0, le=86400)] | None = None


_UNION_TAGS = frozenset({"str", "int", "float", "bool", "NamedToolChoice"})


def _param(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier() and part not in _UNION_TAGS:  # skip pydantic's union-branch labels
            out += f".{part}" if out else part
    return out


def _validation_error(exc: ValidationError) -> APIError:
    groups: dict[str, list[Any]] = {}
    for err in exc.errors(include_url=False, include_input=False):
        groups.setdefault(_param(tuple(err["loc"])), []).append(err)
    param, errs = next(iter(groups.items()))
    if errs[0]["type"] == "missing":
        text, code = f"Missing required parameter: '{param}'.", "missing_required_parameter"
    else:
        reasons = list(dict.fromkeys(e["msg"] for e in errs))
        text, code = f"Invalid value for '{param}': {'; or '.join(reasons)}.", "invalid_value"
    if len(groups) > 1:
        text += f" ({len(groups) - 1} more parameter(s) are invalid.)"
    return invalid_request(text, param=param or None, code=code)


def validate_chat(body: Any, *, max_messages: int, max_tokens_limit: int) -> ChatRequest:
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.", code="invalid_body")
    msgs = body.get("messages")
    if isinstance(msgs, list) and len(msgs) > max_messages:
        raise invalid_request(f"Too many messages: {len(msgs)} (this gateway accepts at most {max_messages}).",
                              param="messages", code="too_many_messages")
    try:
        req = ChatRequest.model_validate(body)
    except ValidationError as exc:
        raise _validation_error(exc) from None
    for name in ("max_tokens", "max_completion_tokens"):
        v = getattr(req, name)
        if v is not None and v > max_tokens_limit:
            raise invalid_request(f"Invalid value for '{name}': {v} exceeds this gateway's limit of {max_tokens_limit}.",
                                  param=name, code="invalid_value")
    if req.response_format and req.response_format.type == "json_schema" and req.response_format.json_schema is None:
        raise invalid_request("Missing required parameter: 'response_format.json_schema'.",
                              param="response_format.json_schema", code="missing_required_parameter")
    if req.stream_options is not None and not req.stream:
        raise invalid_request("The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                              param="stream_options", code="invalid_value")
    if req.top_logprobs is not None and not req.logprobs:
        raise invalid_request("'top_logprobs' requires 'logprobs' to be true.", param="top_logprobs", code="invalid_value")
    return req


def validate_embeddings(body: Any) -> EmbeddingsRequest:
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.", code="invalid_body")
    try:
        req = EmbeddingsRequest.model_validate(body)
    except ValidationError as exc:
        raise _validation_error(exc) from None
    if isinstance(req.input, str) and not req.input:
        raise invalid_request("Invalid value for 'input': it must not be empty.", param="input", code="invalid_value")
    return req


def upstream_body(body: dict[str, Any], upstream_model: str) -> dict[str, Any]:
    """The body forwarded upstream: the client's fields minus the forbidden ones and the gateway's own."""
    out = {k: v for k, v in body.items() if k not in FORBIDDEN_FIELDS and k not in GATEWAY_FIELDS}
    out["model"] = upstream_model
    return out


# -- responses ----------------------------------------------------------------------------------
def _norm_message(msg: Any) -> dict[str, Any]:
    if not isinstance(msg, dict):
        raise ValueError("choice.message is not an object")
    out = dict(msg)
    out["role"] = "assistant"
    content = out.get("content")
    if content is not None and not isinstance(content, str):
        raise ValueError("message.content is neither a string nor null")
    out.setdefault("content", None)
    out.setdefault("refusal", None)
    for key in ("tool_calls", "function_call", "audio", "annotations"):
        if key in out and out[key] is None and key != "audio":
            del out[key]
    if out.get("tool_calls") == []:
        del out["tool_calls"]
    # provider extras that are not in OpenAI's schema (e.g. litellm's provider_specific_fields)
    for key in ("provider_specific_fields", "reasoning_content", "thinking_blocks"):
        out.pop(key, None)
    return out


def normalize_chat(body: dict[str, Any], model: str) -> dict[str, Any]:
    """A chat.completion in OpenAI's exact shape; ValueError when the upstream body is unusable."""
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ValueError("no choices")
    out_choices = []
    for i, ch in enumerate(choices):
        if not isinstance(ch, dict):
            raise ValueError("choice is not an object")
        finish = ch.get("finish_reason")
        out_choices.append({
            "index": ch.get("index", i) if isinstance(ch.get("index", i), int) else i,
            "message": _norm_message(ch.get("message")),
            "logprobs": ch.get("logprobs") if isinstance(ch.get("logprobs"), dict) else None,
            "finish_reason": finish if finish in FINISH_REASONS else "stop",
        })
    out = {
        "id": body.get("id") if isinstance(body.get("id"), str) else f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": body.get("created") if isinstance(body.get("created"), int) else int(time.time()),
        "model": model,
        "choices": out_choices,
    }
    if isinstance(body.get("system_fingerprint"), str):
        out["system_fingerprint"] = body["system_fingerprint"]
    if body.get("service_tier") in ("auto", "default", "flex", "scale", "priority"):
        out["service_tier"] = body["service_tier"]
    return out


def normalize_chunk(chunk: dict[str, Any], model: str, stream_id: str, created: int) -> dict[str, Any] | None:
    """A chat.completion.chunk in OpenAI's shape (without usage); None for an empty keep-alive."""
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        raise ValueError("chunk without choices")
    out_choices = []
    for i, ch in enumerate(choices):
        if not isinstance(ch, dict):
            raise ValueError("chunk choice is not an object")
        delta = ch.get("delta") if isinstance(ch.get("delta"), dict) else {}
        delta = {k: v for k, v in delta.items()
                 if v is not None or k in ("content", "refusal")} if delta else {}
        for key in ("provider_specific_fields", "reasoning_content", "thinking_blocks", "function_call", "audio"):
            if delta.get(key) is None:
                delta.pop(key, None)
        if delta.get("tool_calls") == []:
            del delta["tool_calls"]
        finish = ch.get("finish_reason")
        out_choices.append({
            "index": ch.get("index", i) if isinstance(ch.get("index", i), int) else i,
            "delta": delta,
            "logprobs": ch.get("logprobs") if isinstance(ch.get("logprobs"), dict) else None,
            "finish_reason": finish if finish in FINISH_REASONS else None,
        })
    if not out_choices:
        return None
    out = {"id": stream_id, "object": "chat.completion.chunk", "created": created, "model": model,
           "choices": out_choices}
    if isinstance(chunk.get("system_fingerprint"), str):
        out["system_fingerprint"] = chunk["system_fingerprint"]
    return out


def normalize_embeddings(body: dict[str, Any], model: str) -> dict[str, Any]:
    data = body.get("data")
    if not isinstance(data, list):
        raise ValueError("no data")
    out = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or not isinstance(item.get("embedding"), (list, str)):
            raise ValueError("embedding item malformed")
        out.append({"object": "embedding", "index": item.get("index", i), "embedding": item["embedding"]})
    return {"object": "list", "data": out, "model": model}
