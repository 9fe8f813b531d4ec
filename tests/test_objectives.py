"""The objectives a policy can state, decided on fixed qualities and prices, and the bandit's
bounded exploration."""

from __future__ import annotations

import random

import pytest

from policies.decide import CandidateInfo, PolicyRouter, RequestFeatures
from policies.quality import BanditState, QualityModel
from policies.schema import parse_policy
from pricing import ModelPrice

# per 1,000 prompt + 100 output tokens: cheap $0.00011, mid $0.0011, best $0.011
MODELS = {"cheap": (0.5, 1e-7), "mid": (0.8, 1e-6), "best": (0.95, 1e-5)}
F = RequestFeatures(prompt="hi", prompt_tokens=1000, max_tokens=100)


INFOS = [CandidateInfo(m, "p", ModelPrice(p, p)) for m, (_, p) in MODELS.items()]


def router(objective: str, bandit: str = "{enabled: false}", state: BanditState | None = None) -> PolicyRouter:
    priors = ", ".join(f"{m}: {q}" for m, (q, _) in MODELS.items())
    policy = parse_policy(f"name: o\nbind: {{aliases: [x]}}\ncandidates: [cheap, mid, best]\nobjective: {objective}\n"
                          f"quality: {{priors: {{{priors}}}, bandit: {bandit}}}\n")
    return PolicyRouter(policy, QualityModel(policy.quality, {}, bandit=state))


def decide(objective: str, bandit: str = "{enabled: false}", state: BanditState | None = None):
    return router(objective, bandit, state).decide(F, INFOS, random.Random(0))


@pytest.mark.parametrize("cap, pick, reason", [
    (0.02, "best", "best of 3 under the cap"),
    (0.005, "mid", "best of 2 under the cap"),
    (0.0005, "cheap", "best of 1 under the cap"),
    (0.00001, "cheap", "none under the cap; cheapest"),
])
def test_best_under_takes_the_best_quality_within_the_cap(cap: float, pick: str, reason: str) -> None:
    d = decide(f"{{type: best_under, max_cost_usd: {cap}}}")
    assert d.order[0] == pick and reason in d.reason and d.rule == f"best_under(${cap:g})"


@pytest.mark.parametrize("lam, pick", [(0, "best"), (10, "best"), (100, "mid"), (1000, "cheap")])
def test_utility_trades_quality_for_cost_by_lambda(lam: float, pick: str) -> None:
    # quality - lambda x cost: at 100, mid 0.8 - 0.11 = 0.69 beats best 0.95 - 1.1 and cheap 0.5 - 0.011
    assert decide(f"{{type: utility, lambda: {lam}}}").order[0] == pick


@pytest.mark.parametrize("target, pick, reason", [(0.7, "mid", "cheapest of 2 at or above target"),
                                                  (0.99, "best", "none reaches 0.99; best")])
def test_cheapest_above_and_the_fallback_order(target: float, pick: str, reason: str) -> None:
    d = decide(f"{{type: cheapest_above, target: {target}}}")
    assert d.order[0] == pick and reason in d.reason
    assert d.order == (["mid", "best", "cheap"] if target == 0.7 else ["best", "mid", "cheap"])


def test_exploration_is_bounded_by_the_policy_share() -> None:
    rng = random.Random(7)
    for share in (0.0, 0.1, 0.3):
        r = router("{type: cheapest_above, target: 0.7}", f"{{enabled: true, exploration: {share}, prior_strength: 20}}")
        explored = sum(r.decide(F, INFOS, rng).explored for _ in range(3000))
        assert abs(explored / 3000 - share) < 0.03, (share, explored)


def test_feedback_moves_the_posterior_and_a_rescore_replaces() -> None:
    state = BanditState()
    bandit = "{enabled: true, exploration: 0, prior_strength: 10}"
    assert decide("{type: cheapest_above, target: 0.7}", bandit, state=state).order[0] == "mid"
    for _ in range(3):
        state.record("mid", "general", 0.0)  # (8 + 0) / 13 = 0.62 < 0.7
    assert decide("{type: cheapest_above, target: 0.7}", bandit, state=state).order[0] == "best"
    for _ in range(3):  # the same three requests scored again, now 1.0: (8 + 3) / 13 = 0.85
        state.record("mid", "general", 1.0, replaces=0.0)
    assert state.get("mid", "general") == (3.0, 3.0)
    assert decide("{type: cheapest_above, target: 0.7}", bandit, state=state).order[0] == "mid"
