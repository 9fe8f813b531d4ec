"""Constraints on live facts: time to first token, and the expected time to the last token from the
live output rate."""

from __future__ import annotations

import random

import pytest

from policies.decide import CandidateInfo, PolicyRouter, RequestFeatures
from policies.quality import QualityModel
from policies.schema import parse_policy
from pricing import ModelPrice
from router.health import Health

POLICY = """
name: live
bind: {aliases: [auto]}
candidates: [a, b, c]
objective: {type: cheapest_above, target: 0}
constraints: {max_ttft_ms: 500, max_latency_ms: 2000}
default_output_tokens: 100
"""


def decide(max_tokens: int | None, **facts) -> dict[str, str | None]:
    policy = parse_policy(POLICY)
    infos = [CandidateInfo(name=n, provider="p", price=ModelPrice(1e-6, 1e-6), **facts.get(n, {})) for n in "abc"]
    d = PolicyRouter(policy, QualityModel(policy.quality, {})).decide(
        RequestFeatures(prompt="x", prompt_tokens=10, max_tokens=max_tokens), infos, random.Random(0)
    )
    return {c["model"]: c["removed_by"] for c in d.candidates}


def test_ttft_and_expected_latency_ceilings() -> None:
    facts = {
        "a": {"ttft_ms": 600.0},  # first token too late
        "b": {"ttft_ms": 200.0, "tokens_per_s": 50.0},  # 200 ms + 100 tokens / 50 per s = 2,200 ms
        "c": {"ttft_ms": 200.0, "tokens_per_s": 100.0},
    }  # 1,200 ms
    removed = decide(None, **facts)
    assert removed["a"] == "live TTFT 600 ms > 500 ms"
    assert removed["b"] == "expected latency 2200 ms > 2000 ms (100 tokens at 50/s after 200 ms)"
    assert removed["c"] is None
    # a short answer fits: 200 ms + 50 / 50 per s = 1,200 ms
    assert decide(50, **facts)["b"] is None
    # the model's output history stands in for max_tokens when the request sets none
    assert decide(None, b={"ttft_ms": 200.0, "tokens_per_s": 50.0, "expected_output": 20.0})["b"] is None
    # nothing measured yet: nothing to hold against it
    assert decide(None)["b"] is None


def test_health_smooths_the_output_rate_and_ignores_short_answers() -> None:
    h = Health(alpha=0.5)
    h.observe_rate("d", 4, 0.1)  # too short to tell
    assert h.tokens_per_s("d") is None
    h.observe_rate("d", 100, 1.0)
    h.observe_rate("d", 300, 1.0)
    assert h.tokens_per_s("d") == pytest.approx(200.0)


@pytest.mark.parametrize(
    "constraints, removed",
    [
        ("{}", {}),
        ("{capabilities: [tools]}", {"b": "lacks tools (policy)", "c": "lacks tools (policy)"}),
        ("{regions: [eu]}", {"b": "region us not allowed", "c": "region unknown not allowed"}),
        (
            "{no_third_party: true}",
            {"a": "third-party processing not allowed", "b": "third-party processing not allowed"},
        ),
        ("{providers_allow: [p1, p3]}", {"b": "provider p2 not allowed"}),
        ("{providers_deny: [p1]}", {"a": "provider p1 denied"}),
    ],
)
def test_each_policy_constraint_removes_the_right_candidates(constraints: str, removed: dict[str, str]) -> None:
    policy = parse_policy(POLICY.replace("{max_ttft_ms: 500, max_latency_ms: 2000}", constraints))
    infos = [
        CandidateInfo("a", "p1", ModelPrice(1e-6, 1e-6), region="eu", capabilities=frozenset({"tools"})),
        CandidateInfo("b", "p2", ModelPrice(1e-6, 1e-6), region="us", context_window=100),
        CandidateInfo("c", "p3", ModelPrice(1e-6, 1e-6), self_hosted=True),
    ]
    router = PolicyRouter(policy, QualityModel(policy.quality, {}))
    d = router.decide(RequestFeatures(prompt="x", prompt_tokens=10), infos, random.Random(0))
    assert {c["model"]: c["removed_by"] for c in d.candidates} == {n: removed.get(n) for n in "abc"}
    assert d.order == [n for n in "abc" if n not in removed]
    # the request's own needs and the context window apply whatever the policy says
    d = router.decide(
        RequestFeatures(prompt="x", prompt_tokens=95, max_tokens=10, needs=frozenset({"tools"})),
        infos,
        random.Random(0),
    )
    assert {c["model"]: c["removed_by"] for c in d.candidates}["b"] == "lacks tools"
    d = router.decide(RequestFeatures(prompt="x", prompt_tokens=95, max_tokens=10), infos, random.Random(0))
    assert {c["model"]: c["removed_by"] for c in d.candidates}["b"] == "context window 100 < 105 tokens"
