"""A decision's random draws: seeded from the request id as before, but only when a policy draws."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from policies.decide import CandidateInfo, PolicyRouter, RequestFeatures
from policies.draws import SeededDraws
from policies.quality import QualityModel
from policies.schema import parse_policy
from pricing import ModelPrice
from router.auth import Principal

CALLS = st.lists(st.tuples(st.booleans(), st.floats(0.01, 50), st.floats(0.01, 50)), max_size=30)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=40), st.integers()), CALLS)
def test_the_draws_are_random_randoms_for_its_seed(seed: str | int, calls: list[tuple[bool, float, float]]) -> None:
    lazy, eager = SeededDraws(seed), random.Random(seed)
    assert not lazy.seeded
    for uniform, a, b in calls:
        if uniform:
            assert lazy.random() == eager.random()
        else:
            assert lazy.betavariate(a, b) == eager.betavariate(a, b)
    assert lazy.seeded == bool(calls)


INFOS = [CandidateInfo(n, "p", ModelPrice(p, p)) for n, p in (("a", 1e-6), ("b", 3e-6))]
BANDIT = "quality: {priors: {a: 0.6, b: 0.8}, bandit: {enabled: true, exploration: 0.5}}\n"


def _router(objective: str, extra: str = "") -> PolicyRouter:
    policy = parse_policy(f"name: p\nbind: {{aliases: [x]}}\ncandidates: [a, b]\nobjective: {objective}\n{extra}")
    return PolicyRouter(policy, QualityModel(policy.quality, {}))


def test_decisions_that_draw_are_those_of_random_random_and_the_others_draw_nothing() -> None:
    f = RequestFeatures(prompt="hi", prompt_tokens=5)
    per_request = _router("{type: split, assign_by: request, arms: [{model: a, weight: 0.5}, {model: b, weight: 0.5}]}")
    bandit = _router("{type: cheapest_above, target: 0.7}", BANDIT)
    for i in range(300):
        rid = f"req_{i:032x}"
        for r in (per_request, bandit):
            lazy = SeededDraws(rid)
            d, e = r.decide(f, INFOS, lazy), r.decide(f, INFOS, random.Random(rid))
            assert (d.order, d.arm, d.explored, d.candidates) == (e.order, e.arm, e.explored, e.candidates)
            assert lazy.seeded
    arms = {_router_arm(per_request, f"req_{i:032x}") for i in range(50)}
    assert arms == {"a", "b"}, "drawn per request"
    quiet = SeededDraws("req_x")
    off = "quality: {priors: {a: 0.6, b: 0.8}, bandit: {enabled: false}}\n"
    assert _router("{type: cheapest_above, target: 0.7}", off).decide(f, INFOS, quiet).order == ["b", "a"]
    assert not quiet.seeded, "no bandit and no split: nothing drawn, nothing seeded"


def _router_arm(r: PolicyRouter, rid: str) -> str | None:
    return r.decide(RequestFeatures(prompt="hi", prompt_tokens=5), INFOS, SeededDraws(rid)).arm


CONFIG = """
model_list:
  - model_name: a
    litellm_params: {model: simulated/small, speed: 0}
  - model_name: b
    litellm_params: {model: simulated/frontier, speed: 0}
policies: {dirs: ['%s']}
"""


def test_the_gateway_seeds_a_decision_from_its_request_id(tmp_path: Path) -> None:
    """The planner's draws for a request are random.Random(request id)'s, as replays assume."""
    from router.accounting.metering import MemorySink
    from router.build import build_services
    from router.config import parse_config

    (tmp_path / "p.yaml").write_text(
        "name: p\nbind: {aliases: [auto]}\ncandidates: [a, b]\n"
        "objective: {type: split, assign_by: request, arms: [{model: a, weight: 0.5}, {model: b, weight: 0.5}]}\n"
    )
    cfg = parse_config(CONFIG % tmp_path, env={})
    svc = build_services(cfg, env={}, sink=MemorySink())
    router = svc.planner.policies.match("auto", None, False)
    who = Principal("t", "k", None)
    body: dict[str, Any] = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}

    async def arms() -> list[tuple[str | None, str | None]]:
        infos = [i for i in (svc.planner.info(n, "chat") for n in ("a", "b")) if i is not None]
        out = []
        for i in range(200):
            rid = f"req_{i:032x}"
            plan = await svc.planner.plan(who, body, "chat", rid)
            assert plan.decision is not None
            f = RequestFeatures(prompt="hi", prompt_tokens=0, unit={"key": "k", "tenant": "t"})
            out.append((plan.decision.arm, router.decide(f, infos, random.Random(rid)).arm))
        return out

    pairs = asyncio.run(arms())
    assert all(got == want for got, want in pairs)
    assert {got for got, _ in pairs} == {"a", "b"}
