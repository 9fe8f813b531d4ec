"""Named cascades as candidates: chosen by the objective like a model, run as a cascade, priced by
how often they escalate, learned by the predictor from replayed outcomes."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from policies.decide import CandidateInfo, PolicyRouter, RequestFeatures
from policies.evaluate import evaluate, train_predictor
from policies.loaders import load_dataset, load_prices
from policies.quality import QualityModel
from policies.schema import PolicyError, parse_policy
from pricing import ModelPrice

POLICY = """
name: named
bind: {aliases: [auto]}
candidates: [small, big, checked]
cascades:
  checked:
    steps: [small, big]
    check: {type: agreement, with: [judge]}
objective: {type: utility, lambda: %s}
quality: {priors: {small: 0.5, big: 0.95, judge: 0.6, checked: 0.9}, bandit: {enabled: false}}
"""


def infos(**over) -> list[CandidateInfo]:
    prices = {"small": 1e-7, "big": 1e-5, "judge": 1e-7}
    return [
        CandidateInfo(name=n, provider="p", price=ModelPrice(input=p, output=p), **over.get(n, {}))
        for n, p in prices.items()
    ]


def decide(lam: float, features: RequestFeatures | None = None, **over):
    policy = parse_policy(POLICY % lam)
    router = PolicyRouter(policy, QualityModel(policy.quality, {}))
    f = features or RequestFeatures(prompt="hi", prompt_tokens=1000, max_tokens=100)
    return router.decide(f, infos(**over), random.Random(0))


def test_a_named_cascade_is_chosen_like_a_model_and_run_as_a_cascade() -> None:
    d = decide(30)
    assert d.order == ["small", "big"]
    assert d.cascade == {"name": "checked", "steps": ["small", "big"], "check": d.cascade["check"]} and d.cascade[
        "check"
    ].models == ["judge"]
    row = next(c for c in d.candidates if c["model"] == "checked")
    # cost: small and its judge always, big when small fails (predicted 1 - 0.5 of the time)
    small = 1100 * 1e-7
    assert row["expected_cost_usd"] == pytest.approx(small + small + 0.5 * 1100 * 1e-5)
    assert decide(0).order[0] == "big" and decide(0).cascade is None  # quality only: the best single model
    assert decide(1000).order[0] == "small" and decide(1000).cascade is None  # cost only: the cheapest


def test_fallbacks_name_models_and_constraints_or_streams_remove_cascades() -> None:
    d = decide(0)
    assert d.order == ["big", "small"], "the cascade stands in as its last step, once"
    d = decide(30, judge={"healthy": False})
    row = next(c for c in d.candidates if c["model"] == "checked")
    assert row["removed_by"] == "judge: circuit open" and d.cascade is None
    d = decide(30, RequestFeatures(prompt="hi", prompt_tokens=1000, max_tokens=100, stream=True))
    assert d.cascade is None and "stream" in next(c for c in d.candidates if c["model"] == "checked")["removed_by"]


def test_schema_rejects_nested_and_misplaced_cascades() -> None:
    with pytest.raises(PolicyError, match="names cascades"):
        parse_policy(
            "name: n\nbind: {aliases: [a]}\ncandidates: [x, c2]\nobjective: {type: utility, lambda: 1}\n"
            "cascades:\n  c1: {steps: [x, y], check: {type: agreement, with: [z]}}\n"
            "  c2: {steps: [c1, y], check: {type: agreement, with: [z]}}\n"
        )
    with pytest.raises(PolicyError, match="takes no named cascades"):
        parse_policy(
            "name: n\nbind: {aliases: [a]}\nobjective: {type: fixed, model: x}\n"
            "cascades:\n  c1: {steps: [x, y], check: {type: agreement, with: [z]}}\n"
        )
    p = parse_policy(POLICY % 1)
    assert p.models == ["small", "big", "judge"]


def _dataset(path) -> str:
    rng = np.random.default_rng(1)
    lines = []
    for i in range(120):
        hard = i % 2 == 0
        small_ok = 0 if hard else 1
        # on hard prompts the judge disagrees with small (and small is wrong); on easy ones it agrees
        lines.append(
            {
                "id": f"r{i}",
                "benchmark": "fx",
                "split": "train" if i < 80 else "test",
                "prompt": ("compute the integral of the gamma function" if hard else "say hello")
                + f" {rng.integers(99)}",
                "small|score": small_ok,
                "small|cost_usd": 0.001,
                "small|response": "A",
                "judge|score": small_ok,
                "judge|cost_usd": 0.001,
                "judge|response": "B" if hard else "A",
                "big|score": 1,
                "big|cost_usd": 0.02,
                "big|response": "C",
            }
        )
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return str(path)


def test_the_predictor_learns_a_cascade_and_the_replay_runs_it(tmp_path) -> None:
    ds = load_dataset(_dataset(tmp_path / "fx.jsonl"))
    policy = parse_policy(
        (POLICY % 1).replace("quality: {priors: {small: 0.5, big: 0.95, judge: 0.6, checked: 0.9}, ", "quality: {")
    )
    pred = train_predictor(ds, "train", epochs=5, policy=policy)
    assert pred.models == ["big", "judge", "small", "checked"]
    assert pred.predict("compute the integral of the gamma function 7")["checked"] > 0.8, (
        "the cascade escalates the hard ones"
    )
    report = evaluate(policy, ds, split="test", prices=load_prices(None, ds.models), predictor=pred)
    s = report["settings"][0]
    # history (per task category) says the cascade always escalates math prompts, so those go straight
    # to big; easy ones go to the cascade, which sends small's answer once the judge agrees
    assert s["quality"] == 1.0
    assert s["cost"] == pytest.approx(0.5 * 0.02 + 0.5 * 0.002)
    by_model = {m: [d for d in report["decisions"] if d["model"] == m] for m in ("big", "small")}
    assert len(by_model["big"]) == 20 and all("called" not in d for d in by_model["big"])
    assert len(by_model["small"]) == 20 and all(d["called"] == ["small", "judge"] for d in by_model["small"])


@pytest.mark.parametrize("kind", ["agreement", "judge"])
def test_expected_cost_counts_checkers_once_or_at_every_checked_step(kind: str) -> None:
    policy = parse_policy(f"""
name: three
bind: {{aliases: [auto]}}
candidates: [small, mid, big, checked]
cascades:
  checked: {{steps: [small, mid, big], check: {{type: {kind}, with: [judge]}}}}
objective: {{type: utility, lambda: 1}}
quality: {{priors: {{small: 0.5, mid: 0.8, big: 0.95, judge: 0.6, checked: 0.9}}, bandit: {{enabled: false}}}}
""")
    prices = {"small": 1e-7, "mid": 1e-6, "big": 1e-5, "judge": 1e-7}
    cands = [CandidateInfo(name=n, provider="p", price=ModelPrice(input=p, output=p)) for n, p in prices.items()]
    d = PolicyRouter(policy, QualityModel(policy.quality, {})).decide(
        RequestFeatures(prompt="hi", prompt_tokens=1000, max_tokens=100), cands, random.Random(0)
    )
    row = next(c for c in d.candidates if c["model"] == "checked")
    small, mid, big, judge = (1100 * prices[n] for n in ("small", "mid", "big", "judge"))
    # mid is reached half the time (small's predicted quality 0.5), big a tenth (and mid's 0.8)
    steps = small + 0.5 * mid + 0.5 * 0.2 * big
    checks = judge if kind == "agreement" else judge + 0.5 * judge  # answer the question once / judge each answer
    assert row["expected_cost_usd"] == pytest.approx(steps + checks)
