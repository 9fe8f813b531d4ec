"""The OpenAI wire protocol: request validation and response normalisation.

Requests are validated against the fields the gateway understands and must get right; what is
forwarded is the client's values of the fields the API defines (an allow-list, plus the fields an
operator passes through per deployment), never anything else the client sent. Responses are normalised to OpenAI's published schema field for field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from router.errors import APIError, invalid_request
from router.plain_chat import plainly_valid

# What reaches an upstream is an allow-list: the fields OpenAI's API defines for each endpoint
# (CreateChatCompletionRequest, CreateEmbeddingRequest), plus the pass-through fields an operator
# enables per deployment. Nothing else a client sends is forwarded, so no field can pick an upstream
# URL, a credential, a provider-side mock or an adapter's own control parameter (litellm's
# ``fallbacks``, ``mock_response``, ``api_base``...). ``model`` is always the deployment's own.
MAX_FALLBACKS = 8  # models a request may name as its own fallbacks
CHAT_FIELDS = frozenset(
    {
        "messages",
        "stream",
        "stream_options",
        "max_tokens",
        "max_completion_tokens",
        "n",
        "temperature",
        "top_p",
        "presence_penalty",
        "frequency_penalty",
        "stop",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "seed",
        "user",
        "metadata",
        "logprobs",
        "top_logprobs",
        "logit_bias",
        "functions",
        "function_call",
        "modalities",
        "audio",
        "prediction",
        "reasoning_effort",
        "verbosity",
        "service_tier",
        "store",
        "web_search_options",
        "prompt_cache_key",
        "safety_identifier",
    }
)
EMBEDDINGS_FIELDS = frozenset({"input", "dimensions", "encoding_format", "user"})
# Read by the gateway itself, never forwarded: ``timeout`` (seconds) bounds the request, fallbacks included.
GATEWAY_FIELDS = frozenset({"timeout"})


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


# Each content part type and the field that carries its content (OpenAI answers 400 without it).
_PART_FIELDS = {
    "text": "text",
    "image_url": "image_url",
    "input_audio": "input_audio",
    "file": "file",
    "refusal": "refusal",
}


class ContentPart(_Open):
    type: StrictStr

    @model_validator(mode="after")
    def _has_content(self) -> "ContentPart":
        need = _PART_FIELDS.get(self.type)
        if need is None:
            raise ValueError(f"unknown content part type '{self.type[:40]}' (expected one of {sorted(_PART_FIELDS)})")
        value = (self.model_extra or {}).get(need)
        if need in ("text", "refusal") and not isinstance(value, str):
            raise ValueError(f"a '{self.type}' part needs a string '{need}'")
        if need not in ("text", "refusal") and not isinstance(value, dict):
            raise ValueError(f"a '{self.type}' part needs an object '{need}'")
        if self.type == "image_url" and not isinstance(value.get("url"), str):  # type: ignore[union-attr]
            raise ValueError("an 'image_url' part needs 'image_url.url' as a string")
        return self


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
Num = StrictInt | Annotated[StrictFloat, Field(allow_inf_nan=False)]  # "0.5" and true are not numbers


class FunctionCallName(_Open):
    name: StrictStr


class AudioOutput(_Open):
    voice: StrictStr | dict[str, Any]
    format: Literal["wav", "aac", "mp3", "flac", "opus", "pcm16"]


class Prediction(_Open):
    type: Literal["content"]
    content: StrictStr | list[ContentPart]


class WebSearchOptions(_Open):
    search_context_size: Literal["low", "medium", "high"] | None = None
    user_location: dict[str, Any] | None = None


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
    metadata: (
        Annotated[
            dict[Annotated[StrictStr, Field(max_length=64)], Annotated[StrictStr, Field(max_length=512)]],
            Field(max_length=16),
        ]
        | None
    ) = None
    logprobs: StrictBool | None = None
    top_logprobs: Annotated[StrictInt, Field(ge=0, le=20)] | None = None
    logit_bias: dict[StrictStr, Annotated[Num, Field(ge=-100, le=100)]] | None = None
    functions: Annotated[list[FunctionDef], Field(min_length=1, max_length=128)] | None = None
    function_call: Literal["none", "auto"] | FunctionCallName | None = None
    modalities: Annotated[list[Literal["text", "audio"]], Field(max_length=2)] | None = None
    audio: AudioOutput | None = None
    prediction: Prediction | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    verbosity: Literal["low", "medium", "high"] | None = None
    # the request's own fallbacks, tried in order after the routed model fails (LiteLLM's name and
    # OpenRouter's); never sent upstream
    fallbacks: (
        Annotated[
            list[Annotated[StrictStr, Field(min_length=1, max_length=256)]],
            Field(min_length=1, max_length=MAX_FALLBACKS),
        ]
        | None
    ) = None
    models: (
        Annotated[
            list[Annotated[StrictStr, Field(min_length=1, max_length=256)]],
            Field(min_length=1, max_length=MAX_FALLBACKS + 1),
        ]
        | None
    ) = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority"] | None = None
    store: StrictBool | None = None
    web_search_options: WebSearchOptions | None = None
    prompt_cache_key: Annotated[StrictStr, Field(max_length=1024)] | None = None
    safety_identifier: Annotated[StrictStr, Field(max_length=256)] | None = None
    timeout: Annotated[StrictInt | Annotated[StrictFloat, Field(allow_inf_nan=False)], Field(gt=0, le=86400)] | None = (
        None
    )


EmbeddingInput = (
    StrictStr
    | Annotated[list[StrictStr], Field(min_length=1, max_length=2048)]
    | Annotated[list[StrictInt], Field(min_length=1)]
    | Annotated[list[Annotated[list[StrictInt], Field(min_length=1)]], Field(min_length=1, max_length=2048)]
)


class EmbeddingsRequest(_Open):
    model: StrictStr = Field(min_length=1, max_length=256)
    input: EmbeddingInput
    dimensions: Annotated[StrictInt, Field(ge=1, le=65536)] | None = None
    encoding_format: Literal["float", "base64"] | None = None
    user: Annotated[StrictStr, Field(max_length=256)] | None = None
    timeout: Annotated[StrictInt | StrictFloat, Field(gt=0, le=86400)] | None = None


_UNION_TAGS = frozenset({"str", "int", "float", "bool", "NamedToolChoice", "FunctionCallName", "function-after"})


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
    deeper = [k for k in groups if k != param and k.startswith(param) and k[len(param) :][:1] in (".", "[")]
    if deeper:  # a union's other branch got further into the value: its error says more
        param = max(deeper, key=len)
        errs = groups.pop(param)
        groups = {param: errs, **groups}
        groups.pop(next(k for k in groups if k != param and param.startswith(k)), None)
    if errs[0]["type"] == "missing":
        text, code = f"Missing required parameter: '{param}'.", "missing_required_parameter"
    else:
        reasons = list(dict.fromkeys(e["msg"].removeprefix("Value error, ") for e in errs))
        text, code = f"Invalid value for '{param}': {'; or '.join(reasons)}.", "invalid_value"
    if len(groups) > 1:
        text += f" ({len(groups) - 1} more parameter(s) are invalid.)"
    return invalid_request(text, param=param or None, code=code)


def parse_body(model: type[BaseModel], body: Any) -> Any:
    """``body`` as ``model``: a 400 for a body that is not an object, or for its first invalid field."""
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.", code="invalid_body")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise _validation_error(exc) from None


def validate_chat(body: Any, *, max_messages: int, max_tokens_limit: int) -> None:
    """A 400 in OpenAI's shape for a chat request the gateway refuses; nothing for one it serves."""
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.", code="invalid_body")
    models = body.get("models")
    if "model" not in body and isinstance(models, list) and models and isinstance(models[0], str):
        body["model"] = models[0]  # OpenRouter's form: the first of `models` is the model asked for
    msgs = body.get("messages")
    if isinstance(msgs, list) and len(msgs) > max_messages:
        raise invalid_request(
            f"Too many messages: {len(msgs)} (this gateway accepts at most {max_messages}).",
            param="messages",
            code="too_many_messages",
        )
    if not plainly_valid(body, max_tokens_limit):
        validate_chat_fully(body, max_tokens_limit=max_tokens_limit)


def validate_chat_fully(body: dict[str, Any], *, max_tokens_limit: int) -> ChatRequest:
    """``body`` as a ``ChatRequest``, or the 400 for its first invalid field (the messages' count checked before)."""
    try:
        req = ChatRequest.model_validate(body)
    except ValidationError as exc:
        raise _validation_error(exc) from None
    for name in ("max_tokens", "max_completion_tokens"):
        v = getattr(req, name)
        if v is not None and v > max_tokens_limit:
            raise invalid_request(
                f"Invalid value for '{name}': {v} exceeds this gateway's limit of {max_tokens_limit}.",
                param=name,
                code="invalid_value",
            )
    if req.response_format and req.response_format.type == "json_schema" and req.response_format.json_schema is None:
        raise invalid_request(
            "Missing required parameter: 'response_format.json_schema'.",
            param="response_format.json_schema",
            code="missing_required_parameter",
        )
    if req.stream_options is not None and not req.stream:
        raise invalid_request(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
            code="invalid_value",
        )
    if req.tool_choice is not None and not req.tools:
        raise invalid_request(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
            param="tool_choice",
            code="invalid_value",
        )
    if req.function_call is not None and not req.functions:
        raise invalid_request(
            "Invalid value for 'function_call': it is only allowed when 'functions' are specified.",
            param="function_call",
            code="invalid_value",
        )
    if req.top_logprobs is not None and not req.logprobs:
        raise invalid_request(
            "'top_logprobs' requires 'logprobs' to be true.", param="top_logprobs", code="invalid_value"
        )
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


def client_fallbacks(body: dict[str, Any]) -> list[str]:
    """The models a request names as its own fallbacks, in order: ``fallbacks`` (LiteLLM) or the rest of
    ``models`` (OpenRouter), without the model asked for and without repeats."""
    names = body.get("fallbacks") or body.get("models") or []
    out: list[str] = []
    for name in names:
        if name != body["model"] and name not in out:
            out.append(name)
    return out
