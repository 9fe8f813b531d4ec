"""The exact response cache: a repeated deterministic request is answered without an upstream call,
through either replica, metered as a zero-cost hit with its saving, never across tenants unless
configured, replayed as a stream when asked, and bypassed by Cache-Control: no-cache."""

from __future__ import annotations

import time
from typing import Any, Iterator

import httpx
import pytest
import redis

from tests.conftest import ADMIN_KEY, KEY_A, KEY_B, KEY_C, Proc, ledger_record, mock_stats, start_gateway, start_mock
from tests.servers import flushable_redis_url

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}


def config(mock_base: str, extra: str = "", cache: str = "") -> str:
    api = f"{mock_base}/v1"
    return f"""
model_list:
  - model_name: mock-gpt
    litellm_params: {{model: openai/mock-gpt, api_base: '{api}', api_key: os.environ/MOCK_PROVIDER_KEY}}
    model_info: {{input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}}
  - model_name: other
    litellm_params: {{model: openai/other, api_base: '{api}', api_key: os.environ/MOCK_PROVIDER_KEY}}
    model_info: {{input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}}
cache: {{models: [mock-gpt], ttl: 600{cache}}}
limits:
  budgets: [{{scope: tenant, id: a, period: day, usd: 100}}]
auth:
  admin_key: os.environ/TEST_ADMIN_KEY
  keys:
    - {{id: tenant-a, tenant: a, key: os.environ/TEST_KEY_A}}
    - {{id: tenant-b, tenant: b, key: os.environ/TEST_KEY_B}}
    - {{id: tenant-a-other, tenant: a, key: os.environ/TEST_KEY_C, models: [other]}}
{extra}"""


def chat(
    gw: Proc, text: str, key: str = KEY_A, model: str = "mock-gpt", headers: dict[str, str] | None = None, **extra: Any
) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 6, "temperature": 0, **extra}
    return httpx.post(
        gw.base + "/v1/chat/completions",
        timeout=30,
        headers={"authorization": f"Bearer {key}", **(headers or {})},
        json=body,
    )


@pytest.fixture(scope="module")
def cached(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    d = tmp_path_factory.mktemp("cache")
    mock = start_mock(d / "mock")
    gw = start_gateway(d / "gw", config(mock.base))
    gw.extra["mock"] = mock
    yield gw
    gw.stop()
    mock.stop()


def upstream(gw: Proc) -> int:
    return sum(mock_stats(gw.extra["mock"])["requests"].values())


def test_a_repeat_is_a_metered_hit_with_its_saving(cached: Proc) -> None:
    n = upstream(cached)
    first, again = chat(cached, "what is 2+2?"), chat(cached, "what is 2+2?")
    assert first.status_code == again.status_code == 200
    assert first.headers["x-switchyard-cache"] == "miss" and again.headers["x-switchyard-cache"] == "hit"
    assert upstream(cached) == n + 1  # one upstream call for both
    a, b = first.json(), again.json()
    assert b["choices"] == a["choices"] and b["usage"] == a["usage"] and b["id"] != a["id"]
    assert again.headers["x-switchyard-cost-usd"] == again.headers["x-switchyard-charge-usd"] == "0.0000000000"
    miss_rec = ledger_record(cached, KEY_A, first.headers["x-request-id"])
    hit_rec = ledger_record(cached, KEY_A, again.headers["x-request-id"])
    assert hit_rec["cache"] == "hit" and hit_rec["cost_usd"] == 0.0 and hit_rec["charge_usd"] == 0.0
    assert hit_rec["usage_source"] == "cache" and hit_rec["prompt_tokens"] == hit_rec["completion_tokens"] == 0
    assert hit_rec["saved_usd"] == pytest.approx(miss_rec["cost_usd"], rel=1e-12) and miss_rec["cost_usd"] > 0
    assert float(again.headers["x-switchyard-saved-usd"]) == pytest.approx(miss_rec["cost_usd"], rel=1e-9)
    assert miss_rec["cache"] is None and hit_rec["model"] == "mock-gpt"
    # the Savings view: saved by the cache, recomputed from the ledger's lines
    s = httpx.get(
        cached.base + "/v1/insights/savings", headers={"authorization": f"Bearer {KEY_A}"}, params={"start": "1d"}
    ).json()
    page = httpx.get(
        cached.base + "/v1/requests",
        headers={"authorization": f"Bearer {KEY_A}"},
        params={"start": "1d", "limit": 1000},
    ).json()["data"]
    hits = [r for r in page if r.get("cache") == "hit"]
    assert s["cache_hits"] == len(hits) and s["cache_saved_usd"] == pytest.approx(sum(r["saved_usd"] for r in hits))


def test_only_deterministic_opted_in_requests_are_cached(cached: Proc) -> None:
    n = upstream(cached)
    for _ in range(2):
        r = chat(cached, "a poem please", temperature=0.8)
        assert r.status_code == 200 and "x-switchyard-cache" not in r.headers
    assert chat(cached, "other model", model="other").headers.get("x-switchyard-cache") is None
    assert upstream(cached) == n + 3
    # cache: true opts a sampled request in; cache: false opts a deterministic one out
    assert [chat(cached, "a haiku", temperature=0.8, cache=True).headers["x-switchyard-cache"] for _ in range(2)] == [
        "miss",
        "hit",
    ]
    r = chat(cached, "a haiku", temperature=0.8, cache=False)
    assert "x-switchyard-cache" not in r.headers


def test_no_cache_bypasses_and_tenants_do_not_share(cached: Proc) -> None:
    chat(cached, "shared question")
    n = upstream(cached)
    bypass = chat(cached, "shared question", headers={"cache-control": "no-cache"})
    assert bypass.headers["x-switchyard-cache"] == "miss" and upstream(cached) == n + 1
    other_tenant = chat(cached, "shared question", key=KEY_B)
    assert other_tenant.headers["x-switchyard-cache"] == "miss" and upstream(cached) == n + 2
    assert chat(cached, "shared question", key=KEY_B).headers["x-switchyard-cache"] == "hit"
    # a key of the same tenant that may not use the model is refused, never answered from the cache
    refused = chat(cached, "shared question", key=KEY_C)
    assert refused.status_code == 403 and "x-switchyard-cache" not in refused.headers
    # the fields that do not change the answer do not change the key
    assert chat(cached, "shared question", user="someone", metadata={"x": "y"}).headers["x-switchyard-cache"] == "hit"


def test_a_hit_replays_as_a_stream(cached: Proc) -> None:
    first = chat(cached, "stream me later")
    n = upstream(cached)
    with httpx.stream(
        "POST",
        cached.base + "/v1/chat/completions",
        timeout=30,
        headers={"authorization": f"Bearer {KEY_A}"},
        json={
            "model": "mock-gpt",
            "messages": [{"role": "user", "content": "stream me later"}],
            "max_tokens": 6,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    ) as s:
        assert s.headers["x-switchyard-cache"] == "hit"
        events = [line[6:] for line in s.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]" and upstream(cached) == n
    import json as _json

    chunks = [_json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == first.json()["choices"][0]["message"]["content"]
    assert chunks[-1]["usage"] == first.json()["usage"]
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"


def test_a_streamed_answer_is_kept_and_replayed(cached: Proc) -> None:
    def stream(text: str) -> tuple[str, list[dict[str, Any]]]:
        import json as _json

        with httpx.stream(
            "POST",
            cached.base + "/v1/chat/completions",
            timeout=30,
            headers={"authorization": f"Bearer {KEY_A}"},
            json={
                "model": "mock-gpt",
                "messages": [{"role": "user", "content": text}],
                "max_tokens": 6,
                "temperature": 0,
                "stream": True,
            },
        ) as s:
            state = s.headers["x-switchyard-cache"]
            events = [line[6:] for line in s.iter_lines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        return state, [_json.loads(e) for e in events[:-1]]

    n = upstream(cached)
    (first, a), (second, b) = stream("streamed first"), stream("streamed first")
    assert (first, second) == ("miss", "hit") and upstream(cached) == n + 1
    text = lambda chunks: "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])  # noqa: E731
    assert text(a) == text(b) and text(a)
    again = chat(cached, "streamed first")  # and a non-streamed request gets it too
    assert again.headers["x-switchyard-cache"] == "hit" and again.json()["choices"][0]["message"]["content"] == text(a)


def test_a_hit_through_either_replica_and_ttl(tmp_path) -> None:
    url = flushable_redis_url()
    redis.Redis.from_url(url).flushdb()
    mock = start_mock(tmp_path / "mock")
    extra = "storage:\n  redis_url: os.environ/SY_TEST_REDIS_URL\n"
    gws = [start_gateway(tmp_path / f"r{i}", config(mock.base, extra), {"SY_TEST_REDIS_URL": url}) for i in range(2)]
    try:
        assert chat(gws[0], "across replicas").headers["x-switchyard-cache"] == "miss"
        deadline = time.monotonic() + 5  # the answer is kept off the response path
        while time.monotonic() < deadline and not list(redis.Redis.from_url(url).scan_iter("sy:cache:*")):
            time.sleep(0.02)
        assert chat(gws[1], "across replicas").headers["x-switchyard-cache"] == "hit"
        assert sum(mock_stats(mock)["requests"].values()) == 1
        [key] = list(redis.Redis.from_url(url).scan_iter("sy:cache:*"))
        assert 0 < redis.Redis.from_url(url).pttl(key) <= 600_000  # kept ttl seconds
    finally:
        for g in gws:
            g.stop()
        mock.stop()
    # in memory (no Redis): an answer expires after its ttl
    mock = start_mock(tmp_path / "mock2")
    gw = start_gateway(tmp_path / "mem", config(mock.base, cache=", ttl: 1"))
    try:
        assert [chat(gw, "expiring").headers["x-switchyard-cache"] for _ in range(2)] == ["miss", "hit"]
        time.sleep(1.2)
        assert chat(gw, "expiring").headers["x-switchyard-cache"] == "miss"
    finally:
        gw.stop()
        mock.stop()


def test_shared_across_tenants_when_configured(tmp_path) -> None:
    mock = start_mock(tmp_path / "mock")
    gw = start_gateway(tmp_path / "gw", config(mock.base, cache=", shared_across_tenants: true"))
    try:
        assert chat(gw, "one answer for all").headers["x-switchyard-cache"] == "miss"
        assert chat(gw, "one answer for all", key=KEY_B).headers["x-switchyard-cache"] == "hit"
    finally:
        gw.stop()
        mock.stop()
