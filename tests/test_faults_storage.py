"""Storage faults against the real gateway process: PostgreSQL and Redis stopped mid-load and
restarted (private servers, so nothing else on the machine is touched). Counts reconcile with the
mock upstream's own count."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest

from tests.conftest import ADMIN_KEY, KEY_A, mock_stats, start_gateway, start_mock
from tests.servers import PrivatePostgres, PrivateRedis

H = {"authorization": f"Bearer {KEY_A}"}
BODY = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}


def config(mock_base: str, *, db: bool = False, redis: bool = False, fail_mode: str = "open") -> str:
    storage = []
    if db:
        storage.append("  database_url: os.environ/SY_PG")
    if redis:
        storage.append("  redis_url: os.environ/SY_REDIS")
    return f"""
model_list:
  - model_name: mock-gpt
    litellm_params: {{model: openai/mock-gpt, api_base: '{mock_base}/v1', api_key: os.environ/MOCK_PROVIDER_KEY}}
    model_info: {{input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}}
storage:
{chr(10).join(storage) or "  data_dir: .switchyard"}
limits:
  fail_mode: {fail_mode}
  rate_limits: [{{scope: tenant, id: a, rpm: 100000}}]
  budgets: [{{scope: tenant, id: a, period: day, usd: 1000}}]
auth:
  admin_key: os.environ/TEST_ADMIN_KEY
  keys: [{{id: tenant-a, tenant: a, key: os.environ/TEST_KEY_A}}]
"""


async def load(base: str, seconds: float, concurrency: int = 8) -> list[int]:
    statuses: list[int] = []
    stop = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=30) as client:

        async def worker() -> None:
            while time.monotonic() < stop:
                try:
                    r = await client.post(base + "/v1/chat/completions", headers=H, json=BODY)
                    statuses.append(r.status_code)
                except httpx.HTTPError:
                    statuses.append(0)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


def ledger_count(gw) -> int:
    r = httpx.get(gw.base + "/admin/usage?bucket=none&start=0", headers={"authorization": f"Bearer {ADMIN_KEY}"})
    data = r.json()["data"]
    return data[0]["requests"] if data else 0


def test_postgres_down_and_back_ledger_holds_exactly_one_record_per_request(tmp_path) -> None:
    pg = PrivatePostgres()
    pg.start()
    mock = start_mock(tmp_path / "mock")
    gw = start_gateway(tmp_path / "gw", config(mock.base, db=True), {"SY_PG": pg.url})
    try:

        def outage() -> None:
            time.sleep(1.0)
            pg.stop()
            time.sleep(2.0)
            pg.start()

        t = threading.Thread(target=outage)
        t.start()
        statuses = asyncio.run(load(gw.base, 5.0))
        t.join()
        served = mock_stats(mock)["requests"]["mock-gpt"]
        assert statuses.count(200) == len(statuses) == served, "serving never stopped during the outage"
        metrics = httpx.get(gw.base + "/metrics").text
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and ledger_count(gw) != served:
            time.sleep(0.3)
        n = ledger_count(gw)
        spilled = [line for line in metrics.splitlines() if line.startswith("switchyard_ledger_records_spilled_total")]
        print(f"\nPostgreSQL outage: {served} requests served, {n} ledger records; {spilled}")
        assert n == served
        assert float(spilled[0].split()[-1]) > 0, "the outage really happened mid-load"
        assert gw.stop() == 0
    finally:
        gw.stop()
        mock.stop()
        pg.cleanup()


@pytest.mark.parametrize("fail_mode", ["open", "closed"])
def test_redis_down_and_back(tmp_path, fail_mode) -> None:
    rd = PrivateRedis()
    rd.start()
    mock = start_mock(tmp_path / "mock")
    gw = start_gateway(tmp_path / "gw", config(mock.base, redis=True, fail_mode=fail_mode), {"SY_REDIS": rd.url})
    try:
        assert httpx.post(gw.base + "/v1/chat/completions", headers=H, json=BODY).status_code == 200
        rd.stop()
        during = [httpx.post(gw.base + "/v1/chat/completions", headers=H, json=BODY) for _ in range(5)]
        ready = httpx.get(gw.base + "/readyz").json()
        assert ready["checks"]["state"] is False
        if fail_mode == "open":
            assert [r.status_code for r in during] == [200] * 5  # local limits, logged and counted
            assert gw.output().count("failing open") == 1, "logged once per outage, not once per request"
        else:
            assert [r.status_code for r in during] == [503] * 5
            assert during[0].json()["error"]["code"] == "state_unavailable"
        rd.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            r = httpx.post(gw.base + "/v1/chat/completions", headers=H, json=BODY)
            if r.status_code == 200 and httpx.get(gw.base + "/readyz").json()["checks"]["state"]:
                break
            time.sleep(0.2)
        assert r.status_code == 200, "recovered without a restart"
        import redis as redis_lib

        keys = redis_lib.Redis.from_url(rd.url).keys("sy:*")
        assert keys, "admissions reach Redis again after it comes back"
        errors = [
            line
            for line in httpx.get(gw.base + "/metrics").text.splitlines()
            if line.startswith("switchyard_state_errors_total")
        ]
        assert float(errors[0].split()[-1]) >= 5
    finally:
        gw.stop()
        mock.stop()
        rd.stop()


def test_slow_redis_fails_open_within_its_timeout(tmp_path) -> None:
    """Redis that answers nothing for 5 s (DEBUG SLEEP): admissions time out after 0.5 s and the
    gateway keeps serving on local limits; when Redis wakes, admissions go back to it."""
    import redis as redis_lib

    rd = PrivateRedis()
    rd.start()
    mock = start_mock(tmp_path / "mock")
    gw = start_gateway(tmp_path / "gw", config(mock.base, redis=True, fail_mode="open"), {"SY_REDIS": rd.url})
    try:
        assert httpx.post(gw.base + "/v1/chat/completions", headers=H, json=BODY).status_code == 200
        slept: list[object] = []
        sleeper = threading.Thread(
            target=lambda: slept.append(
                redis_lib.Redis.from_url(rd.url, socket_timeout=10).execute_command("DEBUG", "SLEEP", "5")
            )
        )
        sleeper.start()
        time.sleep(0.2)
        t0 = time.monotonic()
        r = httpx.post(gw.base + "/v1/chat/completions", headers=H, json=BODY, timeout=10)
        # Redis sleeps 5 s: an answer well before it woke did not wait for it (room for a busy machine)
        assert r.status_code == 200 and time.monotonic() - t0 < 3.5
        sleeper.join()
        assert slept, "Redis really was asleep"
        errors = [
            line
            for line in httpx.get(gw.base + "/metrics").text.splitlines()
            if line.startswith("switchyard_state_errors_total")
        ]
        assert float(errors[0].split()[-1]) >= 1, "the admission timed out against the sleeping Redis"
        keys_before = len(redis_lib.Redis.from_url(rd.url).keys("sy:rl:*"))
        assert httpx.post(gw.base + "/v1/chat/completions", headers=H, json=BODY).status_code == 200
        assert len(redis_lib.Redis.from_url(rd.url).keys("sy:rl:*")) >= max(keys_before, 1)
    finally:
        gw.stop()
        mock.stop()
        rd.stop()


def test_feedback_given_while_redis_is_down_reaches_it_when_it_is_back(tmp_path) -> None:
    rd = PrivateRedis()
    rd.start()
    mock = start_mock(tmp_path / "mock")
    pdir = tmp_path / "policies"
    pdir.mkdir()
    (pdir / "learn.yaml").write_text(
        "name: learn\nbind: {aliases: [learn]}\ncandidates: [mock-gpt]\n"
        "objective: {type: cheapest_above, target: 0.5}\n"
        "quality: {bandit: {enabled: true, exploration: 0}}\n"
    )
    text = config(mock.base, redis=True) + f"policies: {{dirs: ['{pdir}'], watch_interval: 0.2}}\n"
    gw = start_gateway(tmp_path / "gw", text, {"SY_REDIS": rd.url})
    body = {**BODY, "model": "learn"}
    try:
        rid = httpx.post(gw.base + "/v1/chat/completions", headers=H, json=body).headers["x-request-id"]
        rd.stop()
        fb = httpx.post(gw.base + "/v1/feedback", headers=H, json={"request_id": rid, "score": 0.25})
        assert fb.status_code == 200, "feedback is taken while the shared store is down"
        rd.start()
        import redis as redis_lib

        shared = redis_lib.Redis.from_url(rd.url)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not shared.hgetall("sy:bandit:learn"):
            time.sleep(0.2)
        totals = shared.hgetall("sy:bandit:learn")
        assert (
            float(totals[b"n\x1fmock-gpt\x1fgeneral"]) == 1.0 and float(totals[b"s\x1fmock-gpt\x1fgeneral"]) == 0.25
        ), "handed to Redis once it was back, so the next sync does not drop it"
    finally:
        gw.stop()
        mock.stop()
        rd.stop()


@pytest.mark.parametrize("component", ["postgresql", "redis"])
def test_a_30_s_outage_keeps_the_gateway_ready_and_loses_nothing(tmp_path, component) -> None:
    """A 30 s outage of the ledger database, or of Redis under fail_mode: open, mid-load: /readyz
    stays 200 and says degraded (a readiness probe must not pull every replica for a database blip),
    no request fails, and afterwards the ledger holds one record per answered request. With the
    database down again, SIGTERM still stops the gateway cleanly (exit 0, no traceback)."""
    server = PrivatePostgres() if component == "postgresql" else PrivateRedis()
    server.start()
    mock = start_mock(tmp_path / "mock")
    if component == "postgresql":
        gw = start_gateway(tmp_path / "gw", config(mock.base, db=True), {"SY_PG": server.url})
    else:
        gw = start_gateway(tmp_path / "gw", config(mock.base, redis=True, fail_mode="open"), {"SY_REDIS": server.url})
    probes: list[tuple[int, str]] = []
    down = threading.Event()
    finished = threading.Event()

    def outage() -> None:
        time.sleep(1.0)
        server.stop()
        down.set()
        time.sleep(30.0)
        server.start()
        down.clear()

    def probe() -> None:
        with httpx.Client(timeout=5) as c:
            while not finished.is_set():
                try:
                    r = c.get(gw.base + "/readyz")
                    probes.append((r.status_code, r.json()["status"] if down.is_set() else "-"))
                except httpx.HTTPError:
                    probes.append((0, "unreachable"))
                time.sleep(0.25)

    try:
        threads = [threading.Thread(target=outage), threading.Thread(target=probe)]
        for t in threads:
            t.start()
        statuses = asyncio.run(load(gw.base, 33.0, concurrency=2))
        threads[0].join()
        finished.set()
        threads[1].join()
        served = mock_stats(mock)["requests"]["mock-gpt"]
        assert statuses.count(200) == len(statuses) == served, "no request failed during the outage"
        assert {s for s, _ in probes} == {200}, "readiness held throughout"
        assert "degraded" in {state for _, state in probes}, "the outage shows in /readyz"
        after = httpx.get(gw.base + "/readyz").json()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (after["status"] != "ready" or ledger_count(gw) != served):
            time.sleep(0.3)
            after = httpx.get(gw.base + "/readyz").json()
        assert after["status"] == "ready" and after["degraded"] == []
        assert ledger_count(gw) == served
        print(
            f"\n{component} outage of 30 s: {served} requests answered, {ledger_count(gw)} ledger records, "
            f"{len(probes)} readiness probes all 200"
        )
        if component == "postgresql":
            server.stop()
            assert gw.stop() == 0
            assert "Traceback" not in gw.output()
    finally:
        finished.set()
        gw.stop()
        mock.stop()
        if component == "postgresql":
            server.cleanup()
        else:
            server.stop()


def test_a_redis_restart_costs_no_request(tmp_path) -> None:
    """Pooled connections to a Redis that restarted are broken; the first command on each is retried
    once on a fresh connection, so under fail_mode: closed no request gets a 503 for it."""
    rd = PrivateRedis()
    rd.start()
    mock = start_mock(tmp_path / "mock")
    gw = start_gateway(tmp_path / "gw", config(mock.base, redis=True, fail_mode="closed"), {"SY_REDIS": rd.url})
    try:
        first = asyncio.run(load(gw.base, 1.0, concurrency=8))  # several pooled connections in use
        assert set(first) == {200}
        rd.stop()
        rd.start()
        after = asyncio.run(load(gw.base, 1.0, concurrency=8))
        assert set(after) == {200}, f"{after.count(503)} of {len(after)} got 503 after the restart"
    finally:
        gw.stop()
        mock.stop()
        rd.stop()
