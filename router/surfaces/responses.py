"""OpenAI's Responses API (``POST /v1/responses``; ``GET`` and ``DELETE /v1/responses/{id}``), over
the gateway's chat requests.

In: ``input`` as a string or items (messages with text, image and file parts; ``function_call`` and
``function_call_output`` items; reasoning items are dropped), ``instructions``, function ``tools``
and ``tool_choice``, ``text.format`` (text, json_object, json_schema), ``max_output_tokens``,
``reasoning.effort``, ``temperature``, ``top_p``, ``metadata``, ``user``, ``parallel_tool_calls``,
``previous_response_id``. Out: a ``response`` with message and function_call output items and usage
(``input_tokens_details.cached_tokens``, ``output_tokens_details.reasoning_tokens``); a stream is the
documented event sequence (``response.created``, ``response.in_progress``, ``output_item.added``,
``content_part.added``, ``output_text.delta``/``done``, ``function_call_arguments.delta``/``done``,
``content_part.done``, ``output_item.done``, then ``response.completed``, ``response.incomplete``
or ``response.failed``), each event numbered.

``store`` (true unless the request says otherwise, as OpenAI's) keeps the answer and the conversation
it ends in the ledger database for ``storage.responses_retention_days``; a request naming it as
``previous_response_id`` continues that conversation (its instructions are not carried over, as
OpenAI's are not). Built-in tools (web search, file search, computer use), ``background`` and
server-side ``conversation`` objects are rejected with a 400: the gateway does not run them.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, AsyncGenerator, AsyncIterator, Literal, TYPE_CHECKING

import orjson
from pydantic import Field, StrictBool, StrictInt, StrictStr

from router.errors import APIError, invalid_request
from router.protocol import MAX_FALLBACKS, Num, PosInt, _Open, normalize_chat, parse_body, validate_chat
from router.surfaces.base import NATIVE, BlockEncoder, Encoder, Surface, finish_surface, sse

if TYPE_CHECKING:
    from router.auth import Principal
    from router.ledger.conversations import ResponseStore
    from router.registry import Deployment

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


def _unsupported(message: str, param: str) -> APIError:
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
            raise _unsupported(
                "Images must be sent as 'image_url' (a URL or data URL); file ids are not supported by this gateway.",
                f"{where}.image_url",
            )
        image: dict[str, Any] = {"url": part["image_url"]}
        if part.get("detail") in ("low", "high", "auto"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file" and role != "assistant":
        if not isinstance(part.get("file_data"), str):
            raise _unsupported(
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
            raise _unsupported(
                f"Input items of type '{str(kind)[:40]}' are not supported by this gateway "
                "(messages, function_call and function_call_output are).",
                f"{where}.type",
            )
    return out


def _tools(req: ResponsesRequest) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if req.tools:
        tools = []
        for i, t in enumerate(req.tools):
            if t.type != "function":
                raise _unsupported(
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
            raise _unsupported(
                '\'tool_choice\' must be none, auto, required or {"type": "function", "name": ...}.', "tool_choice"
            )
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    elif choice is not None:
        out["tool_choice"] = choice
    if req.parallel_tool_calls is not None and req.tools:
        out["parallel_tool_calls"] = req.parallel_tool_calls
    return out


def _format(req: ResponsesRequest) -> dict[str, Any]:
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


def _hex() -> str:
    return uuid.uuid4().hex


class Responses(Surface):
    endpoint = "responses"

    def __init__(self, body: dict[str, Any], headers: Any = None):
        super().__init__(body, headers)
        self.req: ResponsesRequest | None = None
        self.history: list[dict[str, Any]] = []  # the stored conversation this one continues
        self.id = f"resp_{_hex()}"
        self.result: dict[str, Any] | None = None  # the finished response (to store)
        self.conversation: list[dict[str, Any]] = []  # this request's messages, without its instructions
        self.tenant: str | None = None
        self.store: ResponseStore | None = None
        self.stored = False

    def _parse(self) -> ResponsesRequest:
        if self.req is None:
            self.req = parse_body(ResponsesRequest, self.body)
        return self.req

    @property
    def storing(self) -> bool:
        return self.req is not None and self.req.store is not False and self.store is not None and self.store.enabled

    async def prepare(self, who: "Principal", store: "ResponseStore | None") -> None:
        req = self._parse()
        self.tenant, self.store = who.tenant, store
        if req.background:
            raise _unsupported("'background' responses are not supported by this gateway.", "background")
        if "conversation" in self.body and self.body["conversation"] is not None:
            raise _unsupported(
                "Server-side 'conversation' objects are not supported by this gateway; continue a "
                "conversation with 'previous_response_id'.",
                "conversation",
            )
        if req.previous_response_id is not None:
            found = None
            if store is not None and store.enabled:
                found = await store.get(req.previous_response_id, who.tenant, time.time())
            if found is None:
                raise APIError(
                    404,
                    f"Previous response with id '{req.previous_response_id[:64]}' not found.",
                    param="previous_response_id",
                    code="previous_response_not_found",
                )
            self.history = found[1]

    def chat(self, *, max_messages: int, max_tokens_limit: int) -> dict[str, Any]:
        req = self._parse()
        self.conversation = [*self.history, *to_chat_messages(req.input)]
        messages = ([{"role": "system", "content": req.instructions}] if req.instructions else []) + self.conversation
        chat: dict[str, Any] = {"model": req.model, "messages": messages, **_tools(req), **_format(req)}
        if req.max_output_tokens is not None:
            chat["max_tokens"] = req.max_output_tokens
        if req.reasoning is not None and req.reasoning.effort is not None:
            chat["reasoning_effort"] = req.reasoning.effort
        if req.text is not None and req.text.verbosity is not None:
            chat["verbosity"] = req.text.verbosity
        if req.top_logprobs:
            chat["logprobs"], chat["top_logprobs"] = True, req.top_logprobs
        for name in (
            "temperature",
            "top_p",
            "metadata",
            "user",
            "service_tier",
            "safety_identifier",
            "prompt_cache_key",
            "fallbacks",
            "models",
            "timeout",
            "stream",
        ):
            if getattr(req, name) is not None:
                chat[name] = getattr(req, name)
        validate_chat(chat, max_messages=max_messages, max_tokens_limit=max_tokens_limit)
        return chat

    # -- the answer -------------------------------------------------------------------------------
    def envelope(self, model: str, created: float, status: str) -> dict[str, Any]:
        """A Response object without output and usage: what the request asked for, echoed."""
        req = self.req
        assert req is not None
        fmt = (
            req.text.format.model_dump(by_alias=True, exclude_none=True)
            if req.text and req.text.format
            else {"type": "text"}
        )
        return {
            "id": self.id,
            "object": "response",
            "created_at": created,
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": None,
            "instructions": req.instructions,
            "max_output_tokens": req.max_output_tokens,
            "model": model,
            "output": [],
            "parallel_tool_calls": req.parallel_tool_calls if req.parallel_tool_calls is not None else True,
            "previous_response_id": req.previous_response_id,
            "reasoning": {"effort": req.reasoning.effort if req.reasoning else None, "summary": None},
            "service_tier": req.service_tier or "default",
            "temperature": req.temperature if req.temperature is not None else 1.0,
            "text": {"format": fmt, "verbosity": (req.text.verbosity if req.text else None) or "medium"},
            "tool_choice": req.tool_choice or "auto",
            "tools": [t.model_dump(exclude_none=True) for t in req.tools or ()],
            "top_p": req.top_p if req.top_p is not None else 1.0,
            "truncation": req.truncation or "disabled",
            "usage": None,
            "user": req.user,
            "metadata": req.metadata or {},
        }

    def finish(
        self, resp: dict[str, Any], finish_reason: str | None, usage: dict[str, Any], answer: dict[str, Any]
    ) -> dict[str, Any]:
        """``resp`` completed (or incomplete) with its usage; remembered for storing with ``answer``, the
        assistant's turn in chat form."""
        if finish_reason == "length":
            resp["status"], resp["incomplete_details"] = "incomplete", {"reason": "max_output_tokens"}
        elif finish_reason == "content_filter":
            resp["status"], resp["incomplete_details"] = "incomplete", {"reason": "content_filter"}
        else:
            resp["status"] = "completed"
            resp["completed_at"] = time.time()
        resp["usage"] = response_usage(usage)
        self.result = resp
        self.conversation.append(answer)
        return resp

    def answer(self, out: dict[str, Any]) -> dict[str, Any]:
        choice = out["choices"][0]
        msg = choice["message"]
        native = out.get(NATIVE)
        if native is not None:  # the deployment's own Response, as it came (but the model's name)
            return self._keep(native, out["model"], msg)
        resp = self.envelope(out["model"], float(out["created"]), "completed")
        if msg.get("content"):
            resp["output"].append(_message_item(f"msg_{_hex()}", msg["content"], "completed"))
        for call in msg.get("tool_calls") or ():
            fn = call.get("function") or {}
            resp["output"].append(
                _call_item(
                    f"fc_{_hex()}",
                    call.get("id") or f"call_{_hex()}",
                    fn.get("name", ""),
                    fn.get("arguments") or "",
                    "completed",
                )
            )
        return self.finish(resp, choice["finish_reason"], out["usage"], _chat_turn(msg))

    def encoder(self, stream_id: str, created: int, model: str, client_usage: bool) -> Encoder:
        return _Stream(self, model, float(created))

    async def done(self) -> None:
        if self.result is None or not self.storing or self.tenant is None or self.stored:
            return
        assert self.store is not None
        self.stored = True
        await self.store.put(self.id, self.tenant, self.result, self.conversation, time.time())

    # -- deployments that speak the Responses API: the request as it came ---------------------------
    def native_call(self, dep: Deployment) -> tuple[Any, dict[str, Any]] | None:
        client = (getattr(dep.backend, "native", None) or {}).get("responses")
        if client is None:
            return None
        body = {k: v for k, v in self.body.items() if k in NATIVE_FIELDS}
        if self.history:  # the gateway keeps conversations: the provider gets the whole one, stores nothing
            body["input"] = [*to_items(self.history), *to_items(to_chat_messages(self.req.input))]  # type: ignore[union-attr]
        body["model"], body["store"] = dep.upstream_model, False
        return client, body

    def from_native(self, answer: dict[str, Any], model: str) -> tuple[dict[str, Any], dict[str, Any]]:
        output, usage = answer.get("output"), answer.get("usage")
        if not isinstance(output, list) or not isinstance(usage, dict):
            raise ValueError("a Response without output or usage")
        text = "".join(
            p.get("text", "")
            for item in output
            if isinstance(item, dict) and item.get("type") == "message"
            for p in item.get("content") or ()
            if isinstance(p, dict) and p.get("type") == "output_text"
        )
        calls = [
            {
                "id": i.get("call_id"),
                "type": "function",
                "function": {"name": i.get("name"), "arguments": i.get("arguments") or ""},
            }
            for i in output
            if isinstance(i, dict) and i.get("type") == "function_call"
        ]
        message: dict[str, Any] = {
            "role": "assistant",
            "content": text or None,
            **({"tool_calls": calls} if calls else {}),
        }
        reason = str((answer.get("incomplete_details") or {}).get("reason"))
        finish = (
            "tool_calls"
            if calls
            else {"max_output_tokens": "length", "content_filter": "content_filter"}.get(reason, "stop")
        )
        raw = {
            "id": answer.get("id"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": chat_usage(usage),
        }
        out = normalize_chat(raw, model)
        out[NATIVE] = answer
        return raw, out

    def _keep(self, native: dict[str, Any], model: str, message: dict[str, Any]) -> dict[str, Any]:
        """The provider's Response under the gateway's model name and the request's own continuation
        id, remembered for storing with the assistant's turn."""
        resp = {**native, "model": model, "previous_response_id": self.req.previous_response_id}  # type: ignore[union-attr]
        resp.pop("store", None)
        if isinstance(native.get("id"), str):
            self.id = native["id"]
        self.result = resp
        self.conversation.append(_chat_turn(message))
        return resp

    async def native_chunks(
        self, events: AsyncIterator[tuple[dict[str, Any], bytes]], model: str
    ) -> AsyncGenerator[dict[str, Any], None]:
        async for event, raw in events:
            kind = event["type"]
            chunk: dict[str, Any] = {"choices": [], NATIVE: raw}
            delta: dict[str, Any] | None = None
            if kind == "response.output_text.delta":
                delta = {"content": event.get("delta", "")}
            elif kind == "response.output_item.added" and (event.get("item") or {}).get("type") == "function_call":
                item = event["item"]
                delta = {
                    "tool_calls": [
                        {
                            "index": event.get("output_index", 0),
                            "id": item.get("call_id"),
                            "type": "function",
                            "function": {"name": item.get("name"), "arguments": ""},
                        }
                    ]
                }
            elif kind == "response.function_call_arguments.delta":
                delta = {
                    "tool_calls": [
                        {"index": event.get("output_index", 0), "function": {"arguments": event.get("delta", "")}}
                    ]
                }
            if delta is not None:
                chunk["choices"] = [{"index": 0, "delta": delta, "finish_reason": None}]
            if isinstance(event.get("response"), dict):  # the events that carry the Response: the gateway's model name
                event = {**event, "response": {**event["response"], "model": model}}
                if kind in ("response.completed", "response.incomplete") and isinstance(
                    event["response"].get("usage"), dict
                ):
                    raw_out, out = self.from_native(event["response"], model)
                    chunk["usage"] = raw_out["usage"]
                    chunk["choices"] = [{"index": 0, "delta": {}, "finish_reason": out["choices"][0]["finish_reason"]}]
                    event["response"] = self._keep(event["response"], model, out["choices"][0]["message"])
                    await finish_surface(self)  # stored before the client sees the end: it may continue at once
                chunk[NATIVE] = sse(kind, event)
            yield chunk


def _message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def _call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def _chat_turn(msg: dict[str, Any]) -> dict[str, Any]:
    turn: dict[str, Any] = {"role": "assistant", "content": msg.get("content")}
    if msg.get("tool_calls"):
        turn["tool_calls"] = [
            {"id": c.get("id"), "type": "function", "function": c.get("function")} for c in msg["tool_calls"]
        ]
    return turn


class _Stream(BlockEncoder):
    """The Responses API's stream events from OpenAI chunks (the first choice)."""

    def __init__(self, surface: Responses, model: str, created: float):
        super().__init__()
        self.s, self.model, self.created = surface, model, created
        self.seq = 0
        self.items: list[dict[str, Any]] = []  # output items so far (the open one last)

    def _ev(self, kind: str, **data: Any) -> bytes:
        out = sse(kind, {"type": kind, "sequence_number": self.seq, **data})
        self.seq += 1
        return out

    def begin(self) -> bytes:
        resp = self.s.envelope(self.model, self.created, "in_progress")
        return self._ev("response.created", response=resp) + self._ev("response.in_progress", response=resp)

    def _add(self, item: dict[str, Any]) -> bytes:
        self.items.append(item)
        at = len(self.items) - 1
        shown = {**item, "content": []} if item["type"] == "message" else item
        out = self._ev("response.output_item.added", output_index=at, item=shown)
        if item["type"] == "message":
            out += self._ev(
                "response.content_part.added",
                item_id=item["id"],
                output_index=at,
                content_index=0,
                part={"type": "output_text", "text": "", "annotations": [], "logprobs": []},
            )
        return out

    def open_text(self) -> bytes:
        return self._add(_message_item(f"msg_{_hex()}", "", "in_progress"))

    def text(self, text: str) -> bytes:
        item = self.items[-1]
        item["content"][0]["text"] += text
        return self._ev(
            "response.output_text.delta",
            item_id=item["id"],
            output_index=len(self.items) - 1,
            content_index=0,
            delta=text,
            logprobs=[],
        )

    def open_tool(self, call_id: str | None, name: str) -> bytes:
        return self._add(_call_item(f"fc_{_hex()}", call_id or f"call_{_hex()}", name, "", "in_progress"))

    def arguments(self, fragment: str) -> bytes:
        item = self.items[-1]
        item["arguments"] += fragment
        return self._ev(
            "response.function_call_arguments.delta",
            item_id=item["id"],
            output_index=len(self.items) - 1,
            delta=fragment,
        )

    def close_block(self) -> bytes:
        item, at = self.items[-1], len(self.items) - 1
        item["status"] = "completed"
        if item["type"] == "message":
            part = item["content"][0]
            out = self._ev(
                "response.output_text.done",
                item_id=item["id"],
                output_index=at,
                content_index=0,
                text=part["text"],
                logprobs=[],
            )
            out += self._ev(
                "response.content_part.done", item_id=item["id"], output_index=at, content_index=0, part=part
            )
        else:
            out = self._ev(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=at,
                name=item["name"],
                arguments=item["arguments"],
            )
        return out + self._ev("response.output_item.done", output_index=at, item=item)

    def end(self, usage: dict[str, Any], money: dict[str, Any]) -> bytes:
        out = self.close()
        resp = self.s.envelope(self.model, self.created, "completed")
        resp["output"] = self.items
        text = "".join(i["content"][0]["text"] for i in self.items if i["type"] == "message")
        calls = [
            {"id": i["call_id"], "type": "function", "function": {"name": i["name"], "arguments": i["arguments"]}}
            for i in self.items
            if i["type"] == "function_call"
        ]
        turn: dict[str, Any] = {
            "role": "assistant",
            "content": text or None,
            **({"tool_calls": calls} if calls else {}),
        }
        resp = self.s.finish(resp, self.finish, usage, turn)
        kind = "response.incomplete" if resp["status"] == "incomplete" else "response.completed"
        return out + self._ev(kind, response=resp)

    def fail(self, message: str, code: str) -> bytes:
        resp = self.s.envelope(self.model, self.created, "failed")
        resp["output"] = self.items
        resp["error"] = {"code": "server_error", "message": message}
        return self._ev("response.failed", response=resp)
