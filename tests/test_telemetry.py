"""OpenTelemetry through a real gateway process and a small OTLP/HTTP collector in the test: the
documented spans and GenAI attributes, the client's traceparent as the parent, a child traceparent
at the upstream, GenAI metrics with their names and units equal to the ledger, and no prompt
content unless asked for."""

from __future__ import annotations

import gzip
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator

import httpx
import pytest

pytest.importorskip("opentelemetry.sdk", reason="the otel extra is part of the test dependencies")
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2  # noqa: E402
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2  # noqa: E402

from router.config import Config
from router.config_sections import TelemetryConfig  # noqa: E402
from router.telemetry import build_telemetry, wanted  # noqa: E402
from tests.conftest import KEY_A, Proc, ledger_record, mock_config, mock_stats, start_gateway, start_mock  # noqa: E402

H = {"authorization": f"Bearer {KEY_A}"}
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
CANARY = "PROMPT-CANARY-5d1e"


class Collector:
    """An OTLP/HTTP receiver: every span and metric data point exported to it."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.metrics: list[Any] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                if self.headers.get("content-encoding") == "gzip":
                    raw = gzip.decompress(raw)
                if self.path == "/v1/traces":
                    req = trace_service_pb2.ExportTraceServiceRequest.FromString(raw)
                    with outer.lock:
                        outer.spans += [s for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans]
                elif self.path == "/v1/metrics":
                    req = metrics_service_pb2.ExportMetricsServiceRequest.FromString(raw)
                    with outer.lock:
                        outer.metrics += [
                            m for rm in req.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
                        ]
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, what: Callable[[], Any], timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                found = what()
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError("the collector did not receive it")

    def trace(self, request_id: str) -> tuple[Any, list[Any]]:
        """The server span of one request and its client spans, once all are exported."""

        def find() -> tuple[Any, list[Any]] | None:
            server = next((s for s in self.spans if attrs(s).get("switchyard.request_id") == request_id), None)
            if server is None:
                return None
            kids = [s for s in self.spans if s.parent_span_id == server.span_id]
            return (server, kids) if len(kids) >= attrs(server)["switchyard.attempts"] else None

        return self.wait(find)

    def close(self) -> None:
        self.server.shutdown()


def value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def attrs(obj: Any) -> dict[str, Any]:
    return {a.key: value(a.value) for a in obj.attributes}


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proc, Collector]]:
    d = tmp_path_factory.mktemp("telemetry")
    collector = Collector()
    mock = start_mock(d / "mock")
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.base,
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "OTEL_METRIC_EXPORT_INTERVAL": "200",
        "OTEL_SERVICE_NAME": "switchyard-test",
    }
    gw = start_gateway(d / "gw", mock_config(mock.base), env)
    gw.extra["mock"] = mock
    yield gw, collector
    gw.stop()
    mock.stop()
    collector.close()


def test_one_request_gives_the_documented_spans(traced) -> None:
    gw, collector = traced
    r = httpx.post(
        gw.base + "/v1/chat/completions",
        timeout=30,
        headers={**H, "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"},
        json={
            "model": "mock-gpt",
            "messages": [{"role": "user", "content": CANARY}],
            "max_tokens": 7,
            "temperature": 0.5,
        },
    )
    assert r.status_code == 200, r.text
    rid = r.headers["x-request-id"]
    server, clients = collector.trace(rid)
    # the client's traceparent is the parent
    assert server.trace_id.hex() == TRACE_ID and server.parent_span_id.hex() == PARENT_ID
    assert server.kind == server.SPAN_KIND_SERVER and server.name == "POST /v1/chat/completions"
    record = ledger_record(gw, KEY_A, rid)
    a = attrs(server)
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.request.model"] == "mock-gpt"
    assert a["gen_ai.response.model"] == "mock-gpt" and a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.usage.input_tokens"] == record["prompt_tokens"]
    assert a["gen_ai.usage.output_tokens"] == record["completion_tokens"]
    assert a["gen_ai.request.max_tokens"] == 7 and a["gen_ai.request.temperature"] == 0.5
    assert a["switchyard.tenant"] == "a" and a["switchyard.key_id"] == "tenant-a"
    assert a["switchyard.cost_usd"] == pytest.approx(record["cost_usd"], rel=1e-9)
    assert a["switchyard.charge_usd"] == pytest.approx(record["charge_usd"], rel=1e-9)
    assert a["http.response.status_code"] == 200 and a["http.request.method"] == "POST"
    # one client span per upstream call, a child of the server span ...
    [client] = clients
    c = attrs(client)
    assert client.kind == client.SPAN_KIND_CLIENT and client.name == "chat mock-gpt"
    assert c["gen_ai.operation.name"] == "chat" and c["gen_ai.request.model"] == "mock-gpt"
    assert c["gen_ai.usage.input_tokens"] == record["prompt_tokens"] and c["switchyard.role"] == "answer"
    assert (
        server.start_time_unix_nano
        <= client.start_time_unix_nano
        <= client.end_time_unix_nano
        <= server.end_time_unix_nano
    )
    # ... whose context the upstream received as its traceparent
    sent = mock_stats(gw.extra["mock"])["last_headers"]["traceparent"]
    assert sent == f"00-{TRACE_ID}-{client.span_id.hex()}-01"
    # no prompt content unless asked for
    dumped = json.dumps([attrs(s) for s in collector.spans], default=str)
    assert CANARY not in dumped and "gen_ai.input.messages" not in dumped


def test_a_failover_and_a_stream(traced) -> None:
    gw, collector = traced
    r = httpx.post(
        gw.base + "/v1/chat/completions",
        headers=H,
        timeout=30,
        json={"model": "failover", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5},
    )
    assert r.status_code == 200
    server, clients = collector.trace(r.headers["x-request-id"])
    assert server.parent_span_id == b""  # no traceparent from the client: a new trace
    by_model = {attrs(s)["gen_ai.request.model"]: s for s in clients}
    assert attrs(by_model["mock-500"])["error.type"] == "server_error"
    assert by_model["mock-500"].status.code == by_model["mock-500"].status.STATUS_CODE_ERROR
    assert "error.type" not in attrs(by_model["mock-gpt"]) and attrs(server)["switchyard.attempts"] == 2
    with httpx.stream(
        "POST",
        gw.base + "/v1/chat/completions",
        headers=H,
        timeout=30,
        json={"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}], "stream": True},
    ) as s:
        rid = s.headers["x-request-id"]
        body = "".join(s.iter_text())
    assert "[DONE]" in body
    server, [client] = collector.trace(rid)
    assert attrs(server)["switchyard.stream"] is True and attrs(client)["gen_ai.usage.output_tokens"] > 0
    ttft = collector.wait(lambda: [m for m in collector.metrics if m.name == "gen_ai.server.time_to_first_token"])
    assert ttft[0].unit == "s"
    # a refused request is traced too, with its status
    bad = httpx.post(gw.base + "/v1/chat/completions", headers=H, json={"model": "nope", "messages": []})
    spans = collector.wait(
        lambda: [s for s in collector.spans if attrs(s).get("http.response.status_code") == bad.status_code]
    )
    assert spans[0].kind == spans[0].SPAN_KIND_SERVER


def test_genai_metrics_carry_their_names_units_and_the_ledgers_tokens(traced) -> None:
    gw, collector = traced
    rids = []
    for _ in range(3):
        r = httpx.post(
            gw.base + "/v1/chat/completions",
            headers=H,
            timeout=30,
            json={"model": "fast-sim", "messages": [{"role": "user", "content": "count me"}], "max_tokens": 9},
        )
        assert r.status_code == 200
        rids.append(r.headers["x-request-id"])
    records = [ledger_record(gw, KEY_A, rid) for rid in rids]
    want_in = sum(x["prompt_tokens"] for x in records)
    want_out = sum(x["completion_tokens"] for x in records)

    def usage(kind: str) -> float | None:
        # cumulative temporality: the latest export holds the totals so far
        points = [
            p
            for m in collector.metrics
            if m.name == "gen_ai.client.token.usage"
            for p in m.histogram.data_points
            if attrs(p).get("gen_ai.request.model") == "mid" and attrs(p).get("gen_ai.token.type") == kind
        ]
        return points[-1].sum if points else None

    collector.wait(lambda: usage("input") == want_in and usage("output") == want_out)
    units = {m.name: m.unit for m in collector.metrics}
    assert units["gen_ai.client.token.usage"] == "{token}"
    assert units["gen_ai.client.operation.duration"] == "s" and units["gen_ai.server.request.duration"] == "s"
    point = next(
        p
        for m in collector.metrics
        if m.name == "gen_ai.client.token.usage"
        for p in m.histogram.data_points
        if attrs(p).get("gen_ai.request.model") == "mid"
    )
    assert attrs(point)["gen_ai.provider.name"] == "switchyard.simulated"
    assert list(point.explicit_bounds)[:3] == [1, 4, 16]  # the semantic conventions' boundaries
    assert all(not str(k).startswith("switchyard.tenant") for p in [point] for k in attrs(p))  # bounded labels only


def test_content_is_recorded_only_when_asked_and_off_by_default(tmp_path) -> None:
    collector = Collector()
    mock = start_mock(tmp_path / "mock")
    cfg = mock_config(mock.base) + f"telemetry: {{endpoint: '{collector.base}', capture_content: true}}\n"
    gw = start_gateway(tmp_path / "gw", cfg, {"OTEL_BSP_SCHEDULE_DELAY": "50"})
    try:
        r = httpx.post(
            gw.base + "/v1/chat/completions",
            headers=H,
            timeout=30,
            json={"model": "mock-gpt", "messages": [{"role": "user", "content": CANARY}]},
        )
        server, _ = collector.trace(r.headers["x-request-id"])
        assert CANARY in attrs(server)["gen_ai.input.messages"]
    finally:
        gw.stop()
        mock.stop()
        collector.close()
    # off unless configured or an OTLP endpoint is in the environment; OTEL_SDK_DISABLED wins
    off = TelemetryConfig()
    assert not wanted(off, {}) and wanted(off, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"})
    assert not wanted(off, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"})
    assert wanted(TelemetryConfig(enabled=True), {}) and build_telemetry(off, {}) is None
    assert wanted(TelemetryConfig(endpoint="http://c:4318"), {})
    assert not wanted(TelemetryConfig(enabled=False, endpoint="http://c:4318"), {"OTEL_EXPORTER_OTLP_ENDPOINT": "x"})
    assert (
        Config.model_validate(
            {"model_list": [{"model_name": "m", "litellm_params": {"model": "simulated/small"}}]}
        ).telemetry.enabled
        is None
    )


def test_a_missing_sdk_is_a_clear_error(monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)
    with pytest.raises(RuntimeError, match=r"pip install 'switchyard\[otel\]'"):
        build_telemetry(TelemetryConfig(enabled=True), {})
