"""The exact response cache: an identical chat request answered again without an upstream call.

Opt-in: a request is cached when its model or alias is in ``cache.models``, its key in
``cache.keys`` or the policy bound to it in ``cache.policies``, and it is deterministic: its
``temperature`` is 0, or it says ``"cache": true`` (``"cache": false`` opts out). A client's
``Cache-Control: no-cache`` skips the lookup (the fresh answer is stored). The key is a SHA-256 of
the endpoint, the tenant (unless ``cache.shared_across_tenants``) and the request with its keys
sorted, less the fields that do not change the answer (``stream``, ``stream_options``, ``user``,
``metadata``, ``cache``, ``timeout``). Answers are kept ``cache.ttl`` seconds in Redis when the
gateway has it (every replica answers from it), else in this process's memory (an LRU of
``max_entries``); an answer over ``max_entry_bytes`` is not kept. Chat completions only: a
streamed request is answered from a cached answer as a stream, and a streamed answer is kept when
it is plain text in one choice (a streamed tool call is not assembled, so not kept).

A hit is a ledger record like any other, with ``cache: hit``, no upstream tokens, cost or charge
(``usage_source: cache``; the client's answer carries the replayed answer's usage), and
``saved_usd``: the API cost of the answer it replayed. The Savings view shows what the cache saved
beside what routing saved. Rate limits count a hit; budgets are not charged for it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, AsyncIterator, Mapping

import orjson
from starlette.responses import Response

from pricing import Usage
from router.config_sections import CacheConfig
from router.accounting.metering import Priced
from router.accounting.state import StateStore

if TYPE_CHECKING:
    from router.exchange import Exchange
    from router.proxy import Gateway
    from router.registry import Deployment

log = logging.getLogger("switchyard.cache")
IGNORED = frozenset({"stream", "stream_options", "user", "metadata", "cache", "timeout"})


class ResponseCache:
    def __init__(self, cfg: CacheConfig, state: StateStore):
        self.cfg = cfg
        self.state = state
        self.models, self.keys, self.policies = frozenset(cfg.models), frozenset(cfg.keys), frozenset(cfg.policies)
        self._memory: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self.writes: set[asyncio.Task[None]] = set()

    @property
    def active(self) -> bool:
        return bool(self.models or self.keys or self.policies)

    def wanted(self, key_id: str, body: Mapping[str, Any], policy: str | None) -> bool:
        """Whether this request is cached: opted in by model, key or policy, and deterministic."""
        flag = body.get("cache")
        if flag is False or not (
            body.get("model") in self.models or key_id in self.keys or (policy is not None and policy in self.policies)
        ):
            return False
        return flag is True or body.get("temperature") == 0

    def key(self, tenant: str, endpoint: str, body: Mapping[str, Any]) -> str:
        scope = "*" if self.cfg.shared_across_tenants else tenant
        canon = orjson.dumps({k: v for k, v in body.items() if k not in IGNORED}, option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(scope.encode() + b"\x00" + endpoint.encode() + b"\x00" + canon).hexdigest()

    async def get(self, key: str) -> dict[str, Any] | None:
        if self.state.shared:
            try:
                raw = await self.state.cache_get(key)
            except Exception as exc:  # noqa: BLE001 - Redis down: a miss
                log.debug("cache read failed: %s", type(exc).__name__)
                return None
        else:
            held = self._memory.get(key)
            raw = None
            if held is not None:
                if held[0] > time.monotonic():
                    self._memory.move_to_end(key)
                    raw = held[1]
                else:
                    del self._memory[key]
        return orjson.loads(raw) if raw else None

    async def put(self, key: str, entry: dict[str, Any]) -> None:
        raw = orjson.dumps(entry)
        if len(raw) > self.cfg.max_entry_bytes:
            return
        if self.state.shared:
            try:
                await self.state.cache_set(key, raw, self.cfg.ttl)
            except Exception as exc:  # noqa: BLE001 - not kept: the next one is a miss
                log.debug("cache write failed: %s", type(exc).__name__)
            return
        self._memory[key] = (time.monotonic() + self.cfg.ttl, raw)
        self._memory.move_to_end(key)
        while len(self._memory) > self.cfg.max_entries:
            self._memory.popitem(last=False)


def cached_answer(gw: "Gateway", ex: "Exchange", hit: dict[str, Any]) -> Response:
    """The client's answer from a cache hit (JSON, or replayed as a stream); the exchange is priced at
    zero with the saving, and its close records it."""
    from router.sse import SSEResponse
    from router.surfaces.chat import ChatEncoder

    dep = gw.planner.registry.by_id(hit["deployment"])
    # the client gets the answer's usage; the ledger gets what went upstream: nothing (its saving aside)
    usage = Usage.from_openai(hit["usage"], source="cache") or Usage(0, 0, source="cache")
    ex.cached = Priced(usage=Usage(0, 0, source="cache"), cost_usd=0.0, price_version="cache", charge_usd=0.0)
    ex.saved_usd = hit.get("cost_usd")
    ex.dep, ex.status = dep, 200
    answer = {**hit["answer"], "id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time())}
    headers = {
        "x-switchyard-model": hit["model"],
        "x-switchyard-provider": hit["provider"],
        "x-switchyard-attempts": "0",
        "x-switchyard-cache": "hit",
        "x-switchyard-cost-usd": ex.cached.header(),
        "x-switchyard-charge-usd": ex.cached.charge_header(),
        "x-switchyard-usage-source": "cache",
        "x-switchyard-saved-usd": "unpriced" if ex.saved_usd is None else f"{ex.saved_usd:.10f}",
        **(ex.ticket.headers if ex.ticket is not None else {}),
    }
    if not ex.stream:
        return Response(orjson.dumps(answer), media_type="application/json", headers=headers)
    ex.first_chunk_at = time.perf_counter()
    client_usage = bool((ex.body.get("stream_options") or {}).get("include_usage"))
    enc = ChatEncoder(answer["id"], answer["created"], answer["model"], client_usage)

    async def replay() -> AsyncIterator[bytes]:
        """The whole answer at once (it is all here): one write."""
        base = {
            "id": answer["id"],
            "object": "chat.completion.chunk",
            "created": answer["created"],
            "model": answer["model"],
        }
        out = []
        for ch in answer.get("choices") or ():
            msg = ch.get("message") or {}
            delta = {"role": "assistant", "content": msg.get("content")}
            if msg.get("tool_calls"):
                delta["tool_calls"] = [{**tc, "index": i} for i, tc in enumerate(msg["tool_calls"])]
            out.append(
                enc.chunk({**base, "choices": [{"index": ch.get("index", 0), "delta": delta, "finish_reason": None}]})
            )
            finish = ch.get("finish_reason") or "stop"
            out.append(
                enc.chunk({**base, "choices": [{"index": ch.get("index", 0), "delta": {}, "finish_reason": finish}]})
            )
        out.append(
            enc.end(
                usage.to_openai(),
                {"cost_usd": 0.0, "charge_usd": 0.0, "usage_source": "cache", "saved_usd": ex.saved_usd},
            )
        )
        yield b"".join(out)

    return SSEResponse(replay(), headers=headers)


def keep(gw: "Gateway", ex: "Exchange", dep: "Deployment", out: dict[str, Any], priced: Priced) -> None:
    """A miss answered: keep its answer for the next identical request (off the response path)."""
    cache = gw.cache
    if cache is None or ex.cache_key is None:
        return
    entry = {
        "answer": out,
        "usage": out.get("usage"),
        "cost_usd": priced.cost_usd,
        "model": dep.model_name,
        "provider": dep.provider,
        "deployment": dep.id,
    }
    task = asyncio.get_running_loop().create_task(cache.put(ex.cache_key, entry))
    cache.writes.add(task)
    task.add_done_callback(cache.writes.discard)
