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
from typing import Any, AsyncGenerator, AsyncIterator, TYPE_CHECKING


from router.errors import APIError
from router.protocol import parse_body, validate_chat
from router.wire import normalize_chat
from router.surfaces.base import NATIVE, Encoder, Surface, finish_surface, sse
from router.surfaces.responses_stream import ResponsesEvents
from router.surfaces.responses_translate import (
    NATIVE_FIELDS,
    ResponsesRequest,
    call_item,
    chat_format,
    chat_tools,
    chat_turn,
    chat_usage,
    hex_id,
    message_item,
    response_usage,
    to_chat_messages,
    to_items,
    unsupported,
)

if TYPE_CHECKING:
    from router.auth import Principal
    from router.ledger.conversations import ResponseStore
    from router.registry import Deployment


class Responses(Surface):
    endpoint = "responses"

    def __init__(self, body: dict[str, Any], headers: Any = None):
        super().__init__(body, headers)
        self.req: ResponsesRequest | None = None
        self.history: list[dict[str, Any]] = []  # the stored conversation this one continues
        self.id = f"resp_{hex_id()}"
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
            raise unsupported("'background' responses are not supported by this gateway.", "background")
        if "conversation" in self.body and self.body["conversation"] is not None:
            raise unsupported(
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
        chat: dict[str, Any] = {"model": req.model, "messages": messages, **chat_tools(req), **chat_format(req)}
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
            resp["output"].append(message_item(f"msg_{hex_id()}", msg["content"], "completed"))
        for call in msg.get("tool_calls") or ():
            fn = call.get("function") or {}
            resp["output"].append(
                call_item(
                    f"fc_{hex_id()}",
                    call.get("id") or f"call_{hex_id()}",
                    fn.get("name", ""),
                    fn.get("arguments") or "",
                    "completed",
                )
            )
        return self.finish(resp, choice["finish_reason"], out["usage"], chat_turn(msg))

    def encoder(self, stream_id: str, created: int, model: str, client_usage: bool) -> Encoder:
        return ResponsesEvents(self, model, float(created))

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
        self.conversation.append(chat_turn(message))
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
