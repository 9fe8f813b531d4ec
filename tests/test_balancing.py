"""How a model's deployments share its traffic (server.routing_strategy, LiteLLM's routing_strategy)
and the per-deployment limits (rpm, tpm, max_parallel_requests, order): the balancers' choices from
their live load, the limits on one gateway, and the limits across two replicas sharing Redis."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any, Iterator

import httpx
import pytest
import redis

from router.balancing import Load
from router.config import Config
from router.registry import Registry
from router.services import load_catalog
from router.accounting.redis_state import RedisState
from router.tokens import Tokenizer
from tests.conftest import ADMIN_KEY, KEY_A, Proc, inside_one_minute, mock_stats, start_gateway, start_mock
from tests.servers import flushable_redis_url

H = {"authorization": f"Bearer {KEY_A}"}
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}


class Clock:
    def __init__(self, t: float = 6_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def registry(strategy: str, *params: dict[str, Any], clock: Clock | None = None) -> Registry:
    cfg = Config.model_validate(
        {
            "model_list": [
                {"model_name": "m", "litellm_params": {"model": "simulated/small", **p}, "model_info": {"id": f"d{i}"}}
                for i, p in enumerate(params)
            ],
            "server": {"routing_strategy": strategy},
        }
    )
    reg = Registry.build(cfg, load_catalog(cfg), Tokenizer(), lambda x: x)
    if clock is not None:
        reg.load.clock = clock
        reg.load.window = int(clock() // 60)
    return reg


def leads(reg: Registry, n: int) -> Counter[str]:
    return Counter(reg.route("m", "chat")[0].id for _ in range(n))


def test_weighted_shares_follow_weight_else_rpm() -> None:
    assert leads(registry("weighted", {"rpm": 300}, {"rpm": 100}), 40) == {"d0": 30, "d1": 10}
    # an explicit weight wins over rpm; no weight and no rpm/tpm: 1
    assert leads(registry("weighted", {"rpm": 300, "weight": 1}, {"tpm": 1000}), 1001) == {"d0": 1, "d1": 1000}
    assert leads(registry("weighted", {}, {}), 10) == {"d0": 5, "d1": 5}


def test_least_busy_leads_with_the_fewest_calls_in_flight() -> None:
    reg = registry("least-busy", {}, {}, {})
    assert [d.id for d in reg.route("m", "chat")] == ["d0", "d1", "d2"]  # a tie: configured order
    reg.load.started("d0")
    reg.load.started("d0")
    reg.load.started("d1")
    assert [d.id for d in reg.route("m", "chat")] == ["d2", "d1", "d0"]
    reg.load.finished("d0", 0.1, ok=True)
    reg.load.finished("d0", 0.1, ok=False)
    assert [d.id for d in reg.route("m", "chat")] == ["d0", "d2", "d1"]


def test_latency_tries_each_then_leads_with_the_fastest() -> None:
    reg = registry("latency", {}, {}, {})
    reg.load.finished("d0", 0.5, ok=True)
    assert reg.route("m", "chat")[0].id == "d1"  # not measured yet: tried before the measured ones
    reg.load.finished("d1", 0.2, ok=True)
    reg.load.finished("d2", 0.9, ok=True)
    assert [d.id for d in reg.route("m", "chat")] == ["d1", "d0", "d2"]
    # a fast error does not make a deployment look fast; a timeout makes it look slow
    reg.load.finished("d2", 0.001, ok=False)
    assert reg.load.latency["d2"] == 0.9
    reg.load.finished("d1", 5.0, ok=False)
    assert [d.id for d in reg.route("m", "chat")] == ["d0", "d2", "d1"]


def test_usage_leads_with_the_fewest_tokens_this_minute() -> None:
    clock = Clock()
    reg = registry("usage", {}, {}, clock=clock)
    reg.load.tokens("d0", 500)
    assert reg.route("m", "chat")[0].id == "d1"
    reg.load.tokens("d1", 900)
    assert reg.route("m", "chat")[0].id == "d0"
    clock.t += 60  # a new minute: nothing used yet, the configured order again
    assert [d.id for d in reg.route("m", "chat")] == ["d0", "d1"]


def test_rpm_tpm_and_max_parallel_leave_a_full_deployment_out() -> None:
    clock = Clock()
    reg = registry("weighted", {"rpm": 2}, {"tpm": 100}, {"max_parallel_requests": 1}, clock=clock)
    load = reg.load
    load.started("d0")
    load.started("d0")
    load.tokens("d1", 100)
    load.started("d2")
    assert reg.route("m", "chat") == []  # every deployment is full
    load.finished("d2", 0.1, ok=True)
    assert [d.id for d in reg.route("m", "chat")] == ["d2"]
    clock.t += 60  # the minute's counts end; calls in flight do not
    assert sorted(d.id for d in reg.route("m", "chat")) == ["d0", "d1", "d2"]
    assert load.seconds_to_room() == 61


def test_order_tries_the_lowest_order_first_and_balances_only_it() -> None:
    reg = registry("weighted", {"order": 2}, {"order": 1}, {}, {"order": 1})
    firsts = [[d.id for d in reg.route("m", "chat")] for _ in range(4)]
    assert [f[0] for f in firsts] == ["d1", "d3", "d1", "d3"]
    assert all(f[2:] == ["d0", "d2"] for f in firsts)  # order 2, then no order at all


def test_usage_is_shared_across_replicas_through_redis() -> None:
    url = flushable_redis_url()
    redis.Redis.from_url(url).flushdb()

    async def scenario() -> None:
        clock = Clock(time.time())
        a, b = Load(clock=clock), Load(clock=clock)
        sa, sb = RedisState(url), RedisState(url)
        try:
            for _ in range(3):
                a.started("d0")
            a.tokens("d0", 70)
            b.started("d0")
            for load, state in ((a, sa), (b, sb), (a, sa)):
                window, deltas = load.take_unsynced()
                load.synced(window, await state.usage_sync(window, deltas))
            assert a.used("d0") == b.used("d0") == (4, 70)
            b.started("d0")  # not synced yet: b knows it, a does not
            assert (a.used("d0"), b.used("d0")) == ((4, 70), (5, 70))
            # a sync that fails keeps the deltas for the next one: nothing is lost or counted twice
            window, deltas = b.take_unsynced()
            b.give_back(window, deltas)
            assert b.used("d0") == (5, 70)
            window, deltas = b.take_unsynced()
            b.synced(window, await sb.usage_sync(window, deltas))
            assert b.used("d0") == (5, 70)
        finally:
            await sa.aclose()
            await sb.aclose()

    asyncio.run(scenario())


# -- through the gateway --------------------------------------------------------------------------------
def pool(mock_base: str, strategy: str, limits: str = "", extra: str = "") -> str:
    api = f"{mock_base}/v1"
    lines = ["model_list:"]
    for i, upstream in enumerate(("mock-slow", "pool-b")):
        lines += [
            "  - model_name: pool",
            f"    litellm_params: {{model: openai/{upstream}, api_base: '{api}', api_key: os.environ/MOCK_PROVIDER_KEY"
            f"{limits}}}",
            f"    model_info: {{id: pool-{i}, input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}}",
        ]
    lines += [
        "  - model_name: spare",
        f"    litellm_params: {{model: openai/spare, api_base: '{api}', api_key: os.environ/MOCK_PROVIDER_KEY}}",
        f"router_settings: {{routing_strategy: {strategy}}}",
        "auth:",
        "  admin_key: os.environ/TEST_ADMIN_KEY",
        "  keys:",
        "    - {id: tenant-a, tenant: a, key: os.environ/TEST_KEY_A}",
    ]
    return "\n".join(lines) + "\n" + extra


@pytest.fixture(scope="module")
def mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    m = start_mock(tmp_path_factory.mktemp("balancing-mock"))
    yield m
    m.stop()


def reset(mock: Proc) -> None:
    httpx.post(mock.base + "/_reset")


def chat(gw: Proc, model: str = "pool", **extra: Any) -> httpx.Response:
    return httpx.post(
        gw.base + "/v1/chat/completions",
        headers=H,
        timeout=30,
        json={"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, **extra},
    )


def test_least_busy_sends_a_request_past_a_deployment_busy_streaming(mock: Proc, tmp_path) -> None:
    gw = start_gateway(tmp_path, pool(mock.base, "least-busy"))
    try:
        reset(mock)
        with httpx.stream(
            "POST",
            gw.base + "/v1/chat/completions",
            headers=H,
            timeout=30,
            json={"model": "pool", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 40, "stream": True},
        ) as s:
            lines = s.iter_lines()
            assert next(line for line in lines if line.startswith("data:"))  # pool-0 (mock-slow) is streaming
            busy = httpx.get(gw.base + "/admin/deployments", headers=ADMIN).json()
            assert busy["routing_strategy"] == "least-busy"
            assert {d["id"]: d["in_flight"] for d in busy["data"]}["pool-0"] == 1
            assert chat(gw).status_code == 200  # goes to pool-1 (pool-b), the idle one
            for _ in lines:
                pass
        assert mock_stats(mock)["requests"] == {"mock-slow": 1, "pool-b": 1}
        assert chat(gw).status_code == 200  # both idle again: the configured order
        assert mock_stats(mock)["requests"] == {"mock-slow": 2, "pool-b": 1}
    finally:
        gw.stop()


def test_per_deployment_rpm_then_fallbacks_then_a_clear_429(mock: Proc, tmp_path) -> None:
    gw = start_gateway(tmp_path, pool(mock.base, "simple-shuffle", ", rpm: 2"))
    try:
        reset(mock)
        inside_one_minute()
        codes = [chat(gw).status_code for _ in range(4)]
        assert codes == [200] * 4 and mock_stats(mock)["requests"] == {"mock-slow": 2, "pool-b": 2}
        refused = chat(gw)
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "deployments_at_capacity"
        assert refused.json()["error"]["type"] == "rate_limit_error"
        assert 1 <= int(refused.headers["retry-after"]) <= 61
        # a request's own fallbacks are tried when its model is at capacity
        ok = chat(gw, fallbacks=["spare"])
        assert ok.status_code == 200 and ok.headers["x-switchyard-model"] == "spare"
        state = {d["id"]: d for d in httpx.get(gw.base + "/admin/deployments", headers=ADMIN).json()["data"]}
        assert state["pool-0"]["minute"]["requests"] == 2 and state["pool-0"]["has_room"] is False
        assert state["pool-0"]["minute"]["tokens"] > 0 and state["pool-0"]["rpm"] == 2
        assert httpx.get(gw.base + "/admin/deployments", headers=H).status_code in (401, 403)
    finally:
        gw.stop()


def test_rpm_holds_across_two_replicas(mock: Proc, tmp_path) -> None:
    url = flushable_redis_url()
    redis.Redis.from_url(url).flushdb()
    extra = "storage:\n  redis_url: os.environ/SY_TEST_REDIS_URL\n"
    cfg = pool(mock.base, "usage-based-routing-v2", ", rpm: 2", extra)
    gws = [start_gateway(tmp_path / f"r{i}", cfg, {"SY_TEST_REDIS_URL": url}) for i in range(2)]
    try:
        reset(mock)
        inside_one_minute(20)
        assert [chat(gws[0]).status_code for _ in range(4)] == [200] * 4  # replica A fills both deployments
        deadline = time.monotonic() + 10  # replica B learns it at its next usage sync (every second)
        while time.monotonic() < deadline:
            seen = httpx.get(gws[1].base + "/admin/deployments", headers=ADMIN).json()["data"]
            if all(not d["has_room"] for d in seen if d["model"] == "pool"):
                break
            time.sleep(0.1)
        assert [d["minute"]["requests"] for d in seen if d["model"] == "pool"] == [2, 2]
        assert chat(gws[1]).status_code == 429
        assert mock_stats(mock)["requests"] == {"mock-slow": 2, "pool-b": 2}  # 4 in the minute, as configured
    finally:
        for g in gws:
            g.stop()
