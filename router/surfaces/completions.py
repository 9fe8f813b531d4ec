"""OpenAI's legacy completions (``POST /v1/completions``): a prompt in, text out.

The prompt becomes one user message; the answer's text (after the prompt when ``echo`` is set) and
its log-probabilities come back in the legacy shape (``tokens``, ``token_logprobs``,
``top_logprobs``, ``text_offset``). ``max_tokens`` defaults to 16, as OpenAI's does.
Several prompts (a batch, at most MAX_PROMPTS) are served as one request each, in the ledger as
``<request id>-<i>``, and answered as one: choice ``i * n + j`` is prompt ``i``'s choice ``j``, the
usage and the money headers are the parts' sums; a stream relays the parts one after the other.
Not served: token-id prompts and ``suffix`` (insertion): each gets a 400 saying so rather than a
silently different answer.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, AsyncIterator, Awaitable, Callable, Sequence

import orjson
from pydantic import Field, StrictBool, StrictInt, StrictStr

from starlette.responses import Response

from router.errors import APIError, invalid_request
from router.sse import SSEResponse
from router.protocol import MAX_FALLBACKS, Num, PosInt, StreamOptions, _Open, parse_body, validate_chat
from router.surfaces.base import Encoder, Surface
from router.surfaces.chat import ChatEncoder, error_event

DEFAULT_MAX_TOKENS = 16  # OpenAI's default for this endpoint
MAX_PROMPTS = 20  # prompts one request may batch
Name = Annotated[StrictStr, Field(min_length=1, max_length=256)]
# passed to the chat request as they are
_SAME = (
    "model",
    "max_tokens",
    "n",
    "temperature",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "stop",
    "seed",
    "user",
    "logit_bias",
    "stream",
    "stream_options",
    "fallbacks",
    "models",
    "timeout",
)


class CompletionsRequest(_Open):
    model: Name
    prompt: (
        StrictStr
        | Annotated[list[StrictStr], Field(min_length=1)]
        | Annotated[list[StrictInt], Field(min_length=1)]
        | Annotated[list[list[StrictInt]], Field(min_length=1)]
    )
    max_tokens: Annotated[StrictInt, Field(ge=0)] | None = None
    n: Annotated[StrictInt, Field(ge=1, le=128)] | None = None
    best_of: Annotated[StrictInt, Field(ge=1, le=20)] | None = None
    echo: StrictBool | None = None
    logprobs: Annotated[StrictInt, Field(ge=0, le=5)] | None = None
    suffix: StrictStr | None = None
    stream: StrictBool | None = None
    stream_options: StreamOptions | None = None
    temperature: Num | None = None
    top_p: Num | None = None
    fallbacks: Annotated[list[Name], Field(min_length=1, max_length=MAX_FALLBACKS)] | None = None
    models: Annotated[list[Name], Field(min_length=1, max_length=MAX_FALLBACKS + 1)] | None = None
    timeout: PosInt | Num | None = None


class Batch:
    """What the parts of a batched request share: how many there are, the usage and money of those
    done so far, and whether one failed."""

    def __init__(self, size: int):
        self.size = size
        self.usage: dict[str, Any] | None = None
        self.money: dict[str, Any] = {}
        self.failed = False

    def add(self, usage: dict[str, Any], money: dict[str, Any]) -> None:
        self.usage = usage if self.usage is None else _sum_usage(self.usage, usage)
        for k in ("cost_usd", "charge_usd"):
            mine, theirs = self.money.get(k, 0.0), money.get(k)
            self.money[k] = None if mine is None or theirs is None else mine + theirs
        self.money["usage_source"] = (
            "estimated"
            if "estimated" in (self.money.get("usage_source"), money.get("usage_source"))
            else money.get("usage_source")
        )
        self.money["price_version"] = money.get("price_version")


def _sum_usage(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in a.keys() | b.keys():
        x, y = a.get(k), b.get(k)
        out[k] = _sum_usage(x or {}, y or {}) if isinstance(x, dict) or isinstance(y, dict) else (x or 0) + (y or 0)
    return out


class Completions(Surface):
    endpoint = "completions"
    prompts: list[str] | None = None  # a batch's prompts
    offset = 0  # a batch part's first choice index
    batch: Batch | None = None
    last = True  # the batch's last part (or no batch)

    def parts(self) -> list["Completions"]:
        """The request, one part per prompt (a batch), or itself."""
        if not self.prompts or len(self.prompts) < 2:
            return [self]
        batch, n, out = Batch(len(self.prompts)), self.body.get("n") or 1, []
        for i, prompt in enumerate(self.prompts):
            part = Completions({**self.body, "prompt": prompt})
            part.offset, part.batch, part.last = i * n, batch, i == len(self.prompts) - 1
            out.append(part)
        return out

    def chat(self, *, max_messages: int, max_tokens_limit: int) -> dict[str, Any]:
        body = self.body
        req = parse_body(CompletionsRequest, body)
        prompt = req.prompt
        if isinstance(prompt, list):
            if not all(isinstance(p, str) for p in prompt):
                raise invalid_request(
                    "Token-id prompts are not supported by this gateway; send the prompt as text.",
                    param="prompt",
                    code="unsupported_value",
                )
            if len(prompt) > MAX_PROMPTS:
                raise invalid_request(
                    f"At most {MAX_PROMPTS} prompts in one request ({len(prompt)} sent).",
                    param="prompt",
                    code="invalid_value",
                )
            self.prompts = list(prompt)
            prompt = prompt[0]
        if req.suffix:
            raise invalid_request(
                "'suffix' (insertion) is not supported by this gateway.", param="suffix", code="unsupported_value"
            )
        if req.best_of is not None and req.best_of != (req.n or 1):
            raise invalid_request(
                "'best_of' other than 'n' is not supported by this gateway.", param="best_of", code="unsupported_value"
            )
        if req.max_tokens == 0:  # scoring a prompt (echo, logprobs): chat completions cannot give its log-probabilities
            raise invalid_request(
                "'max_tokens' of 0 (scoring the prompt) is not supported by this gateway: the "
                "prompt's log-probabilities are not available.",
                param="max_tokens",
                code="unsupported_value",
            )
        self.prompt = prompt
        self.echo = bool(req.echo)
        chat: dict[str, Any] = {k: body[k] for k in _SAME if k in body}
        chat["messages"] = [{"role": "user", "content": prompt}]
        chat["max_tokens"] = body.get("max_tokens") or DEFAULT_MAX_TOKENS
        if req.logprobs is not None:
            chat["logprobs"] = True
            if req.logprobs:
                chat["top_logprobs"] = req.logprobs
        validate_chat(chat, max_messages=max_messages, max_tokens_limit=max_tokens_limit)
        return chat

    def answer(self, out: dict[str, Any]) -> dict[str, Any]:
        head = self.prompt if self.echo else ""
        choices = []
        for ch in out["choices"]:
            msg = ch["message"]
            text = msg.get("content") or ""
            finish = ch["finish_reason"]
            choices.append(
                {
                    "text": head + text,
                    "index": ch["index"] + self.offset,
                    "logprobs": _legacy_logprobs(ch.get("logprobs"), len(head)),
                    "finish_reason": finish if finish in ("stop", "length", "content_filter") else "stop",
                }
            )
        answer = {
            "id": _cmpl_id(out["id"]),
            "object": "text_completion",
            "created": out["created"],
            "model": out["model"],
            "choices": choices,
            "usage": out["usage"],
        }
        if "system_fingerprint" in out:
            answer["system_fingerprint"] = out["system_fingerprint"]
        return answer

    def encoder(self, stream_id: str, created: int, model: str, client_usage: bool) -> Encoder:
        return _Stream(self, _cmpl_id(stream_id), created, model, client_usage)


def _cmpl_id(chat_id: str) -> str:
    return "cmpl-" + chat_id.removeprefix("chatcmpl-")


def _legacy_logprobs(lp: Any, offset: int) -> dict[str, Any] | None:
    """Chat log-probabilities (``content``: one entry per token) in the legacy shape."""
    if not isinstance(lp, dict) or not isinstance(lp.get("content"), list):
        return None
    tokens, logprobs, tops, offsets = [], [], [], []
    for entry in lp["content"]:
        if not isinstance(entry, dict):
            continue
        token = str(entry.get("token", ""))
        tokens.append(token)
        logprobs.append(entry.get("logprob"))
        tops.append(
            {str(t.get("token", "")): t.get("logprob") for t in entry.get("top_logprobs") or () if isinstance(t, dict)}
        )
        offsets.append(offset)
        offset += len(token)
    return {"tokens": tokens, "token_logprobs": logprobs, "top_logprobs": tops, "text_offset": offsets}


class _Stream(ChatEncoder):
    """Legacy chunks (``text_completion`` objects); errors and ``[DONE]`` as chat's."""

    def __init__(self, surface: Completions, sid: str, created: int, model: str, client_usage: bool):
        super().__init__(sid, created, model, client_usage)
        self.s = surface
        self.offsets: dict[int, int] = {}

    def _event(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        obj = {
            "id": self.stream_id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            **extra,
        }
        return b"data: " + orjson.dumps(obj) + b"\n\n"

    def begin(self) -> bytes:
        if not self.s.echo:
            return b""
        n, first = self.s.body.get("n") or 1, self.s.offset
        for i in range(n):
            self.offsets[i] = len(self.s.prompt)
        return self._event(
            [{"text": self.s.prompt, "index": first + i, "logprobs": None, "finish_reason": None} for i in range(n)]
        )

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        choices = []
        for ch in chunk["choices"]:
            text = ch["delta"].get("content") or ""
            finish = ch["finish_reason"]
            if not text and finish is None:
                continue  # the role-only opening delta, a tool-call delta
            i = ch["index"]
            at = self.offsets.get(i, 0)
            lp = _legacy_logprobs(ch.get("logprobs"), at)
            self.offsets[i] = at + len(text)
            choices.append(
                {
                    "text": text,
                    "index": i + self.s.offset,
                    "logprobs": lp,
                    "finish_reason": finish if finish in (None, "stop", "length", "content_filter") else "stop",
                }
            )
        return self._event(choices) if choices else b""

    def end(self, usage: dict[str, Any], money: dict[str, Any]) -> bytes:
        batch = self.s.batch
        if batch is not None:  # a batch's parts: one usage chunk and one [DONE], after the last
            batch.add(usage, money)
            if not self.s.last:
                return b""
            usage, money = batch.usage or usage, batch.money
        tail = self._event([], usage=usage, switchyard=money) if self.client_usage else b""
        return tail + b"data: [DONE]\n\n"

    def fail(self, message: str, code: str) -> bytes:
        if self.s.batch is not None:
            self.s.batch.failed = True
        return super().fail(message, code)


async def serve_batch(parts: Sequence[Any], rid: str, serve: Callable[[Any, str], Awaitable[Response]]) -> Response:
    """A batch's parts served as requests of their own (``<rid>-<i>``) and answered as one."""
    ids = [f"{rid}-{i}" for i in range(len(parts))]
    if parts[0].stream:
        return await _stream_batch(parts, ids, serve)
    answers = await asyncio.gather(*(serve(p, i) for p, i in zip(parts, ids)))
    bodies = [orjson.loads(a.body) for a in answers]
    out = {**bodies[0], "choices": [c for b in bodies for c in b["choices"]]}
    usage = bodies[0]["usage"]
    for b in bodies[1:]:
        usage = _sum_usage(usage, b["usage"])
    out["usage"] = usage
    headers = dict(answers[0].headers)
    for name in ("x-switchyard-cost-usd", "x-switchyard-charge-usd"):
        values = [a.headers.get(name) for a in answers]
        known = [float(v) for v in values if v is not None and v != "unpriced"]
        headers[name] = "unpriced" if len(known) < len(values) else repr(sum(known))
    headers["x-switchyard-attempts"] = str(sum(int(a.headers.get("x-switchyard-attempts", "1")) for a in answers))
    if any(a.headers.get("x-switchyard-usage-source") == "estimated" for a in answers):
        headers["x-switchyard-usage-source"] = "estimated"
    headers["x-switchyard-batch-request-ids"] = ",".join(ids)
    for drop in ("content-length", "content-type"):
        headers.pop(drop, None)
    return Response(orjson.dumps(out), media_type="application/json", headers=headers)


async def _stream_batch(
    parts: Sequence[Any], ids: list[str], serve: Callable[[Any, str], Awaitable[Response]]
) -> Response:
    first = await serve(parts[0], ids[0])
    assert isinstance(first, SSEResponse)
    current: list[SSEResponse] = [first]

    async def relay() -> AsyncIterator[bytes]:
        for k in range(len(parts)):
            if k:
                try:
                    nxt = await serve(parts[k], ids[k])
                    assert isinstance(nxt, SSEResponse)
                    current[0] = nxt
                except APIError as exc:  # a later part refused (a budget, a limit): the stream ends with it
                    yield error_event(exc.message, exc.code or "error")
                    return
            part = current[0]
            try:
                async for chunk in part.body_iterator:
                    yield chunk
            finally:
                await part.body_iterator.aclose()  # type: ignore[attr-defined]
                if part.on_close is not None:
                    await part.on_close()
            batch = parts[k].batch
            if batch is not None and batch.failed:
                return

    async def close() -> None:
        part = current[0]
        await part.body_iterator.aclose()  # type: ignore[attr-defined]
        if part.on_close is not None:
            await part.on_close()

    headers = {k: v for k, v in first.headers.items() if k.startswith("x-")}
    headers["x-switchyard-batch-request-ids"] = ",".join(ids)
    return SSEResponse(relay(), headers=headers, on_close=close)


Completions.serve_batch = staticmethod(serve_batch)  # type: ignore[method-assign]
