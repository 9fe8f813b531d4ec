"""Feedback on a policy whose quality comes from a learned predictor: it corrects the predictor's
estimate for a (model, category) by the mean surprise (score minus the estimate the request was
decided with), so prompts the predictor tells apart stay apart; with fixed priors the posterior is
the Beta counts' as before. And what the gateway records so that feedback can do so."""

from __future__ import annotations

import math
import random

import pytest

from policies.decide import CandidateInfo, PolicyRouter, RequestFeatures
from policies.quality import BanditState, QualityModel
from policies.schema import parse_policy
from pricing import ModelPrice


class PerPrompt:
    """A predictor stand-in: its estimate of model ``m`` depends on the prompt."""

    models = ["m", "n"]

    def __init__(self, by_prompt: dict[str, float]):
        self.by_prompt = by_prompt

    def predict(self, prompt: str) -> dict[str, float]:
        return {"m": self.by_prompt[prompt], "n": 0.5}


def quality(predictor: object | None, state: BanditState, priors: str = "{}") -> QualityModel:
    policy = parse_policy(
        "name: r\nbind: {aliases: [x]}\ncandidates: [m, n]\nobjective: {type: utility, lambda: 0}\n"
        f"quality: {{priors: {priors}, bandit: {{enabled: true, exploration: 0, prior_strength: 10}}}}\n"
    )
    return QualityModel(policy.quality, {}, predictor, bandit=state)  # type: ignore[arg-type]


def estimate(q: QualityModel, prompt: str) -> float:
    return q.estimate(["m", "n"], prompt, "general", random.Random(0))[0]["m"]


def test_feedback_that_matches_the_predictor_keeps_its_prompts_apart() -> None:
    state = BanditState()
    q = quality(PerPrompt({"easy": 0.9, "hard": 0.3}), state)
    for i in range(200):  # the predictor is right on average for each prompt
        prompt = "easy" if i % 2 else "hard"
        prior = q.estimate(["m", "n"], prompt, "general", random.Random(i))[2]["m"]
        state.record("m", "general", prior, prior=prior)
    assert math.isclose(estimate(q, "easy"), 0.9) and math.isclose(estimate(q, "hard"), 0.3)
    # pooling the scores alone (what the posterior did before) would have made both (10 x q0 + 120) / 210
    assert state.get("m", "general") == pytest.approx((200.0, 120.0, 120.0))


def test_a_predictor_off_for_a_model_is_moved_by_the_mean_surprise() -> None:
    state = BanditState()
    q = quality(PerPrompt({"easy": 0.9, "hard": 0.3}), state)
    for i in range(90):  # the model does 0.25 worse than predicted, on either prompt
        predicted = 0.9 if i % 2 else 0.3
        state.record("m", "general", predicted - 0.25, prior=predicted)
    # prior plus the summed surprise over prior_strength + n: 0.9 - 0.25 x 90 / 100
    assert math.isclose(estimate(q, "easy"), 0.9 - 0.225) and math.isclose(estimate(q, "hard"), 0.3 - 0.225)
    state.record("m", "general", 1.0, replaces=0.65)  # one request scored again: its surprise changes, n stays
    assert math.isclose(estimate(q, "easy"), 0.9 - (22.5 - 0.35) / 100)
    assert math.isclose(estimate(q, "hard"), 0.3 - (22.5 - 0.35) / 100)


def test_fixed_priors_keep_the_beta_counts() -> None:
    state = BanditState()
    q = quality(None, state, priors="{m: 0.8, n: 0.5}")
    for _ in range(5):
        state.record("m", "general", 0.0, prior=0.8)
    assert math.isclose(estimate(q, "anything"), (0.8 * 10 + 0.0) / 15)


def test_totals_without_summed_priors_read_as_no_surprise() -> None:
    """A shared store written before priors were kept hands over (count, summed score) only."""
    state = BanditState()
    state.replace({("m", "general"): (4.0, 2.0)})
    assert state.get("m", "general") == (4.0, 2.0, 2.0)
    q = quality(PerPrompt({"easy": 0.9}), state)
    assert math.isclose(estimate(q, "easy"), 0.9)


def router_doc(enabled: bool) -> str:
    return (
        "name: r\nbind: {aliases: [x]}\ncandidates: [m, n]\nobjective: {type: utility, lambda: 0}\n"
        f"quality: {{priors: {{m: 0.8, n: 0.5}}, bandit: {{enabled: {str(enabled).lower()}, exploration: 0, optimism: 1}}}}\n"
    )


def test_a_decision_with_the_bandit_on_records_each_candidates_prior() -> None:
    policy = parse_policy(router_doc(True))
    state = BanditState()
    state.record("m", "general", 0.0, prior=0.8)
    infos = [CandidateInfo(x, "p", ModelPrice(1e-6, 1e-6)) for x in ("m", "n")]
    d = PolicyRouter(policy, QualityModel(policy.quality, {}, bandit=state)).decide(
        RequestFeatures(prompt="hi", prompt_tokens=10), infos, random.Random(0)
    )
    rows = {r["model"]: r for r in d.candidates}
    assert rows["m"]["prior"] == 0.8 and rows["n"]["prior"] == 0.5
    assert rows["m"]["quality"] != 0.8, "the estimate used is the posterior, the prior is kept beside it"
    off = parse_policy(router_doc(False))
    d = PolicyRouter(off, QualityModel(off.quality, {})).decide(
        RequestFeatures(prompt="hi", prompt_tokens=10), infos, random.Random(0)
    )
    assert all("prior" not in r for r in d.candidates), "no feedback learning: nothing more in the ledger"
