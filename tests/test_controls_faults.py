"""The operator controls fail soft: with Redis unreachable and the OpenTelemetry collector and the
alert webhook down, requests are still answered and metered; the response cache misses, users and
tags are still recorded (bounded per process), alerts are dead-lettered, traces are dropped."""

from __future__ import annotations

import httpx

from tests.conftest import ADMIN_KEY, KEY_A, ledger_record, start_gateway

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}


def test_everything_down_but_the_upstream(tmp_path) -> None:
    from tests.conftest import free_port

    dead = [free_port() for _ in range(3)]
    cfg = f"""
model_list:
  - model_name: sim
    litellm_params: {{model: simulated/small, speed: 50}}
storage:
  redis_url: os.environ/SY_TEST_REDIS_URL
  redis_timeout: 0.2
cache: {{models: [sim]}}
attribution: {{tags: [feature], max_values: 2}}
limits:
  fail_mode: open
  budgets: [{{scope: tenant, id: a, period: day, usd: 0.5}}]
alerts:
  webhooks: [{{url: 'http://127.0.0.1:{dead[1]}/hook'}}]
  retries: 1
  backoff: 0.05
telemetry: {{endpoint: 'http://127.0.0.1:{dead[2]}'}}
auth:
  admin_key: os.environ/TEST_ADMIN_KEY
  keys:
    - {{id: tenant-a, tenant: a, key: os.environ/TEST_KEY_A}}
"""
    gw = start_gateway(
        tmp_path,
        cfg,
        {
            "SY_TEST_REDIS_URL": f"redis://127.0.0.1:{dead[0]}/0",
            "OTEL_BSP_SCHEDULE_DELAY": "50",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "1",
        },
    )
    try:
        h = {"authorization": f"Bearer {KEY_A}"}
        body = {"model": "sim", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "temperature": 0}
        answers = [
            httpx.post(
                gw.base + "/v1/chat/completions",
                headers=h,
                timeout=30,
                json={**body, "user": f"u{i}", "metadata": {"feature": f"f{i}"}},
            )
            for i in range(4)
        ]
        served = [r for r in answers if r.status_code == 200]
        assert served, [r.text for r in answers]
        # Redis holds the cache: unreachable, every lookup is a miss and the upstream answers
        assert all(r.headers["x-switchyard-cache"] == "miss" for r in served)
        recs = [ledger_record(gw, KEY_A, r.headers["x-request-id"]) for r in served]
        # users and tags still recorded, bounded by this process's own count
        assert [x["end_user"] for x in recs] == [f"u{i}" if i < 2 else "(other)" for i in range(len(recs))]
        # the budget's alerts could not be claimed in Redis: none sent, none duplicated, requests unharmed
        assert httpx.get(gw.base + "/readyz").json()["status"] in ("degraded", "ready")
        metrics = httpx.get(gw.base + "/metrics").text
        assert "switchyard_state_errors_total" in metrics
    finally:
        gw.stop()
