"""Metering: the usage and API cost of every upstream attempt, and the record it leaves.

Usage comes from the upstream response. When an upstream gives none, or a stream is cut, the
tokens are counted here (router.tokens) and the record says ``usage_source: estimated``.
A model with no known price is metered as ``unpriced`` - never silently as zero.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Protocol, Sequence

from pricing import ModelPrice, Plan, PriceCatalog, StackProfile, Usage, Waterfall, attribute, cost_of, estimate_usd
from pricing.attribution import merge, self_hosted_cost
from router.attempts import ESCALATED
from router.metrics import Metrics, fast
from router.registry import Deployment
from router.tokens import Tokenizer


@dataclass(slots=True)
class Priced:
    usage: Usage
    cost_usd: float | None  # the API cost at list price; None: unpriced
    price_version: str | None
    charge_usd: float | None = None  # what the tenant's plan charges; None: unpriced
    waterfall: Waterfall | None = None
    lines: dict[str, float] | None = None  # API cost by token type

    @staticmethod
    def _fmt(v: float | None) -> str:
        return "unpriced" if v is None else f"{v:.10f}"

    def header(self) -> str:
        return self._fmt(self.cost_usd)

    def charge_header(self) -> str:
        return self._fmt(self.charge_usd)

    @staticmethod
    def combine(parts: list["Priced"]) -> "Priced":
        """Several calls made for one request (a cascade): usage, cost, charge and stack add up."""
        if len(parts) == 1:
            return parts[0]
        u = [p.usage for p in parts]
        usage = Usage(
            sum(x.prompt_tokens for x in u),
            sum(x.completion_tokens for x in u),
            cached_tokens=sum(x.cached_tokens for x in u),
            cache_write_tokens=sum(x.cache_write_tokens for x in u),
            reasoning_tokens=sum(x.reasoning_tokens for x in u),
            source="estimated" if any(x.source == "estimated" for x in u) else "upstream",
        )

        def total(vals: list[float | None]) -> float | None:
            return None if any(v is None for v in vals) else sum(vals)  # type: ignore[arg-type]

        lines: dict[str, float] | None = None
        each = [p.lines for p in parts]
        if all(x is not None for x in each):
            lines = {k: sum(x[k] for x in each if x is not None) for k in each[0] or {}}
        falls = [p.waterfall for p in parts]
        return Priced(
            usage,
            total([p.cost_usd for p in parts]),
            parts[-1].price_version,
            total([p.charge_usd for p in parts]),
            None if None in falls else merge([w for w in falls if w is not None]),
            lines,
        )


class RecordSink(Protocol):
    def submit(self, record: dict[str, Any]) -> None: ...


class MemorySink:
    """Keeps the most recent records in memory (the embedded default until a ledger is set)."""

    def __init__(self, maxlen: int = 10000):
        self.records: deque[dict[str, Any]] = deque(maxlen=maxlen)

    def submit(self, record: dict[str, Any]) -> None:
        self.records.append(record)


@dataclass
class StreamTally:
    """What a stream has carried so far, to estimate usage if it ends without a usage chunk."""

    text: list[str] = field(default_factory=list)
    chunks: int = 0
    first_chunk_at: float | None = None
    tools: bool = False  # a tool call was streamed (the text is not the answer's content alone)
    finish: str | None = None  # the last finish_reason seen

    def add(self, chunk: dict[str, Any]) -> None:
        self.chunks += 1
        if self.first_chunk_at is None:
            self.first_chunk_at = time.perf_counter()
        for ch in chunk["choices"]:
            delta = ch["delta"]
            content = delta.get("content")
            if content:
                self.text.append(content)
            if ch.get("finish_reason"):
                self.finish = ch["finish_reason"]
            for tc in delta.get("tool_calls") or ():
                self.tools = True
                fn = tc.get("function") or {}
                self.text.append(str(fn.get("name") or "") + str(fn.get("arguments") or ""))


def generated_texts(body: dict[str, Any]) -> list[str]:
    """The generated text of a non-streaming answer (content and tool-call arguments)."""
    out: list[str] = []
    for ch in body.get("choices") or ():
        msg = ch.get("message") or {}
        if msg.get("content"):
            out.append(msg["content"])
        for tc in msg.get("tool_calls") or ():
            fn = tc.get("function") or {}
            out.append(str(fn.get("name") or "") + str(fn.get("arguments") or ""))
    return out


@dataclass(frozen=True)
class Billing:
    """Who pays what: tenant plans and the stack profile that attributes each dollar."""

    profile: StackProfile
    default_plan: Plan
    tenant_plans: dict[str, Plan] = field(default_factory=dict)

    def plan(self, tenant: str | None) -> Plan:
        return self.tenant_plans.get(tenant or "", self.default_plan)


class Meter:
    def __init__(
        self, catalog: PriceCatalog, tokenizer: Tokenizer, metrics: Metrics, sink: RecordSink, billing: Billing
    ):
        self.catalog = catalog
        self.tokenizer = tokenizer
        self.metrics = metrics
        self.sink = sink
        self.billing = billing
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._classes: dict[tuple[str, float | None], str] = {}  # (model, output price) -> its class
        self._classes_of: Any = None  # the stack profile the remembered classes are of

    def estimate(self, dep: Deployment, body: dict[str, Any], completion_text: Iterable[str] = ()) -> Usage:
        model = dep.upstream_model
        if dep.mode == "embedding":
            inputs = body.get("input")
            items = [inputs] if isinstance(inputs, str) or (inputs and isinstance(inputs[0], int)) else inputs or []
            prompt = sum(self.tokenizer.count(model, x) if isinstance(x, str) else len(x) for x in items)
            return Usage(prompt_tokens=prompt, source="estimated")
        prompt = self.tokenizer.count_messages(model, body.get("messages") or [], body.get("tools"))
        completion = self.tokenizer.count(model, "".join(completion_text))
        return Usage(prompt_tokens=prompt, completion_tokens=completion, source="estimated")

    def decision_tokens(self, dep: Deployment, body: dict[str, Any]) -> int:
        """A chat prompt's tokens for a routing decision's expected costs (policies route chat only):
        long texts estimated from slices of them (router/tokens.py, ``SAMPLE_ABOVE``), not tokenised whole."""
        return self.tokenizer.count_messages(
            dep.upstream_model, body.get("messages") or [], body.get("tools"), sample=True
        )

    def prompt_bound(self, dep: Deployment, body: dict[str, Any], *, exact: bool = False) -> int:
        """At least the prompt tokens ``body`` holds for ``dep`` (by the gateway's count), for a budget
        reservation: its texts are bounded by their bytes rather than tokenised on the request path;
        ``exact``: the count itself (for a decision the bound would change)."""
        if dep.mode == "embedding":
            return self.estimate(dep, body).prompt_tokens
        return self.tokenizer.count_messages(
            dep.upstream_model, body.get("messages") or [], body.get("tools"), bound=not exact
        )

    def worst_case(self, dep: Deployment, tenant: str | None, requested: str, prompt: int, out: int) -> float:
        """The largest charge a request of ``prompt`` tokens and ``out`` output tokens can incur."""
        return self.worst_at(dep.price(self.catalog), tenant, requested, prompt, out)

    def worst_at(self, price: ModelPrice | None, tenant: str | None, requested: str, prompt: int, out: int) -> float:
        """``worst_case`` at a deployment's price already looked up (None: unpriced)."""
        plan = self.billing.plan(tenant)
        worst = 0.0
        # reasoning may be priced above plain output: then both are tried (else they cost the same)
        split = price is not None and price.reasoning is not None and price.reasoning != price.output
        for reasoning in (0, out) if split and out else (0,):
            api = estimate_usd(price, prompt, out - reasoning, reasoning=reasoning) if price is not None else None
            worst = max(worst, plan.charge_tokens(requested, prompt, out, api) or 0.0)
        return worst

    def price(
        self, dep: Deployment, usage: Usage, *, tenant: str | None, requested: str, at: datetime | None = None
    ) -> Priced:
        """What serving ``usage`` cost (the API's list price; for a self-hosted model, its GPU-hours and
        licence at the stack profile, the same figure the waterfall books), the tenant's charge (a plan
        prices a self-hosted model from its catalog price), and its split across the stack."""
        price = dep.price(self.catalog, at)
        cost = cost_of(usage, price) if price is not None else None
        api = cost.total if cost is not None else None
        charge = self.billing.plan(tenant).charge(requested, usage, api)
        profile = self.billing.profile
        cls = dep.model_class or self._model_class(profile, dep, price)
        waterfall = None
        if charge is not None:
            waterfall = attribute(
                usage, charge=charge, api_cost=api, profile=profile, model_class=cls, self_hosted=dep.self_hosted
            )
        lines = dict(cost.lines) if cost is not None else None
        spent = api
        if dep.self_hosted:
            spent = waterfall.api_cost if waterfall is not None else self_hosted_cost(usage, profile, cls)
            if lines is not None and api:  # the catalog's split by token type, scaled to what it cost
                lines = {k: v * spent / api for k, v in lines.items()}
        return Priced(usage, spent, price.version if price is not None else None, charge, waterfall, lines)

    def _model_class(self, profile: StackProfile, dep: Deployment, price: ModelPrice | None) -> str:
        """The profile's class for a model (by its name and output price), remembered: the rules
        match names by pattern, and the answer changes only with the profile."""
        if profile is not self._classes_of or len(self._classes) > 10_000:
            self._classes, self._classes_of = {}, profile
        key = (dep.price_key or dep.upstream_model, price.output if price is not None else None)
        cls = self._classes.get(key)
        if cls is None:
            cls = self._classes[key] = profile.model_class(key[0], key[1] * 1e6 if key[1] is not None else None)
        return cls

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, remembered, with the lock-free updates of ``fast``: a request
        updates about twenty series."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            if len(self._children) > 50_000:  # label values come from config and upstream statuses: bounded
                self._children.clear()
            child = self._children[key] = fast(metric.labels(*labels))
        return child

    def record(
        self,
        *,
        request_id: str,
        principal: Any,
        endpoint: str,
        requested: str,
        dep: Deployment | None,
        priced: Priced | None,
        status: int,
        error: str | None,
        attempts: list[dict[str, Any]],
        started: float,
        first_chunk_at: float | None,
        upstream_seconds: float,
        stream: bool,
        decision: dict[str, Any] | None = None,
        ts: float | None = None,
        lines: Sequence[tuple[Deployment, str, Priced]] = (),
        attrs: Any = None,
        cache: str | None = None,
        saved_usd: float | None = None,
    ) -> None:
        """``ts``: the request's start (UNIX seconds); default: now less its duration. ``lines``: every
        priced call (deployment, role, price); ``priced`` is their sum. A record keeps its lines when
        there are several."""
        now = time.perf_counter()
        total = now - started
        label = dep.model_name if dep else "none"
        m = self.metrics
        self._child(m.requests, endpoint, label, str(status)).inc()
        self._child(m.duration, endpoint, "true" if stream else "false").observe(total)
        self._child(m.overhead, endpoint).observe(max(0.0, total - upstream_seconds))
        if dep is not None and priced is not None and cache is None:  # (a hit's tokens were not the upstream's)
            u = priced.usage
            for kind, n in (
                ("input", u.prompt_tokens - u.cached_tokens),
                ("cached_input", u.cached_tokens),
                ("output", u.completion_tokens - u.reasoning_tokens),
                ("reasoning", u.reasoning_tokens),
            ):
                if n:
                    self._child(m.tokens, label, dep.provider, kind).inc(n)
            if priced.cost_usd is None:
                self._child(m.unpriced, label).inc()
            else:
                self._child(m.cost, label, dep.provider).inc(priced.cost_usd)
            if priced.charge_usd is not None:
                self._child(m.charge, label).inc(priced.charge_usd)
            if priced.waterfall is not None:
                for layer in priced.waterfall.layers:
                    self._child(m.layer_revenue, layer.name).inc(layer.revenue)
                    margin = layer.margin
                    if margin >= 0:
                        self._child(m.layer_margin, layer.name).inc(margin)
                    else:
                        self._child(m.layer_loss, layer.name).inc(-margin)
        if first_chunk_at is not None and dep is not None:
            self._child(m.ttft, label).observe(first_chunk_at - started)
        if decision is not None and dep is not None:
            self._child(m.decisions, decision["policy"], label, str(decision["rule"]).split("(")[0]).inc()
        if decision is not None and decision.get("cascade"):
            for a in attempts:
                if a.get("note") == ESCALATED:
                    self._child(m.escalations, decision["policy"], a["model"]).inc()
        self.sink.submit(
            {
                "request_id": request_id,
                "ts": time.time() - total if ts is None else ts,
                "policy": decision.get("policy") if decision else None,
                "decision": decision,
                "tenant": getattr(principal, "tenant", None),
                "key_id": getattr(principal, "key_id", None),
                "endpoint": endpoint,
                "requested_model": requested,
                "user": attrs.user if attrs is not None else None,
                "cache": cache,
                "saved_usd": saved_usd,
                "tags": attrs.tags if attrs is not None else None,
                "model": dep.model_name if dep else None,
                "deployment": dep.id if dep else None,
                "provider": dep.provider if dep else None,
                "stream": stream,
                "status": status,
                "error": error,
                "attempts": attempts,
                **_money(priced),
                "lines": [
                    {"role": role, "model": d.model_name, "deployment": d.id, "provider": d.provider, **_money(p)}
                    for d, role, p in lines
                ]
                if len(lines) > 1
                else None,
                "latency_s": total,
                "ttft_s": None if first_chunk_at is None else first_chunk_at - started,
                "upstream_s": upstream_seconds,
            }
        )


def _money(priced: Priced | None) -> dict[str, Any]:
    """A record's (or one of its lines') usage and money fields."""
    if priced is None:
        return {
            "usage": None,
            "usage_source": None,
            "cost_usd": None,
            "charge_usd": None,
            "cost_lines": None,
            "price_version": None,
            "stack": None,
        }
    u = priced.usage
    return {
        "usage": {
            "prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.completion_tokens,
            "cached_tokens": u.cached_tokens,
            "cache_write_tokens": u.cache_write_tokens,
            "reasoning_tokens": u.reasoning_tokens,
        },
        "usage_source": u.source,
        "cost_usd": priced.cost_usd,
        "charge_usd": priced.charge_usd,
        "cost_lines": priced.lines,
        "price_version": priced.price_version,
        "stack": None if priced.waterfall is None else priced.waterfall.as_dict(),
    }
