"""OpenAI's legacy completions (``POST /v1/completions``): a prompt in, text out.

The prompt becomes one user message; the answer's text (after the prompt when ``echo`` is set) and
its log-probabilities come back in the legacy shape (``tokens``, ``token_logprobs``,
``top_logprobs``, ``text_offset``). ``max_tokens`` defaults to 16, as OpenAI's does.
Not served: several prompts in one request (a batch), token-id prompts and ``suffix`` (insertion):
each gets a 400 saying so rather than a silently different answer.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from pydantic import Field, StrictBool, StrictInt, StrictStr, ValidationError

from router.errors import invalid_request
from router.protocol import MAX_FALLBACKS, Num, PosInt, StreamOptions, _Open, _validation_error, validate_chat
from router.surfaces.base import Encoder, Surface
from router.surfaces.chat import ChatEncoder

DEFAULT_MAX_TOKENS = 16  # OpenAI's default for this endpoint
Name = Annotated[StrictStr, Field(min_length=1, max_length=256)]
# passed to the chat request as they are
_SAME = ("model", "max_tokens", "n", "temperature", "top_p", "presence_penalty", "frequency_penalty", "stop", "seed",
         "user", "logit_bias", "stream", "stream_options", "fallbacks", "models", "timeout")


class CompletionsRequest(_Open):
    model: Name
    prompt: (StrictStr | Annotated[list[StrictStr], Field(min_length=1)] | Annotated[list[StrictInt], Field(min_length=1)]
             | Annotated[list[list[StrictInt]], Field(min_length=1)])
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


class Completions(Surface):
    endpoint = "completions"

    def chat(self, *, max_messages: int, max_tokens_limit: int) -> dict[str, Any]:
        body = self.body
        try:
            req = CompletionsRequest.model_validate(body)
        except ValidationError as exc:
            raise _validation_error(exc) from None
        prompt = req.prompt
        if isinstance(prompt, list):
            if not all(isinstance(p, str) for p in prompt):
                raise invalid_request("Token-id prompts are not supported by this gateway; send the prompt as text.",
                                      param="prompt", code="unsupported_value")
            if len(prompt) > 1:
                raise invalid_request(f"This gateway serves one prompt per request; send the {len(prompt)} prompts "
                                      "as separate requests.", param="prompt", code="unsupported_value")
            prompt = prompt[0]
        if req.suffix:
            raise invalid_request("'suffix' (insertion) is not supported by this gateway.", param="suffix",
                                  code="unsupported_value")
        if req.best_of is not None and req.best_of != (req.n or 1):
            raise invalid_request("'best_of' other than 'n' is not supported by this gateway.", param="best_of",
                                  code="unsupported_value")
        if req.max_tokens == 0:  # scoring a prompt (echo, logprobs): chat completions cannot give its log-probabilities
            raise invalid_request("'max_tokens' of 0 (scoring the prompt) is not supported by this gateway: the "
                                  "prompt's log-probabilities are not available.", param="max_tokens",
                                  code="unsupported_value")
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
            choices.append({"text": head + text, "index": ch["index"],
                            "logprobs": _legacy_logprobs(ch.get("logprobs"), len(head)),
                            "finish_reason": finish if finish in ("stop", "length", "content_filter") else "stop"})
        answer = {"id": _cmpl_id(out["id"]), "object": "text_completion", "created": out["created"],
                  "model": out["model"], "choices": choices, "usage": out["usage"]}
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
        tops.append({str(t.get("token", "")): t.get("logprob") for t in entry.get("top_logprobs") or ()
                     if isinstance(t, dict)})
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
        obj = {"id": self.stream_id, "object": "text_completion", "created": self.created, "model": self.model,
               "choices": choices, **extra}
        return b"data: " + orjson.dumps(obj) + b"\n\n"

    def begin(self) -> bytes:
        if not self.s.echo:
            return b""
        n = self.s.body.get("n") or 1
        for i in range(n):
            self.offsets[i] = len(self.s.prompt)
        return self._event([{"text": self.s.prompt, "index": i, "logprobs": None, "finish_reason": None}
                            for i in range(n)])

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
            choices.append({"text": text, "index": i, "logprobs": lp,
                            "finish_reason": finish if finish in (None, "stop", "length", "content_filter") else "stop"})
        return self._event(choices) if choices else b""

    def end(self, usage: dict[str, Any], money: dict[str, Any]) -> bytes:
        tail = self._event([], usage=usage, switchyard=money) if self.client_usage else b""
        return tail + b"data: [DONE]\n\n"
