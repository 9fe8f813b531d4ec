"""Simulated providers: stand-ins for real price/quality tiers, for the embedded default,
demos and tests. No network; realistic timing, real token counts, deterministic content for
a given ``seed``, and failure injection set in config."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
import struct
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, AsyncGenerator

import orjson
import yaml

from router.backends import simtext
from router.backends.kind import BackendKind, BuildContext, Built
from router.backends.base import (
    Call,
    UpstreamRejected,
    UpstreamRateLimited,
    UpstreamServerError,
    UpstreamStreamCut,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from router.tokens import Tokenizer

CACHE_MIN_TOKENS = 1024  # providers cache prompt prefixes from 1,024 tokens, in 128-token steps


def load_profiles() -> dict[str, dict[str, Any]]:
    text = resources.files("router.defaults").joinpath("simulated.yaml").read_text()
    return yaml.safe_load(text)["profiles"]


@dataclass
class SimSettings:
    """A simulated deployment: its profile, with any field overridden by the deployment's params."""

    name: str
    stands_in_for: str
    ttft_ms: float = 200.0
    tokens_per_second: float = 100.0
    quality: float = 0.5
    mode: str = "chat"
    dimensions: int = 1536
    reasoning_ratio: float = 0.0
    context_window: int = 128000
    capabilities: list[str] = field(default_factory=list)
    region: str = "us"
    self_hosted: bool = False
    # failure injection: probabilities per request, drawn from a seeded generator
    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    timeout_rate: float = 0.0
    stream_cut_rate: float = 0.0
    failure_seed: int = 0
    speed: float = 1.0  # divides every delay; tests run the same profile faster

    @classmethod
    def from_params(cls, name: str, params: dict[str, Any]) -> "SimSettings":
        profiles = load_profiles()
        if name not in profiles:
            raise ValueError(f"unknown simulated model '{name}'; choose one of: {', '.join(sorted(profiles))}")
        merged = {**profiles[name], **{k: v for k, v in params.items() if k in cls.__dataclass_fields__}}
        return cls(name=name, **merged)


class SimulatedBackend:
    def __init__(self, settings: SimSettings, tokenizer: Tokenizer):
        self.s = settings
        self._tok = tokenizer
        self._failures = random.Random(settings.failure_seed)
        self._prefixes: OrderedDict[bytes, int] = OrderedDict()

    # -- helpers ------------------------------------------------------------------------------
    async def _sleep(self, seconds: float) -> None:
        if seconds > 0 and self.s.speed > 0:
            await asyncio.sleep(seconds / self.s.speed)

    async def _answer_within(self, seconds: float, call: Call) -> None:
        """The simulated time to the answer (a stream: its first chunk), held to the call's timeout as a
        real upstream's would be."""
        wait = seconds / self.s.speed if self.s.speed > 0 else 0.0
        if wait > call.timeout:
            await asyncio.sleep(call.timeout)
            raise UpstreamTimeout(f"simulated provider '{self.s.name}' did not answer within {call.timeout:g} s")
        await asyncio.sleep(max(wait, 0.0))

    async def _maybe_fail(self, call: Call) -> bool:
        """Raise an injected failure; return True when the stream should be cut later."""
        r = self._failures.random()
        s = self.s
        if r < s.error_rate:
            raise (UpstreamUnavailable if self._failures.random() < 0.5 else UpstreamServerError)(
                f"simulated provider '{s.name}' failed (injected)", upstream_status=503
            )
        r -= s.error_rate
        if r < s.rate_limit_rate:
            raise UpstreamRateLimited(
                f"simulated provider '{s.name}' is rate limited (injected)", upstream_status=429, retry_after=1.0
            )
        r -= s.rate_limit_rate
        if r < s.timeout_rate:
            await asyncio.sleep(call.timeout)
            raise UpstreamTimeout(f"simulated provider '{s.name}' timed out (injected)")
        r -= s.timeout_rate
        return r < s.stream_cut_rate

    def _rng(self, body: dict[str, Any]) -> random.Random:
        seed = body.get("seed")
        if isinstance(seed, int) and not isinstance(seed, bool):
            basis = orjson.dumps(
                [self.s.name, seed, body.get("messages"), body.get("input")], option=orjson.OPT_SORT_KEYS
            )
            return random.Random(hashlib.sha256(basis).digest())
        return random.Random()

    def _cached_tokens(self, messages: list[dict[str, Any]], prompt_tokens: int) -> int:
        """Simulated prompt caching, as providers do it: the longest prefix of whole messages an
        earlier prompt began with is a cache hit (in 128-token blocks, from CACHE_MIN_TOKENS). Each
        prompt is remembered whole and without its last message (a retry, an agent's next turn)."""
        if len(messages) < 2:
            return 0
        h, keys = hashlib.sha256(), []
        for m in messages:
            h.update(orjson.dumps(m))
            keys.append(h.digest())
        prefix = 0
        for k in range(len(keys) - 2, -1, -1):  # a strict prefix: the newest message is never cached
            hit = self._prefixes.get(keys[k])
            if hit is not None:
                self._prefixes.move_to_end(keys[k])
                prefix = hit
                break
        for k in (len(keys) - 2, len(keys) - 1):
            if keys[k] not in self._prefixes:
                self._prefixes[keys[k]] = self._tok.count_messages(self.s.stands_in_for, messages[: k + 1])
                if len(self._prefixes) > 4096:
                    self._prefixes.popitem(last=False)
        return (min(prefix, prompt_tokens) // 128) * 128 if prefix >= CACHE_MIN_TOKENS else 0

    # -- answer construction --------------------------------------------------------------------
    def _choice(self, body: dict[str, Any], rng: random.Random, index: int) -> dict[str, Any]:
        """One choice: its message, finish reason and the token strings it is made of."""
        model = self.s.stands_in_for
        limit = body.get("max_completion_tokens") or body.get("max_tokens") or 4096
        tools = body.get("tools") or []
        choice = body.get("tool_choice", "auto")
        last_role = (body["messages"][-1] or {}).get("role")
        if tools and choice != "none" and (choice in ("required",) or isinstance(choice, dict) or last_role != "tool"):
            if isinstance(choice, dict):
                wanted = (choice.get("function") or {}).get("name")
                fn = next(
                    (t["function"] for t in tools if t.get("function", {}).get("name") == wanted), tools[0]["function"]
                )
            else:
                fn = rng.choice(tools)["function"]
            args = orjson.dumps(
                simtext.instance(
                    _checked(fn.get("parameters") or {"type": "object"}, f"tools.{fn['name']}.parameters"), rng
                )
            ).decode()
            call = {
                "id": "call_" + uuid.UUID(int=rng.getrandbits(128)).hex[:24],
                "type": "function",
                "function": {"name": fn["name"], "arguments": args},
            }
            pieces = [args[i : i + 8] for i in range(0, len(args), 8)] or [""]
            return {
                "message": {"role": "assistant", "content": None, "refusal": None, "tool_calls": [call]},
                "finish_reason": "tool_calls",
                "pieces": pieces,
                "tokens": self._tok.count(model, fn["name"] + args) + 4,
            }
        fmt = body.get("response_format") or {}
        if fmt.get("type") == "json_schema":
            schema = _checked((fmt.get("json_schema") or {}).get("schema") or {}, "response_format.json_schema.schema")
            text = orjson.dumps(simtext.instance(schema, rng)).decode()
        elif fmt.get("type") == "json_object":
            text = orjson.dumps({"answer": simtext.prose(rng, rng.randint(8, 30))}).decode()
        else:
            text = simtext.prose(rng, rng.randint(12, 160))
        ids = self._tok.encode(model, text)
        finish = "stop"
        if len(ids) > limit:
            ids, finish = ids[:limit], "length"
        pieces = [self._tok.decode(model, [t]) for t in ids]
        text = "".join(pieces)
        stops = body.get("stop")
        for stop in [stops] if isinstance(stops, str) else (stops or []):
            if stop and stop in text:
                text = text[: text.index(stop)]
                ids = self._tok.encode(model, text)
                pieces = [self._tok.decode(model, [t]) for t in ids]
                finish = "stop"
        return {
            "message": {"role": "assistant", "content": text, "refusal": None},
            "finish_reason": finish,
            "pieces": pieces,
            "tokens": len(ids),
        }

    def _answer(self, body: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any], random.Random]:
        rng = self._rng(body)
        n = body.get("n") or 1
        choices = [self._choice(body, rng, i) for i in range(n)]
        prompt = self._tok.count_messages(self.s.stands_in_for, body["messages"], body.get("tools"))
        completion = sum(c["tokens"] for c in choices)
        reasoning = int(completion * self.s.reasoning_ratio)
        cached = self._cached_tokens(body["messages"], prompt)
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion + reasoning,
            "total_tokens": prompt + completion + reasoning,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": reasoning,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }
        return choices, usage, rng

    def _logprobs(self, body: dict[str, Any], choice: dict[str, Any], rng: random.Random) -> dict[str, Any] | None:
        if not body.get("logprobs") or choice["finish_reason"] == "tool_calls":
            return None
        return {
            "content": simtext.logprob_entries(choice["pieces"], rng, int(body.get("top_logprobs") or 0)),
            "refusal": None,
        }

    def _envelope(self, obj: str) -> dict[str, Any]:
        return {
            "id": "chatcmpl-sim" + uuid.uuid4().hex[:20],
            "object": obj,
            "created": int(time.time()),
            "model": self.s.stands_in_for,
            "system_fingerprint": f"sim-{self.s.name}",
        }

    # -- the interface --------------------------------------------------------------------------
    async def chat(self, call: Call) -> dict[str, Any]:
        await self._maybe_fail(call)
        body = call.body
        choices, usage, rng = self._answer(body)
        decode_tokens = max(c["tokens"] for c in choices) + usage["completion_tokens_details"]["reasoning_tokens"]
        await self._answer_within(self.s.ttft_ms / 1000 + decode_tokens / max(self.s.tokens_per_second, 1e-9), call)
        out = self._envelope("chat.completion")
        out["choices"] = [
            {
                "index": i,
                "message": c["message"],
                "logprobs": self._logprobs(body, c, rng),
                "finish_reason": c["finish_reason"],
            }
            for i, c in enumerate(choices)
        ]
        out["usage"] = usage
        return out

    async def chat_stream(self, call: Call) -> AsyncGenerator[dict[str, Any], None]:
        cut = await self._maybe_fail(call)
        body = call.body
        choices, usage, rng = self._answer(body)
        reasoning = usage["completion_tokens_details"]["reasoning_tokens"]
        per_token = 1.0 / max(self.s.tokens_per_second, 1e-9)
        await self._answer_within(self.s.ttft_ms / 1000 + reasoning * per_token, call)
        env = self._envelope("chat.completion.chunk")

        def chunk(choices_: list[dict[str, Any]], usage_: Any = None) -> dict[str, Any]:
            c = dict(env, choices=choices_)
            if usage_ is not None:
                c["usage"] = usage_
            return c

        for i, c in enumerate(choices):
            yield chunk(
                [{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}]
            )
        total_pieces = sum(len(c["pieces"]) for c in choices)
        cut_at = total_pieces // 2 if cut else -1
        emitted = 0
        for i, c in enumerate(choices):
            lps = self._logprobs(body, c, rng)
            tool = (c["message"].get("tool_calls") or [None])[0]
            for j, piece in enumerate(c["pieces"]):
                if emitted == cut_at:
                    raise UpstreamStreamCut(f"simulated provider '{self.s.name}' cut the stream (injected)")
                emitted += 1
                await self._sleep(per_token)
                if tool is not None:
                    fn = {"arguments": piece}
                    tc = {"index": 0, "function": fn}
                    if j == 0:
                        tc.update(id=tool["id"], type="function")
                        fn["name"] = tool["function"]["name"]
                    delta: dict[str, Any] = {"tool_calls": [tc]}
                else:
                    delta = {"content": piece}
                lp = {"content": [lps["content"][j]], "refusal": None} if lps else None
                yield chunk([{"index": i, "delta": delta, "logprobs": lp, "finish_reason": None}])
            yield chunk([{"index": i, "delta": {}, "logprobs": None, "finish_reason": c["finish_reason"]}])
        opts = body.get("stream_options") or {}
        if opts.get("include_usage"):
            yield chunk([], usage)

    async def embeddings(self, call: Call) -> dict[str, Any]:
        await self._maybe_fail(call)
        body = call.body
        inputs = body["input"]
        if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int)):
            inputs = [inputs]
        dims = body.get("dimensions") or self.s.dimensions
        if dims > self.s.dimensions:  # as a real model: it cannot answer wider than it is
            raise UpstreamRejected(
                f"'dimensions' must be at most {self.s.dimensions} for this model.", upstream_status=400
            )
        data, tokens = [], 0
        for i, item in enumerate(inputs):
            if isinstance(item, str):
                tokens += self._tok.count(self.s.stands_in_for, item)
                basis = item.encode()
            else:
                tokens += len(item)
                basis = orjson.dumps(item)
            vec = simtext.embedding(int.from_bytes(hashlib.sha256(basis).digest()[:8], "big"), dims)
            if body.get("encoding_format") == "base64":
                emb: Any = base64.b64encode(struct.pack(f"<{dims}f", *vec)).decode()
            else:
                emb = vec
            data.append({"object": "embedding", "index": i, "embedding": emb})
        await self._answer_within(self.s.ttft_ms / 1000, call)
        return {
            "object": "list",
            "data": data,
            "model": self.s.stands_in_for,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    async def aclose(self) -> None:
        return None


def _checked(schema: Any, where: str) -> Any:
    """The schema, or a 400 before any generation when it is malformed or too large to instantiate."""
    try:
        simtext.check_schema(schema)
    except simtext.SchemaError as exc:
        raise UpstreamRejected(f"Invalid schema for '{where}': {exc}.", upstream_status=400) from None
    return schema


class SimulatedKind(BackendKind):
    """``simulated/<tier>``: a built-in stand-in priced as the model it stands in for."""

    name = "simulated"

    def serves(self, provider: str) -> bool:
        return provider == "simulated"

    def build(self, ctx: BuildContext) -> Built:
        sim = SimSettings.from_params(ctx.upstream, ctx.extra)
        return Built(
            SimulatedBackend(sim, ctx.tokenizer),
            sim.stands_in_for if sim.stands_in_for in ctx.catalog else None,
            {
                "mode": sim.mode,
                "region": sim.region,
                "self_hosted": sim.self_hosted,
                "capabilities": sim.capabilities,
                "max_input_tokens": sim.context_window,
                "quality": sim.quality,
                "reasoning_allowance": sim.reasoning_ratio,
            },
        )
