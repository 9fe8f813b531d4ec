"""Serving one OpenAI request: open its exchange, plan the route, admit it (rate limits, budget
reservation), hand it to its execution strategy (router.strategies: single with fallbacks, cascade,
stream), and close the exchange once, whatever happened (which settles and records it).
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from starlette.responses import Response

from router.auth import Principal
from router.errors import APIError
from router.exchange import Exchange
from router.accounting.attribution import Attribution
from router.cache import ResponseCache, cached_answer
from router.health import Health
from router.telemetry import Telemetry
from router.accounting.limits import Limiter
from router.accounting.metering import Meter
from router.planning import Planner
from router.registry import Deployment
from router.strategies import Cascade, Single, Streamed
from router.surfaces.base import Surface


class Gateway:
    def __init__(
        self,
        planner: Planner,
        meter: Meter,
        limiter: Limiter,
        health: Health,
        telemetry: Telemetry | None = None,
        attribution: Attribution | None = None,
        cache: ResponseCache | None = None,
    ):
        self.planner = planner
        self.cache = cache if cache is not None and cache.active else None  # router.cache
        self.attribution = attribution  # a request's user and tags (router.accounting.attribution)
        self.telemetry = telemetry  # OpenTelemetry (router.telemetry), None when off
        self.meter = meter
        self.limiter = limiter
        self.health = health
        self.load = planner.registry.load  # calls in flight, latency and usage per deployment (router.balancing)

    # -- shared steps ---------------------------------------------------------------------------------
    async def _admit(
        self, ex: Exchange, cands: list[Deployment], mode: str, cascade: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Rate limits and budget reservation for this request; the body the upstream calls send (the
        client's, with an output bound added when nothing else bounds a budgeted answer). A cascade
        reserves for every call it may make: each step, and its checking models (judges: at every step
        but the last), each at the dearest step's worst case. A reasoning model reserves its reasoning
        allowance beyond the output bound."""
        body = ex.body
        if not self.limiter.active:
            return body
        who = ex.who
        if not self.limiter.counts_tokens:
            ex.ticket = await self.limiter.admit(
                who, body["model"], 0, None, request_id=ex.request_id, now=ex.started_wall, attrs=ex.attrs
            )
            return body
        cfg = self.limiter.cfg
        asked = body.get("max_completion_tokens") or body.get("max_tokens")
        n = body.get("n") or 1
        outs, prices = [], [dep.price(self.meter.catalog) for dep in cands]
        for dep, price in zip(cands, prices):
            out = 0
            if mode == "chat":
                bound = asked or (price.max_output_tokens if price is not None else None)
                if bound is None:
                    # Nothing bounds the answer: cap it, so the reservation is a true upper bound.
                    bound = asked = cfg.default_max_tokens
                    body = {**body, "max_tokens": bound}
                out = math.ceil(bound * (1 + dep.reasoning_allowance)) * n
            outs.append(out)
        model = body["model"]
        calls = len(cands) + cascade["check"].calls(len(cands)) if cascade else 1

        def need(exact: bool = False) -> tuple[int, float]:
            """Tokens and the worst-case charge to reserve: by the prompt's byte bound, or its count."""
            prompt = int(self.meter.prompt_bound(cands[0], body, exact=exact) * cfg.prompt_safety) + 32
            worst = max(self.meter.worst_at(p, who.tenant, model, prompt, o) for p, o in zip(prices, outs))
            # a cascade: every step, and every call its check makes, at the dearest candidate's worst case
            return prompt + max(outs), worst * calls

        tokens, charge = need()
        ex.ticket = await self.limiter.admit(
            who,
            model,
            tokens,
            charge,
            request_id=ex.request_id,
            now=ex.started_wall,
            attrs=ex.attrs,
            exact=lambda: need(exact=True),
        )
        return body

    # -- the entry points -------------------------------------------------------------------------------
    async def _cached(self, ex: Exchange, no_cache: bool) -> Response | None:
        """The cached answer to this request (a hit), or None; on a miss, the key its answer is kept under."""
        cache, body = self.cache, ex.body
        assert cache is not None
        if ex.who.models is not None and body["model"] not in ex.who.models:
            return None  # a key that may not use the model gets planning's refusal, never a cached answer
        policy = self.planner.policy_for(ex.who, body["model"]) if cache.policies else None
        if not cache.wanted(ex.who.key_id, body, policy):
            return None
        key = cache.key(ex.who.tenant, "chat", body)
        hit = None if no_cache else await cache.get(key)
        self.meter.metrics.cache.labels("bypass" if no_cache else "hit" if hit else "miss").inc()
        if hit is None:
            ex.cache_key = key
            return None
        if self.limiter.active:  # a hit is a request: rate limits count it; it costs nothing
            ex.ticket = await self.limiter.admit(
                ex.who, body["model"], 0, None, request_id=ex.request_id, now=ex.started_wall, attrs=ex.attrs
            )
        return cached_answer(self, ex, hit)

    def _open(
        self,
        who: Principal,
        body: dict[str, Any],
        rid: str,
        endpoint: str,
        surface: Surface | None,
        stream: bool = False,
    ) -> Exchange:
        ex = Exchange(self, who, body, rid, endpoint, stream=stream, surface=surface)
        if self.telemetry is not None:
            ex.trace = self.telemetry.request()
        return ex

    async def _before_planning(
        self, ex: Exchange, tags: str | None, no_cache: bool, cacheable: bool
    ) -> Response | None:
        """The request's user and tags; then, for a chat completion, its cached answer if it has one."""
        if self.attribution is not None and ("user" in ex.body or self.attribution.keys):
            ex.attrs = await self.attribution.resolve(ex.who.tenant, ex.body, tags)
        if self.cache is not None and cacheable:
            return await self._cached(ex, no_cache)
        return None

    async def unary(
        self,
        who: Principal,
        body: dict[str, Any],
        rid: str,
        *,
        endpoint: str,
        surface: Surface | None = None,
        tags: str | None = None,
        no_cache: bool = False,
    ) -> Response:
        """A non-streaming chat completion or embeddings request (``surface``: answered in another
        API's shape; ``body`` is then the surface's internal chat request)."""
        mode = "embedding" if endpoint == "embeddings" else "chat"
        ex = self._open(who, body, rid, endpoint, surface)
        try:
            answer = await self._before_planning(ex, tags, no_cache, endpoint == "chat" and surface is None)
            if answer is not None:
                return answer
            ex.plan = plan = await self.planner.plan(who, body, mode, rid)
            spec = plan.decision.cascade if plan.decision is not None else None
            sent = await self._admit(ex, plan.deployments, mode, cascade=spec)
            kind = Cascade if spec else Single
            return await kind(self, ex, sent, mode, plan.deadline(ex.started)).run()
        except (APIError, asyncio.CancelledError) as exc:
            ex.ended(exc)
            raise
        finally:
            ex.close()

    async def stream(
        self,
        who: Principal,
        body: dict[str, Any],
        rid: str,
        *,
        surface: Surface | None = None,
        tags: str | None = None,
        no_cache: bool = False,
    ) -> Response:
        """A streamed chat completion: the response closes the exchange when the stream ends."""
        ex = self._open(who, body, rid, surface.endpoint if surface else "chat", surface, stream=True)
        strategy: Streamed | None = None
        try:
            answer = await self._before_planning(ex, tags, no_cache, surface is None)
            if answer is not None:
                return answer
            ex.plan = plan = await self.planner.plan(who, body, "chat", rid)
            sent = await self._admit(ex, plan.deployments, "chat")
            strategy = Streamed(self, ex, sent, "chat", plan.deadline(ex.started))
            return await strategy.run()
        except (APIError, asyncio.CancelledError) as exc:
            ex.ended(exc)
            raise
        finally:
            if strategy is None or not strategy.handed_off:
                ex.close()
