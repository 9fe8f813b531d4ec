"""OpenTelemetry: traces and GenAI metrics over OTLP, off unless asked for.

On with ``telemetry.enabled: true`` or a ``telemetry.endpoint`` in the config, or (neither set) when the standard
``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set and
``OTEL_SDK_DISABLED`` is not ``true``. Needs the optional ``otel`` dependencies
(``pip install 'switchyard[otel]'``); the other ``OTEL_*`` variables (headers, timeouts, batch and
export intervals, resource attributes) mean what the OpenTelemetry SDK says they mean.

What it records:
- a SERVER span per HTTP request to the API (``POST /v1/chat/completions``...), child of the
  client's W3C ``traceparent`` when it sent one, with the GenAI semantic-convention attributes
  (``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.request.model``,
  ``gen_ai.response.model``, ``gen_ai.usage.input_tokens``/``output_tokens``, request parameters)
  and Switchyard's own (``switchyard.tenant``, ``.key_id``, ``.policy``, ``.reason``, ``.cost_usd``,
  ``.charge_usd``, ``.attempts``, ``.request_id``);
- a CLIENT span per upstream call, whose context reaches the upstream as its ``traceparent``;
- metrics: ``gen_ai.client.token.usage`` ({token}), ``gen_ai.client.operation.duration`` (s) per
  upstream call, ``gen_ai.server.request.duration`` (s) and ``gen_ai.server.time_to_first_token``
  (s) per request, with the semantic conventions' bucket boundaries.
Prompts and answers are never recorded unless ``telemetry.capture_content`` is true (then the
request's messages go on the server span as ``gen_ai.input.messages``).

Cost: when off, the request path checks one attribute; when on, spans are begun at the request and
each call and finished, with their attributes and the metrics, once when the request closes
(benchmarks/telemetry.py measures both).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Mapping

import orjson

if TYPE_CHECKING:
    from router.config_sections import TelemetryConfig
    from router.exchange import Exchange
    from router.registry import Deployment

# gen_ai.provider.name's well-known values, from the providers' names in model strings
PROVIDERS = {
    "azure": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "bedrock": "aws.bedrock",
    "gemini": "gcp.gemini",
    "vertex_ai": "gcp.vertex_ai",
    "mistral": "mistral_ai",
    "xai": "x_ai",
    "watsonx": "ibm.watsonx.ai",
    "together_ai": "together_ai",
    "simulated": "switchyard.simulated",
}
OPERATIONS = {
    "chat": "chat",
    "embeddings": "embeddings",
    "completions": "text_completion",
    "messages": "chat",
    "responses": "chat",
}
TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864]
SECONDS_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0]
_PARAMS = (
    ("max_tokens", "gen_ai.request.max_tokens"),
    ("max_completion_tokens", "gen_ai.request.max_tokens"),
    ("temperature", "gen_ai.request.temperature"),
    ("top_p", "gen_ai.request.top_p"),
    ("frequency_penalty", "gen_ai.request.frequency_penalty"),
    ("presence_penalty", "gen_ai.request.presence_penalty"),
    ("seed", "gen_ai.request.seed"),
)
UNTRACED = ("/metrics", "/healthz", "/readyz", "/favicon.ico")


def wanted(cfg: "TelemetryConfig", env: Mapping[str, str]) -> bool:
    if cfg.enabled is not None:
        return cfg.enabled
    if cfg.endpoint:
        return True
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def build_telemetry(cfg: "TelemetryConfig", env: Mapping[str, str] = os.environ) -> "Telemetry | None":
    """The telemetry the config and environment ask for, or None (off)."""
    if not wanted(cfg, env):
        return None
    try:
        return Telemetry(cfg, env)
    except ImportError as exc:
        raise RuntimeError(
            f"telemetry is on but OpenTelemetry is not installed ({exc.name}): pip install 'switchyard[otel]'"
        ) from None


def provider_name(provider: str) -> str:
    return PROVIDERS.get(provider, provider)


class Telemetry:
    """The tracer, the meter and their exporters (this gateway's own providers: no global state)."""

    def __init__(self, cfg: "TelemetryConfig", env: Mapping[str, str]):
        from opentelemetry import context, trace
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._trace, self._context = trace, context
        self.capture_content = cfg.capture_content
        resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME") or cfg.service_name})
        base = cfg.endpoint.rstrip("/") if cfg.endpoint else None
        self.tracer_provider = TracerProvider(resource=resource)
        self.tracer_provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces") if base else OTLPSpanExporter())
        )
        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=f"{base}/v1/metrics") if base else OTLPMetricExporter()
        )
        self.meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
        self.tracer = self.tracer_provider.get_tracer("switchyard")
        meter = self.meter_provider.get_meter("switchyard")
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Tokens used per upstream call, by token type",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self.call_duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="Duration of each upstream call",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
        )
        self.request_duration = meter.create_histogram(
            "gen_ai.server.request.duration",
            unit="s",
            description="Duration of each request the gateway served",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
        )
        self.ttft = meter.create_histogram(
            "gen_ai.server.time_to_first_token",
            unit="s",
            description="Time to the first streamed chunk",
            explicit_bucket_boundaries_advisory=TTFT_BUCKETS,
        )
        self.propagator = TraceContextTextMapPropagator()

    # -- the HTTP server span ------------------------------------------------------------------------
    async def serve(
        self, call: Callable[[Any, Any, Any], Awaitable[None]], scope: Any, receive: Any, send: Any
    ) -> None:
        """Run one ASGI request inside its SERVER span (the client's traceparent its parent)."""
        path = scope.get("path", "")
        if scope["type"] != "http" or path in UNTRACED or path.startswith("/dashboard"):
            await call(scope, receive, send)
            return
        carrier = {}
        for k, v in scope.get("headers") or ():
            if k in (b"traceparent", b"tracestate"):
                carrier[k.decode()] = v.decode("latin-1")
        parent = self.propagator.extract(carrier) if carrier else None
        method = scope.get("method", "")
        span = self.tracer.start_span(
            f"{method} {path}",
            context=parent,
            kind=self._trace.SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": path, "url.scheme": scope.get("scheme", "http")},
        )
        token = self._context.attach(self._trace.set_span_in_context(span, parent))
        status = [0]

        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await call(scope, receive, sending)
        except BaseException as exc:
            span.set_attribute("error.type", type(exc).__name__)
            raise
        finally:
            route = getattr(scope.get("route"), "path", None)
            if route and route != path:
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
            if status[0]:
                span.set_attribute("http.response.status_code", status[0])
                if status[0] >= 500:
                    span.set_status(self._trace.Status(self._trace.StatusCode.ERROR))
                    span.set_attribute("error.type", str(status[0]))
            span.end()
            self._context.detach(token)

    def request(self) -> "RequestTrace":
        """The current request's trace (its server span, if this request has one)."""
        span = self._trace.get_current_span()
        return RequestTrace(self, span if span.get_span_context().is_valid else None)

    def shutdown(self) -> None:
        """Export what is buffered and stop."""
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


class RequestTrace:
    """One request's spans: its server span (begun by ``Telemetry.serve``) and a client span per
    upstream call; finished, with attributes and metrics, when the request's exchange closes."""

    __slots__ = ("tel", "span", "calls")

    def __init__(self, tel: Telemetry, span: Any):
        self.tel, self.span = tel, span
        self.calls: list[list[Any]] = []  # [deployment, span, end time (ns) or None, error kind or None, mode]

    def calling(self, dep: "Deployment", mode: str, headers: dict[str, str] | None) -> dict[str, str]:
        """Begin an upstream call's CLIENT span: the headers that carry its context upstream."""
        trace = self.tel._trace
        ctx = trace.set_span_in_context(self.span) if self.span is not None else None
        op = "embeddings" if mode == "embedding" else "chat"
        span = self.tel.tracer.start_span(
            f"{op} {dep.upstream_model}",
            context=ctx,
            kind=trace.SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": op,
                "gen_ai.provider.name": provider_name(dep.provider),
                "gen_ai.request.model": dep.upstream_model,
                "switchyard.deployment": dep.id,
            },
        )
        self.calls.append([dep, span, None, None, op])
        out = dict(headers or {})
        self.tel.propagator.inject(out, context=trace.set_span_in_context(span))
        return out

    def ended(self, dep: "Deployment", error: str | None) -> None:
        for c in self.calls:
            if c[0] is dep and c[2] is None:
                c[2], c[3] = time.time_ns(), error
                return

    def close(self, ex: "Exchange") -> None:
        """Finish every span with what the exchange knows, and record the metrics."""
        tel = self.tel
        lines = list(ex.lines)
        now = time.time_ns()
        for dep, span, end, error, op in self.calls:
            line = next((x for x in lines if x[0] is dep), None)
            attrs: dict[str, Any] = {
                "gen_ai.operation.name": op,
                "gen_ai.provider.name": provider_name(dep.provider),
                "gen_ai.request.model": dep.upstream_model,
            }
            if line is not None:
                lines.remove(line)
                usage = line[2].usage
                span.set_attributes(
                    {
                        "gen_ai.response.model": dep.upstream_model,
                        "gen_ai.usage.input_tokens": usage.prompt_tokens,
                        "gen_ai.usage.output_tokens": usage.completion_tokens,
                        "switchyard.role": line[1],
                        "switchyard.usage_source": usage.source,
                    }
                )
                if line[2].cost_usd is not None:
                    span.set_attribute("switchyard.cost_usd", line[2].cost_usd)
                tel.token_usage.record(
                    usage.prompt_tokens,
                    {**attrs, "gen_ai.token.type": "input", "gen_ai.response.model": dep.upstream_model},
                )
                if op == "chat":
                    tel.token_usage.record(
                        usage.completion_tokens,
                        {**attrs, "gen_ai.token.type": "output", "gen_ai.response.model": dep.upstream_model},
                    )
            if error is not None:
                attrs["error.type"] = error
                span.set_attribute("error.type", error)
                span.set_status(tel._trace.Status(tel._trace.StatusCode.ERROR))
            end = end or now
            tel.call_duration.record((end - span.start_time) / 1e9, attrs)
            span.end(end_time=end)
        self._server(ex)

    def _server(self, ex: "Exchange") -> None:
        tel, body, span = self.tel, ex.body, self.span
        op = OPERATIONS.get(ex.endpoint, "chat")
        attrs: dict[str, Any] = {"gen_ai.operation.name": op, "gen_ai.request.model": ex.requested}
        dep = ex.dep
        if dep is not None:
            attrs["gen_ai.provider.name"] = provider_name(dep.provider)
            attrs["gen_ai.response.model"] = dep.model_name
        if ex.status >= 400:
            attrs["error.type"] = ex.error or str(ex.status)
        seconds = time.perf_counter() - ex.started
        tel.request_duration.record(seconds, attrs)
        if ex.first_chunk_at is not None:
            tel.ttft.record(ex.first_chunk_at - ex.started, attrs)
        if span is None or not span.is_recording():
            return
        out = {
            **attrs,
            "switchyard.tenant": ex.who.tenant,
            "switchyard.request_id": ex.request_id,
            "switchyard.attempts": len(ex.attempts.items),
            "switchyard.stream": ex.stream,
        }
        if ex.who.key_id:
            out["switchyard.key_id"] = ex.who.key_id
        for field, name in _PARAMS:
            value = body.get(field)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[name] = value
        plan = ex.plan
        if plan is not None and plan.decision is not None:
            out["switchyard.policy"] = plan.decision.policy
            out["switchyard.reason"] = plan.decision.reason[:500]
        priced = ex.priced()
        if priced is not None:
            out["gen_ai.usage.input_tokens"] = priced.usage.prompt_tokens
            out["gen_ai.usage.output_tokens"] = priced.usage.completion_tokens
            for name, value in (("switchyard.cost_usd", priced.cost_usd), ("switchyard.charge_usd", priced.charge_usd)):
                if value is not None:
                    out[name] = value
        if tel.capture_content and isinstance(body.get("messages"), list):
            out["gen_ai.input.messages"] = orjson.dumps(body["messages"]).decode()
        span.set_attributes(out)
