"""One request's money, from admission to its single close.

An exchange is opened when a request is planned and closed exactly once, whatever happens: an
answer, an upstream failure, the deadline, a client that leaves, a cancellation, a stream the
server never started sending. Its close settles the budget reservation and writes the ledger
record, in this one place; the strategies that serve the request (router.proxy) only add calls.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from router.attempts import Attempts
from router.auth import Principal
from router.backends.base import UpstreamError
from router.errors import APIError
from router.accounting.budgets import Ticket
from router.accounting.metering import Priced
from router.planning import RoutePlan
from router.registry import Deployment

if TYPE_CHECKING:
    from router.proxy import Gateway
    from router.surfaces.base import Surface


@dataclass(slots=True)
class Exchange:
    gateway: "Gateway"
    who: Principal
    body: dict[str, Any]  # what the client sent (never modified)
    request_id: str
    endpoint: str  # "chat" | "embeddings" | another surface's name (router.surfaces)
    stream: bool = False
    surface: "Surface | None" = None  # answers in another API's shape than chat completions
    started: float = field(default_factory=time.perf_counter)
    started_wall: float = field(default_factory=time.time)  # dates the record and the budget period
    plan: RoutePlan | None = None
    ticket: Ticket | None = None
    attempts: Attempts = field(default_factory=Attempts)
    lines: list[tuple[Deployment, str, Priced]] = field(default_factory=list)  # every priced call: (where, role, price)
    status: int = 500
    error: str | None = None
    dep: Deployment | None = None  # the deployment whose answer the client got
    first_chunk_at: float | None = None
    in_flight: tuple[Deployment, float] | None = None  # a call under way (cut off if the exchange closes)
    closed: bool = False
    cache_key: str | None = None  # the response cache's key when its answer is to be kept (router.cache)
    cached: Priced | None = None  # answered from the response cache: its zero-cost price (and no upstream call)
    saved_usd: float | None = None  # a cache hit: the API cost of the answer it replayed
    attrs: Any = None  # its user and tags, bounded (router.accounting.attribution.Attributes); None: neither
    trace: Any = None  # its OpenTelemetry spans (router.telemetry.RequestTrace), when tracing is on

    @property
    def requested(self) -> str:
        return str(self.body["model"])

    # -- what happened ---------------------------------------------------------------------------------
    def calling(self, dep: Deployment) -> float:
        t0 = time.perf_counter()
        self.in_flight = (dep, t0)
        self.gateway.load.started(dep.id)
        return t0

    def line(self, dep: Deployment, role: str, priced: Priced) -> None:
        """A priced upstream call (role: answer, cascade_step, check, cut; see router.ledger.schema.ROLES)."""
        self.lines.append((dep, role, priced))
        self.gateway.load.tokens(dep.id, priced.usage.total_tokens)

    def priced(self) -> Priced | None:
        """The request's usage and money: the sum of its lines."""
        return Priced.combine([p for _, _, p in self.lines]) if self.lines else None

    def failed(self, dep: Deployment, err: UpstreamError, seconds: float) -> None:
        self.in_flight = None
        self.gateway.load.finished(dep.id, seconds, ok=False)
        if self.trace is not None:
            self.trace.ended(dep, err.kind)
        a = self.attempts
        a.items.append(
            {
                "deployment": dep.id,
                "model": dep.model_name,
                "error": err.kind,
                "status": err.upstream_status,
                "seconds": round(seconds, 6),
            }
        )
        a.last_error = err
        a.upstream_seconds += seconds
        m = self.gateway.meter.metrics
        m.upstream_errors.labels(dep.model_name, dep.provider, err.kind).inc()
        if err.retryable and self.gateway.health.failure(dep.id):
            m.breaker_opened.labels(dep.model_name).inc()

    def served(self, dep: Deployment, seconds: float, note: str | None = None, error: str | None = None) -> None:
        self.in_flight = None
        self.gateway.load.finished(dep.id, seconds, ok=error is None)
        if self.trace is not None:
            self.trace.ended(dep, error)
        self.attempts.items.append(
            {
                "deployment": dep.id,
                "model": dep.model_name,
                "error": error,
                "seconds": round(seconds, 6),
                **({"note": note} if note else {}),
            }
        )
        self.attempts.upstream_seconds += seconds
        if error is None:
            self.gateway.health.success(dep.id)

    def fail(self, status: int, code: str | None) -> None:
        self.status, self.error = status, code

    def ended(self, exc: BaseException) -> None:
        """The request ends with an API error (its status and code) or the client leaving."""
        if isinstance(exc, APIError):
            self.fail(exc.status, exc.code)
        else:
            self.fail(499, "client_disconnected")

    # -- the one close ---------------------------------------------------------------------------------
    def close(self) -> Priced | None:
        """Settle the budget and write the record, once. A call still under way (the client left,
        the task was cancelled) is metered at its prompt, which the upstream has already read."""
        if self.closed:
            return None
        self.closed = True
        gw = self.gateway
        if self.in_flight is not None:
            dep, t0 = self.in_flight
            self.in_flight = None
            seconds = time.perf_counter() - t0
            self.line(
                dep,
                "cut",
                gw.meter.price(
                    dep, gw.meter.estimate(dep, self.body), tenant=self.who.tenant, requested=self.requested
                ),
            )
            self.served(dep, seconds, error=self.error or "client_disconnected")
            if self.status < 400:
                self.status, self.error = 499, "client_disconnected"
        priced = self.priced() if self.cached is None else self.cached
        if self.ticket is not None:
            gw.limiter.settle(
                self.ticket, priced.charge_usd if priced else 0.0, priced.usage.total_tokens if priced else 0
            )
        if self.attempts.items or self.cached is not None:  # reached a backend (or the cache): always metered
            decision = None
            if self.plan is not None and self.plan.decision is not None:
                decision = {**self.plan.decision.as_dict(), "category": self.plan.category}
            gw.meter.record(
                request_id=self.request_id,
                principal=self.who,
                endpoint=self.endpoint,
                requested=self.requested,
                dep=self.dep,
                priced=priced,
                status=self.status,
                error=self.error,
                attempts=self.attempts.items,
                started=self.started,
                first_chunk_at=self.first_chunk_at,
                upstream_seconds=self.attempts.upstream_seconds,
                stream=self.stream,
                decision=decision,
                ts=self.started_wall,
                lines=self.lines,
                attrs=self.attrs,
                cache="hit" if self.cached is not None else None,
                saved_usd=self.saved_usd,
            )
        if self.trace is not None:
            self.trace.close(self)
        return priced
