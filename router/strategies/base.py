"""What every execution strategy shares: one upstream call, its price, the answer's headers, and the
error a request ends with when no call answered.

A strategy serves one planned, admitted request: it makes upstream calls and adds each to the
exchange (``Exchange.calling``, ``failed``, ``line``, ``served``). It never settles money or writes
the ledger: the exchange's single close does (router.exchange).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Iterator

import orjson
from starlette.responses import Response

from pricing import Usage
from router.attempts import final_error, late
from router.cache import keep
from router.backends.base import Call, UpstreamBadResponse, UpstreamError, UpstreamTimeout
from router.errors import APIError
from router.exchange import Exchange
from router.accounting.metering import Priced, generated_texts
from router.wire import normalize_chat, normalize_embeddings, upstream_body
from router.registry import Deployment

if TYPE_CHECKING:
    from router.proxy import Gateway

_JSON = "application/json"


def _ascii(text: str, n: int = 200) -> str:
    return text.encode("ascii", "replace").decode()[:n]


class Strategy:
    """Serves one request (``run``); ``mode``: "chat" or "embedding"."""

    name = "strategy"

    def __init__(self, gw: "Gateway", ex: Exchange, body: dict[str, Any], mode: str, deadline: float | None):
        self.gw, self.ex, self.body, self.mode, self.deadline = gw, ex, body, mode, deadline
        self.out_of_time = False  # an attempt was cut off by the request's deadline
        self.stopped = False  # a failure ended the sequence of attempts

    async def run(self) -> Response:
        raise NotImplementedError

    # -- the plan's deployments, one attempt each ---------------------------------------------------------
    def ahead(self) -> Iterator[Deployment]:
        """The plan's deployments in order, while trying the next makes sense: the deadline has not
        passed and no failure ended the sequence (a rejection, or the deadline cutting a call)."""
        for dep in self.ex.plan.deployments:  # type: ignore[union-attr]
            if self.stopped or late(self.deadline):
                return
            yield dep

    async def attempt(self, dep: Deployment) -> tuple[dict[str, Any], dict[str, Any], float] | None:
        """Call ``dep``: (raw answer, normalized answer, start), or None after a failure (recorded on
        the exchange; a retryable one lets the next deployment be tried)."""
        t0 = self.ex.calling(dep)
        try:
            raw, out = await self.call(dep)
        except UpstreamError as exc:
            self.ex.failed(dep, exc, time.perf_counter() - t0)
            self.out_of_time = self.out_of_time or exc.by_deadline
            self.stopped = exc.by_deadline or not exc.retryable
            return None
        return raw, out, t0

    # -- shared steps ---------------------------------------------------------------------------------
    async def call(
        self, dep: Deployment, body: dict[str, Any] | None = None, mode: str | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """One upstream call; its timeout is the deployment's, cut to what the request's deadline leaves."""
        surface = self.ex.surface
        native = surface.native_call(dep) if surface is not None and body is None else None
        body, mode, deadline = body or self.body, mode or self.mode, self.deadline
        timeout = dep.timeout if deadline is None else max(0.001, min(dep.timeout, deadline - time.perf_counter()))
        if native is not None:  # the deployment speaks the client's API: the request goes as it came
            client, native_body = native
            headers = surface.native_headers  # type: ignore[union-attr]
            call = Call(body=native_body, timeout=timeout, request_id=self.ex.request_id, extra_headers=headers)
        else:
            call = Call(
                body=upstream_body(body, dep.upstream_model, mode, dep.pass_through),
                timeout=timeout,
                request_id=self.ex.request_id,
            )
        if self.ex.trace is not None:  # the call's span, its context sent upstream as traceparent
            call.extra_headers = self.ex.trace.calling(dep, mode, call.extra_headers)
        if native is not None:
            pending = client.create(call)
        else:
            pending = dep.backend.embeddings(call) if mode == "embedding" else dep.backend.chat(call)
        try:
            raw = await pending
        except UpstreamTimeout as exc:
            # the deadline cut this call short: its timeout is the request's deadline, whatever the
            # clocks say a moment later (a timer may fire a hair early)
            exc.by_deadline = timeout < dep.timeout
            raise
        try:
            if native is not None:  # (the OpenAI-shaped view the gateway meters; the native answer rides on it)
                return surface.from_native(raw, dep.model_name)  # type: ignore[union-attr]
            out = (
                normalize_embeddings(raw, dep.model_name)
                if mode == "embedding"
                else normalize_chat(raw, dep.model_name)
            )
        except ValueError as exc:
            raise UpstreamBadResponse(f"upstream answer is malformed ({exc})") from None
        return raw, out

    def price(
        self, dep: Deployment, raw: dict[str, Any], out: dict[str, Any], body: dict[str, Any] | None = None
    ) -> Priced:
        """A call's usage (the upstream's, else counted here) at the deployment's price and the tenant's plan."""
        meter, ex = self.gw.meter, self.ex
        usage = Usage.from_openai(raw.get("usage")) or meter.estimate(dep, body or self.body, generated_texts(out))
        return meter.price(dep, usage, tenant=ex.who.tenant, requested=ex.requested)

    def exhausted(self) -> APIError:
        """The error when no call answered: the last failure's, or the deadline's."""
        ex, plan = self.ex, self.ex.plan
        timed_out = self.out_of_time or late(self.deadline)
        return final_error(ex.requested, ex.attempts, plan.deadline_s if plan is not None and timed_out else None)

    def answer(self, dep: Deployment, own: Priced, out: dict[str, Any], answered: float) -> Response:
        """The client's answer from ``dep`` (``own``: that call's price; the exchange's lines may hold more)."""
        gw, ex = self.gw, self.ex
        priced = ex.priced()
        assert priced is not None
        # the answer's own usage (a cascade's other calls are metered and charged, not reported here)
        out["usage"] = (
            {"prompt_tokens": priced.usage.prompt_tokens, "total_tokens": priced.usage.prompt_tokens}
            if self.mode == "embedding"
            else own.usage.to_openai()
        )
        ex.dep, ex.status = dep, 200
        gw.health.observe_output(dep.model_name, own.usage.completion_tokens - own.usage.reasoning_tokens)
        if self.mode == "chat":  # no first-token time without a stream: the smoothed TTFT stands in
            gw.health.observe_rate(
                dep.id, own.usage.completion_tokens, answered - (gw.health.ttft_ms(dep.id) or 0.0) / 1000
            )
        if ex.plan is not None:
            gw.planner.remember(ex.plan, dep)
        if ex.attempts.last_error is not None:  # an attempt failed before this one answered
            gw.meter.metrics.fallbacks.labels(dep.model_name).inc()
        if ex.cache_key is not None:  # a cache miss: its answer is kept for the next identical request
            keep(gw, ex, dep, out, priced)
        if ex.surface is not None:
            out = ex.surface.answer(out)
        return Response(orjson.dumps(out), media_type=_JSON, headers=headers(dep, ex, priced))


def headers(dep: Deployment, ex: Exchange, priced: Priced | None, in_flight: int = 0) -> dict[str, str]:
    """The answer's x-switchyard-* headers. ``in_flight``: attempts still running, not yet in the
    exchange's attempts (a stream being relayed)."""
    plan = ex.plan
    h = {
        "x-switchyard-model": dep.model_name,
        "x-switchyard-provider": dep.provider,
        "x-switchyard-attempts": str(len(ex.attempts.items) + in_flight),
    }
    if plan is not None and plan.decision is not None:
        h["x-switchyard-policy"] = _ascii(plan.decision.policy, 100)
        h["x-switchyard-reason"] = _ascii(plan.decision.reason)
    if priced is not None:
        h["x-switchyard-cost-usd"] = priced.header()
        h["x-switchyard-charge-usd"] = priced.charge_header()
        h["x-switchyard-usage-source"] = priced.usage.source
    if ex.cache_key is not None:
        h["x-switchyard-cache"] = "miss"
    if ex.ticket is not None:
        h.update(ex.ticket.headers)
    return h
