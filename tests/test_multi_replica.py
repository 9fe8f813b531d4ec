"""Two gateway processes sharing one Redis and one PostgreSQL, as replicas would: budgets with zero
overshoot under concurrent load, rate limits that hold globally, and one ledger."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import redis

from tests.conftest import (
    ADMIN_KEY,
    KEY_A,
    KEY_B,
    KEY_C,
    inside_one_minute,
    ledger_record,
    start_gateway,
    start_mock,
)
from tests.servers import flushable_redis_url, fresh_database, shared_database_url
from tests.test_ledger import record

BUDGET_USD = 0.002
PICK = """
name: pick
bind: {{aliases: [pick]}}
candidates: [mock-gpt, other-gpt]
objective: {{type: fixed, model: {model}}}
"""

# Same price: cheapest_above prefers the higher predicted quality (other-gpt) until feedback says otherwise
LEARN = """
name: learn
bind: {aliases: [learn]}
candidates: [mock-gpt, other-gpt]
objective: {type: cheapest_above, target: 0.7}
quality: {priors: {mock-gpt: 0.72, other-gpt: 0.9}, bandit: {enabled: true, exploration: 0.0, prior_strength: 10}}
"""


def replica_config(mock_base: str, policy_dir: str) -> str:
    return f"""
model_list:
  - model_name: mock-gpt
    litellm_params: {{model: openai/mock-gpt, api_base: '{mock_base}/v1', api_key: os.environ/MOCK_PROVIDER_KEY}}
    model_info: {{input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}}
  - model_name: other-gpt
    litellm_params: {{model: openai/mock-gpt, api_base: '{mock_base}/v1', api_key: os.environ/MOCK_PROVIDER_KEY}}
    model_info: {{input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}}
  - model_name: pair
    litellm_params: {{model: openai/mock-gpt, api_base: '{mock_base}/v1', api_key: os.environ/MOCK_PROVIDER_KEY}}
    model_info: {{id: pair-1, input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}}
  - model_name: pair
    litellm_params: {{model: openai/mock-gpt, api_base: '{mock_base}/v1', api_key: os.environ/MOCK_PROVIDER_KEY}}
    model_info: {{id: pair-2, input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}}
policies: {{dirs: ['{policy_dir}'], watch_interval: 0.3}}
storage:
  database_url: os.environ/SY_TEST_DATABASE_URL
  redis_url: os.environ/SY_TEST_REDIS_URL
limits:
  budgets:
    - {{scope: tenant, id: a, period: day, usd: {BUDGET_USD}}}
  rate_limits:
    - {{scope: key, id: tenant-b, rpm: 25}}
auth:
  admin_key: os.environ/TEST_ADMIN_KEY
  keys:
    - {{id: tenant-a, tenant: a, key: os.environ/TEST_KEY_A}}
    - {{id: tenant-b, tenant: b, key: os.environ/TEST_KEY_B}}
    - {{id: tenant-c, tenant: c, key: os.environ/TEST_KEY_C}}
"""


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    redis_url = flushable_redis_url()
    redis.Redis.from_url(redis_url).flushdb()
    db_url, drop = fresh_database(shared_database_url())
    d = tmp_path_factory.mktemp("replicas")
    mock = start_mock(d / "mock")
    env = {"SY_TEST_DATABASE_URL": db_url, "SY_TEST_REDIS_URL": redis_url}
    pdir = d / "policies"
    pdir.mkdir()
    (pdir / "pick.yaml").write_text(PICK.format(model="mock-gpt"))
    (pdir / "learn.yaml").write_text(LEARN)
    (pdir / "pair.yaml").write_text("name: pair\nbind: {aliases: [pair-chat]}\nobjective: {type: fixed, model: pair}\n")
    gws = [start_gateway(d / f"gw{i}", replica_config(mock.base, str(pdir)), env) for i in range(2)]
    for g in gws:
        g.extra["pdir"] = pdir
    yield gws, mock, redis_url
    for g in gws:
        g.stop()
    mock.stop()
    drop()


async def hammer(bases: list[str], key: str, n: int, body: dict, concurrency: int = 40) -> list[httpx.Response]:
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=concurrency * 2)) as client:

        async def one(i: int) -> httpx.Response:
            async with sem:
                return await client.post(
                    bases[i % len(bases)] + "/v1/chat/completions",
                    headers={"authorization": f"Bearer {key}"},
                    json=body,
                )

        return await asyncio.gather(*(one(i) for i in range(n)))


def ledger_total(gw, tenant: str) -> dict:
    return httpx.get(
        gw.base + f"/admin/usage?bucket=none&tenant={tenant}&start=0", headers={"authorization": f"Bearer {ADMIN_KEY}"}
    ).json()["data"][0]


def test_budget_holds_across_replicas_with_zero_overshoot(replicas) -> None:
    gws, mock, _ = replicas
    body = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 40}
    responses = asyncio.run(hammer([g.base for g in gws], KEY_A, 300, body))
    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert len(ok) + len(refused) == 300
    assert refused and all(r.json()["error"]["code"] == "insufficient_quota" for r in refused)
    assert {r.headers["x-request-id"] for r in ok}
    charged = sum(float(r.headers["x-switchyard-charge-usd"]) for r in ok)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and ledger_total(gws[0], "a")["requests"] < len(ok):
        time.sleep(0.2)
    total = ledger_total(gws[1], "a")
    print(
        f"\nbudget ${BUDGET_USD}: {len(ok)} served, {len(refused)} refused, spent ${total['charge_usd']:.6f} "
        f"(headers say ${charged:.6f}); each request costs at most "
        f"${(11 * 1.25 + 32) * 1e-6 + 40 * 2e-6:.6f} reserved, ${11e-6 + 40 * 2e-6:.6f} actual"
    )
    assert total["requests"] == len(ok), "one ledger, one record per request served, from both replicas"
    assert total["charge_usd"] <= BUDGET_USD
    assert charged == pytest.approx(total["charge_usd"], rel=1e-9)
    # the budget was used, not refused early: the headroom left is less than one reservation
    assert BUDGET_USD - total["charge_usd"] < (11 * 1.25 + 32) * 1e-6 + 40 * 2e-6 + 1e-9


def test_rate_limit_is_global_across_replicas(replicas) -> None:
    gws, _, _ = replicas
    inside_one_minute(8)  # keep the burst inside one one-minute window
    body = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    responses = asyncio.run(hammer([g.base for g in gws], KEY_B, 60, body, concurrency=20))
    ok = [r for r in responses if r.status_code == 200]
    limited = [r for r in responses if r.status_code == 429]
    print(f"\nrpm 25 across 2 replicas: {len(ok)} served, {len(limited)} limited")
    assert len(ok) == 25 and len(limited) == 35
    assert all(r.json()["error"]["code"] == "rate_limit_exceeded" for r in limited)
    assert {r.headers["x-ratelimit-limit-requests"] for r in ok} == {"25"}
    remaining = sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in ok)
    assert remaining == list(range(25)), "each admission saw the shared counter"
    assert all(r.headers["retry-after"] for r in limited)


def served(gw, headers: dict, body: dict) -> str:
    """The model that answered one chat request on this replica."""
    return httpx.post(gw.base + "/v1/chat/completions", headers=headers, json=body).headers.get(
        "x-switchyard-model", ""
    )


def eventually(observe, want, seconds: float = 10.0):
    """Observe until it gives ``want`` or time runs out; the last observation."""
    deadline = time.monotonic() + seconds
    seen = observe()
    while seen != want and time.monotonic() < deadline:
        time.sleep(0.3)
        seen = observe()
    return seen


def test_policy_reload_reaches_both_replicas(replicas) -> None:
    gws, _, _ = replicas
    h = {"authorization": f"Bearer {KEY_C}"}
    body = {"model": "pick", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    assert {served(g, h, body) for g in gws} == {"mock-gpt"}
    (gws[0].extra["pdir"] / "pick.yaml").write_text(PICK.format(model="other-gpt"))  # one shared file, as a ConfigMap
    seen = eventually(lambda: {served(g, h, body) for g in gws}, {"other-gpt"})
    assert seen == {"other-gpt"}, "both replicas reloaded the changed policy without a restart"


def test_feedback_on_one_replica_shifts_the_other(replicas) -> None:
    gws, _, redis_url = replicas
    h = {"authorization": f"Bearer {KEY_C}"}
    body = {"model": "learn", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    assert {served(g, h, body) for g in gws} == {"other-gpt"}
    for _ in range(3):  # posterior of other-gpt: (0.9 x 10 + 0) / (10 + 3) = 0.69 < 0.7
        r = httpx.post(gws[0].base + "/v1/chat/completions", headers=h, json=body)
        assert r.headers["x-switchyard-model"] == "other-gpt"
        fb = httpx.post(
            gws[0].base + "/v1/feedback", headers=h, json={"request_id": r.headers["x-request-id"], "score": 0}
        )
        assert fb.status_code == 200, fb.text
    assert redis.Redis.from_url(redis_url).hgetall("sy:bandit:learn"), "the feedback totals are shared"
    picked = eventually(lambda: served(gws[1], h, body), "mock-gpt")
    assert picked == "mock-gpt", "the replica that got no feedback learned from the other's"


def test_a_request_scored_again_on_any_replica_counts_once(replicas) -> None:
    gws, _, redis_url = replicas
    h = {"authorization": f"Bearer {KEY_C}"}
    body = {"model": "learn", "messages": [{"role": "user", "content": "once"}], "max_tokens": 2}
    r = httpx.post(gws[0].base + "/v1/chat/completions", headers=h, json=body)
    model = r.headers["x-switchyard-model"]
    shared = redis.Redis.from_url(redis_url)

    def totals() -> tuple[float, float, float]:
        raw = shared.hgetall("sy:bandit:learn")
        return (
            float(raw.get(f"n\x1f{model}\x1fgeneral".encode(), 0)),
            float(raw.get(f"s\x1f{model}\x1fgeneral".encode(), 0)),
            float(raw.get(f"p\x1f{model}\x1fgeneral".encode(), 0)),
        )

    n0, s0, p0 = totals()
    replaced = []
    for gw, score in ((gws[0], 0.0), (gws[1], 1.0), (gws[0], 0.25)):  # a client re-scoring, on either replica
        fb = httpx.post(
            gw.base + "/v1/feedback", headers=h, json={"request_id": r.headers["x-request-id"], "score": score}
        )
        assert fb.status_code == 200, fb.text
        replaced.append(fb.json()["replaced"])
    assert replaced == [False, True, True]
    n1, s1, p1 = totals()
    assert n1 == n0 + 1 and s1 == pytest.approx(s0 + 0.25), "one observation, the latest score"
    # and the estimate the request was decided with, as its ledger record shows it, once
    decision = ledger_record(gws[0], KEY_C, r.headers["x-request-id"])["decision"]
    prior = next(c["prior"] for c in decision["candidates"] if c["model"] == model)
    assert 0 < prior < 1 and p1 == pytest.approx(p0 + prior), "feedback is measured against that estimate"


def test_a_long_conversation_continues_on_its_replica_through_either_gateway(replicas) -> None:
    gws, _, redis_url = replicas
    h = {"authorization": f"Bearer {KEY_C}"}

    def turn(gw, messages: list[dict]) -> tuple[str, str]:
        r = httpx.post(
            gw.base + "/v1/chat/completions",
            headers=h,
            timeout=30,
            json={"model": "pair-chat", "messages": messages, "max_tokens": 3},
        )
        assert r.status_code == 200, r.text
        return record(gw, r.headers["x-request-id"])["deployment"], r.json()["choices"][0]["message"]["content"]

    context = "context " * 1500  # long enough for a provider to cache it
    started = []
    for i in range(6):  # first turns on gateway 0, spread over both replicas of the model
        msgs = [{"role": "user", "content": f"{i} {context}"}]
        dep, answer = turn(gws[0], msgs)
        started.append((msgs + [{"role": "assistant", "content": answer}], dep))
    assert {dep for _, dep in started} == {"pair-1", "pair-2"}
    shared = redis.Redis.from_url(redis_url)
    assert eventually(lambda: len(shared.keys("sy:aff:*")) >= 6, True), "written off the request path"
    turn(gws[1], [{"role": "user", "content": "unrelated"}])  # gateway 1's round robin is out of step with 0's
    for i, (msgs, dep) in enumerate(started):  # next turns through gateway 1, which never saw them
        again, _ = turn(gws[1], msgs + [{"role": "user", "content": "and then?"}])
        assert again == dep, f"conversation {i} left the replica holding its cache"
