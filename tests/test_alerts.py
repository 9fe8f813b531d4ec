"""Budget alerts: thresholds and forecasts raise one alert each per period across replicas, signed
with HMAC-SHA256 and delivered to webhooks with retries; an unreachable webhook is dead-lettered and
never holds up a request; `switchyard alerts test` sends a sample."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import httpx
import pytest
import redis

from router.accounting.alerts import Alerter, sign
from router.config_sections import AlertsConfig, BudgetRule, WebhookConfig
from router.accounting.limits import BudgetKey
from router.metrics import Metrics
from router.accounting.state import NANO, MemoryState
from tests.conftest import ADMIN_KEY, GATEWAY_ENV, KEY_A, SWITCHYARD, free_port, start_gateway
from tests.servers import flushable_redis_url, fresh_database, shared_database_url

SECRET = "whsec-test-0b1c2d3e4f"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
BUDGET = 0.003


class Receiver:
    """A webhook endpoint: every POST's headers and body; ``fail`` answers 503."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.fail = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                outer.calls.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(503 if outer.fail else 200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alerts(self) -> list[dict[str, Any]]:
        out = []
        for headers, body in list(self.calls):
            want = (
                "v1="
                + hmac.new(
                    SECRET.encode(), headers["x-switchyard-timestamp"].encode() + b"." + body, hashlib.sha256
                ).hexdigest()
            )
            assert hmac.compare_digest(headers["x-switchyard-signature"], want), "a bad signature"
            out.append(json.loads(body))
        return out

    def close(self) -> None:
        self.server.shutdown()


def wait_for(what: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = what()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError("timed out")


def config(hook: str, extra: str = "", retries: int = 3) -> str:
    return f"""
model_list:
  - model_name: sim
    litellm_params: {{model: simulated/small, speed: 50}}
limits:
  budgets:
    - {{scope: tenant, id: a, period: day, usd: {BUDGET}}}
alerts:
  webhooks:
    - {{url: '{hook}', secret: os.environ/TEST_ALERT_SECRET}}
  retries: {retries}
  backoff: 0.05
  forecast: false
auth:
  admin_key: os.environ/TEST_ADMIN_KEY
  keys:
    - {{id: tenant-a, tenant: a, key: os.environ/TEST_KEY_A}}
{extra}"""


async def hammer(bases: list[str], n: int) -> list[int]:
    async with httpx.AsyncClient(timeout=30) as client:

        async def one(i: int) -> int:
            r = await client.post(
                bases[i % len(bases)] + "/v1/chat/completions",
                headers={"authorization": f"Bearer {KEY_A}"},
                json={"model": "sim", "max_tokens": 40, "messages": [{"role": "user", "content": "write at length"}]},
            )
            return r.status_code

        codes: list[int] = []
        for start in range(0, n, 8):  # waves of 8 at once, spread over both replicas
            codes += await asyncio.gather(*(one(i) for i in range(start, min(n, start + 8))))
            if codes[-1] == 429:
                break
        return codes


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_two_replicas_crossing_together_send_each_alert_once(receiver: Receiver, tmp_path) -> None:
    url = flushable_redis_url()
    redis.Redis.from_url(url).flushdb()
    db_url, drop = fresh_database(shared_database_url())
    extra = "storage:\n  redis_url: os.environ/SY_TEST_REDIS_URL\n  database_url: os.environ/SY_TEST_DATABASE_URL\n"
    env = {"SY_TEST_REDIS_URL": url, "SY_TEST_DATABASE_URL": db_url, "TEST_ALERT_SECRET": SECRET}
    gws = [start_gateway(tmp_path / f"r{i}", config(receiver.url, extra), env) for i in range(2)]
    try:
        codes = asyncio.run(hammer([g.base for g in gws], 400))
        assert 200 in codes and codes[-1] == 429, codes
        got = wait_for(lambda: len(receiver.alerts()) >= 3 and receiver.alerts())
        time.sleep(1.0)  # anything more would be a duplicate
        alerts = receiver.alerts()
        assert sorted(a["threshold_pct"] for a in alerts) == [50, 80, 100], alerts  # each once, signed
        by = {a["threshold_pct"]: a for a in got}
        assert by[80]["budget"] == {
            **by[80]["budget"],
            "scope": "tenant",
            "id": "a",
            "period": "day",
            "limit_usd": BUDGET,
        }
        assert by[80]["spent_usd"] >= 0.8 * BUDGET and by[100]["exhausted"] is True
        # the history, on either replica (one ledger), says each was sent
        history = httpx.get(gws[1].base + "/admin/alerts", headers=ADMIN).json()["data"]
        assert sorted((h["threshold"], h["status"], h["attempts"]) for h in history) == [
            (50, "sent", 1),
            (80, "sent", 1),
            (100, "sent", 1),
        ]
    finally:
        for g in gws:
            g.stop()
        drop()


def test_an_unreachable_webhook_is_retried_then_dead_lettered_without_blocking(tmp_path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/nobody"
    gw = start_gateway(tmp_path, config(dead, retries=2), {"TEST_ALERT_SECRET": SECRET})
    try:
        t0 = time.monotonic()
        codes = asyncio.run(hammer([gw.base], 400))
        assert 200 in codes and codes[-1] == 429
        history = wait_for(
            lambda: [
                h for h in httpx.get(gw.base + "/admin/alerts", headers=ADMIN).json()["data"] if h["status"] == "dead"
            ]
        )
        assert {h["attempts"] for h in history} == {3} and history[0]["last_error"]  # the first try and 2 retries
        # requests kept being answered while deliveries were failing
        assert time.monotonic() - t0 < 60
        metrics = httpx.get(gw.base + "/metrics").text
        assert 'switchyard_alerts_delivered_total{kind="threshold",status="dead"}' in metrics
    finally:
        gw.stop()


def test_a_failing_webhook_that_recovers_gets_the_alert(receiver: Receiver) -> None:
    receiver.fail = True
    cfg = AlertsConfig(webhooks=[WebhookConfig(url=receiver.url, secret="os.environ/X")], retries=4, backoff=0.05)
    alerter = Alerter(cfg, MemoryState(), None, Metrics(), lambda ref: SECRET if ref else None)

    async def run() -> str:
        task = asyncio.create_task(alerter.test())
        while len(receiver.calls) < 2:
            await asyncio.sleep(0.01)
        receiver.fail = False
        return await task

    assert asyncio.run(run()) == "sent"
    assert len(receiver.calls) >= 3 and receiver.alerts()[-1]["kind"] == "test"


def test_forecast_and_slack_format(receiver: Receiver) -> None:
    cfg = AlertsConfig(
        webhooks=[WebhookConfig(url=receiver.url, format="slack")], thresholds=[90], forecast_after=0.25, retries=0
    )
    alerter = Alerter(cfg, MemoryState(), None, Metrics(), lambda ref: None)
    rule = BudgetRule(scope="key", id="k1", period="day", usd=10.0)
    day = 1_800_000_000 // 86400 * 86400
    key = BudgetKey.of(rule, "k1", day + 3600)

    async def run() -> None:
        alerter.observe(key, int(4 * NANO), day + 3600)  # 1 h in: too early for a forecast
        alerter.observe(key, int(4 * NANO), day + 8 * 3600)  # 8 h in, $4: run-rate $12 a day > $10
        alerter.observe(key, int(5 * NANO), day + 9 * 3600)  # once per period
        await alerter.drain()

    asyncio.run(run())
    [(headers, body)] = receiver.calls
    text = json.loads(body)["text"]
    assert "forecast to reach $12.00" in text and "key budget 'k1' of $10.00" in text
    assert "x-switchyard-signature" not in headers  # no secret configured: unsigned


def test_alerts_test_command(receiver: Receiver, tmp_path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(config(receiver.url))
    env = {**__import__("os").environ, **GATEWAY_ENV, "TEST_ALERT_SECRET": SECRET}
    res = subprocess.run(
        [SWITCHYARD, "alerts", "test", "--config", str(cfg)], capture_output=True, text=True, timeout=60, env=env
    )
    assert res.returncode == 0 and "sent" in res.stdout, res.stdout + res.stderr
    [alert] = receiver.alerts()
    assert alert["kind"] == "test" and alert["budget"]["limit_usd"] == 100.0
    cfg.write_text(config(f"http://127.0.0.1:{free_port()}/x", retries=0))
    res = subprocess.run(
        [SWITCHYARD, "alerts", "test", "--config", str(cfg)], capture_output=True, text=True, timeout=60, env=env
    )
    assert res.returncode == 1 and "dead" in res.stdout
    assert sign(SECRET, "1", b"{}") == "v1=" + hmac.new(SECRET.encode(), b"1.{}", hashlib.sha256).hexdigest()
