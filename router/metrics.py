"""Prometheus metrics, in a registry owned by the app (no process-global collectors).

Names follow Prometheus conventions (base units, ``_total`` counters, ``_seconds``
histograms) and OpenTelemetry's GenAI vocabulary where it fits. Every label has a bounded set
of values: model names and aliases come from the config, never from the client.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess, values
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "switchyard_requests",
            "Requests answered, by endpoint, model and status code.",
            ["endpoint", "model", "status"],
            registry=r,
        )
        self.duration = Histogram(
            "switchyard_request_duration_seconds",
            "Total request latency.",
            ["endpoint", "stream"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "switchyard_time_to_first_token_seconds",
            "Time to first streamed chunk.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.overhead = Histogram(
            "switchyard_gateway_overhead_seconds",
            "Latency added by the gateway itself.",
            ["endpoint"],
            buckets=OVERHEAD_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "switchyard_tokens",
            "Tokens metered, by model and token type (gen_ai.token.type).",
            ["model", "provider", "type"],
            registry=r,
        )
        self.cost = Counter("switchyard_cost_usd", "API cost metered, in USD.", ["model", "provider"], registry=r)
        self.charge = Counter(
            "switchyard_charge_usd", "Charged to tenants under their plans, in USD.", ["model"], registry=r
        )
        self.layer_revenue = Counter(
            "switchyard_stack_revenue_usd",
            "Revenue by token-factory layer (estimates below the application).",
            ["layer"],
            registry=r,
        )
        self.layer_margin = Counter(
            "switchyard_stack_margin_usd", "Positive margin by token-factory layer, in USD.", ["layer"], registry=r
        )
        self.layer_loss = Counter(
            "switchyard_stack_loss_usd", "Negative margin (loss) by token-factory layer, in USD.", ["layer"], registry=r
        )
        self.unpriced = Counter(
            "switchyard_unpriced_requests", "Requests served by a model with no known price.", ["model"], registry=r
        )
        self.upstream_errors = Counter(
            "switchyard_upstream_errors",
            "Failed upstream attempts by error kind.",
            ["model", "provider", "kind"],
            registry=r,
        )
        self.fallbacks = Counter(
            "switchyard_fallbacks",
            "Requests answered by a deployment other than the first tried.",
            ["model"],
            registry=r,
        )
        self.decisions = Counter(
            "switchyard_routing_decisions",
            "Routing decisions by policy, chosen model and rule.",
            ["policy", "model", "rule"],
            registry=r,
        )
        self.escalations = Counter(
            "switchyard_cascade_escalations",
            "Cascade steps whose answer failed the check, by policy and the step's model.",
            ["policy", "model"],
            registry=r,
        )
        self.breaker_opened = Counter(
            "switchyard_circuit_breaker_opened", "Times a deployment's circuit opened.", ["model"], registry=r
        )
        self.feedback = Counter("switchyard_feedback", "Feedback scores received, by policy.", ["policy"], registry=r)
        self.in_flight = Gauge(
            "switchyard_requests_in_flight", "Requests being served.", registry=r, multiprocess_mode="livesum"
        )
        self.disconnects = Counter(
            "switchyard_client_disconnects", "Streams the client left before the end.", ["model"], registry=r
        )

        self.ledger_queue = Gauge(
            "switchyard_ledger_queue_depth",
            "Ledger records waiting to be written.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.ledger_written = Counter(
            "switchyard_ledger_records_written", "Ledger records written to the database.", registry=r
        )
        self.ledger_spilled = Counter(
            "switchyard_ledger_records_spilled", "Ledger records spilled to the local file.", registry=r
        )
        self.ledger_replayed = Counter(
            "switchyard_ledger_records_replayed", "Spilled records replayed into the database.", registry=r
        )
        self.ledger_write_errors = Counter("switchyard_ledger_write_errors", "Failed ledger batch writes.", registry=r)
        self.ledger_spill_bytes = Gauge(
            "switchyard_ledger_spill_bytes",
            "Size of the local ledger spill files.",
            registry=r,
            multiprocess_mode="max",
        )

        self.budget_rejections = Counter(
            "switchyard_budget_rejections", "Requests refused for an exhausted budget.", ["scope", "period"], registry=r
        )
        self.budget_alerts = Counter(
            "switchyard_budget_alerts",
            "Budgets that reached their limit (soft: alert only).",
            ["scope", "period", "kind"],
            registry=r,
        )
        self.cache = Counter(
            "switchyard_response_cache",
            "Response-cache lookups, by result (hit, miss, bypass: Cache-Control: no-cache).",
            ["result"],
            registry=r,
        )
        self.alerts = Counter(
            "switchyard_alerts_delivered",
            "Budget alerts raised, by kind and final delivery status (sent, dead: dead-lettered after its retries).",
            ["kind", "status"],
            registry=r,
        )
        self.rate_rejections = Counter(
            "switchyard_rate_limit_rejections", "Requests refused by a rate limit.", ["limit"], registry=r
        )
        self.state_errors = Counter("switchyard_state_errors", "Shared-state (Redis) calls that failed.", registry=r)
        self.component_up = Gauge(
            "switchyard_component_up",
            "Whether a storage component answered the last "
            "readiness check (1) or the gateway is serving degraded without it (0).",
            ["component"],
            registry=r,
            multiprocess_mode="min",
        )

    def render(self) -> bytes:
        """The exposition; with several workers (PROMETHEUS_MULTIPROC_DIR set by `serve --workers`),
        every worker's values, aggregated."""
        path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if path:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=path)
            return generate_latest(registry)
        return generate_latest(self.registry)


# -- the request path's updates --------------------------------------------------------------------
# A request updates about twenty series. prometheus_client guards each value with a lock and checks,
# per update, that the metric is a labelled child; an update costs about 1 us (a histogram's
# observation 2 us, its buckets searched in Python), some 5% of a small request's CPU. Every update
# runs on the event loop's thread (nothing calls a metric from a worker thread), so in a single
# process the lock guards nothing. ``fast`` wraps a child whose values are the library's in-process
# ones in a cell that adds to them directly; the library still owns the values, their names and the
# exposition, and reads them under its lock at scrape time. With several workers (multiprocess mode:
# the values live in memory-mapped files) a child is returned as it is. The internals relied on are
# those of the pinned prometheus-client (tests/test_metric_cells.py fails if they change).


class _Count:
    """A counter's value, added to without the lock."""

    __slots__ = ("_value",)

    def __init__(self, value: Any):
        self._value = value

    def inc(self, amount: float = 1) -> None:
        if amount < 0:  # (as the library refuses it)
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        self._value._value += amount


class _Level:
    """A gauge's value, set without the lock."""

    __slots__ = ("_value",)

    def __init__(self, value: Any):
        self._value = value

    def set(self, value: float) -> None:
        self._value._value = float(value)

    def inc(self, amount: float = 1) -> None:
        self._value._value += amount

    def dec(self, amount: float = 1) -> None:
        self._value._value -= amount


class _Observe:
    """A histogram's sum and buckets, observed into without the lock; the bucket found by bisection
    (the first bound at or above the value, as the library's loop finds it)."""

    __slots__ = ("_sum", "_buckets", "_bounds")

    def __init__(self, child: Any):
        self._sum, self._buckets, self._bounds = child._sum, child._buckets, list(child._upper_bounds)

    def observe(self, amount: float) -> None:
        self._sum._value += amount
        if amount == amount:  # NaN lands in no bucket, as in the library
            self._buckets[bisect_left(self._bounds, amount)]._value += 1


def fast(child: Any) -> Any:
    """``child`` (a labelled metric, or one without labels) with updates that skip the library's lock
    where its values are in-process ones; otherwise ``child`` itself."""
    if isinstance(child, Histogram):
        if type(child._sum) is values.MutexValue and all(type(b) is values.MutexValue for b in child._buckets):
            return _Observe(child)
    elif type(getattr(child, "_value", None)) is values.MutexValue:
        if isinstance(child, Counter):
            return _Count(child._value)
        if isinstance(child, Gauge):
            return _Level(child._value)
    return child
