"""Evaluation metrics against hand-computed cases and the published baselines; the offline
evaluator on a small fixture dataset of its own."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from policies import metrics
from policies.evaluate import evaluate, load_dataset, load_prices, train_predictor
from policies.schema import PolicyError, parse_policy
from tests.conftest import ROOT



def test_ndch_and_aiq_by_hand() -> None:
    pts = [(1.0, 0.5), (2.0, 0.9), (3.0, 0.8), (4.0, 1.0), (1.5, 0.55)]
    # (1.5, 0.55) lies under the chord from (1, .5) to (2, .9); (3, .8) is dominated
    assert metrics.ndch(pts, 5.0) == [(1.0, 0.5), (2.0, 0.9), (4.0, 1.0), (5.0, 1.0)]
    # area: 1x(0.5+0.9)/2 + 2x(0.9+1.0)/2 + 1x1.0 = 0.7 + 1.9 + 1.0 = 3.6, over c_max 5
    assert metrics.aiq(pts, 5.0) == pytest.approx(3.6 / 5)
    assert metrics.cost_to_reach(pts, 0.7) == pytest.approx(1.5)  # halfway up the first segment
    assert metrics.cost_to_reach(pts, 1.01) is None


def test_routellm_metrics_by_hand() -> None:
    strong = [1, 1, 1, 0]
    weak = [0, 1, 0, 0]
    scores = [0.9, 0.1, 0.8, 0.2]  # a perfect ranking puts prompts 0 and 2 first
    curve = metrics.routellm_curve(scores, strong, weak, steps=4)
    assert curve == [(0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 0.75), (1.0, 0.75)]
    # PGR: 0, 0.5, 1, 1, 1 at x = 0, .25, .5, .75, 1 -> area 0.0625 + 0.1875 + 0.25 + 0.25 = 0.75
    assert metrics.apgr(curve, 0.75, 0.25) == pytest.approx(0.75)
    assert metrics.cpt(curve, 0.75, 0.25, 0.5) == pytest.approx(25.0)
    assert metrics.cpt(curve, 0.75, 0.25, 0.75) == pytest.approx(37.5)


def test_random_router_scores_about_half() -> None:
    rng = np.random.default_rng(1)
    strong = rng.random(5000) < 0.8
    weak = rng.random(5000) < 0.6
    curve = metrics.routellm_curve(rng.random(5000), strong, weak)
    assert metrics.apgr(curve, strong.mean(), weak.mean()) == pytest.approx(0.5, abs=0.05)


def test_zero_router_reproduces_published_baselines() -> None:
    """AIQ and the cost of reaching 95% of the best single model, from each model's mean cost and score
    on the RouterBench subset (vendored summary: tests/data/README.md), equal the published figures."""
    data = json.loads((ROOT / "tests" / "data" / "routerbench_single_models.json").read_text())["benchmarks"]
    assert set(data) == {"arc-challenge", "mbpp", "winogrande"}
    for bench, b in data.items():
        singles = [tuple(p) for p in b["single_models"].values()]
        assert len(singles) == 11
        c_max = max(c for c, _ in singles)
        assert metrics.aiq(singles, c_max) == pytest.approx(b["zero_router_AIQ"], rel=1e-9)
        best = max(singles, key=lambda p: p[1])
        frac = metrics.cost_to_reach(singles, 0.95 * best[1]) / best[0]
        assert frac == pytest.approx(b["zero_router_cost_frac_of_best"], rel=1e-9)


def fixture_dataset(path: Path) -> Path:
    """60 prompts, two models: 'big' is always right; 'small' is right on the 'easy' ones."""
    rng = np.random.default_rng(3)
    lines = []
    for i in range(60):
        easy = i % 2 == 0
        prompt = ("what is the capital of france" if easy else "prove the riemann hypothesis in detail") + f" #{rng.integers(1000)}"
        lines.append({"id": f"p{i}", "prompt": prompt, "benchmark": "fx", "split": "train" if i < 40 else "test",
                      "big|score": 1, "big|cost_usd": 0.01, "small|score": 1 if easy else 0, "small|cost_usd": 0.001})
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def test_evaluator_learns_and_reports(tmp_path) -> None:
    ds = load_dataset(fixture_dataset(tmp_path / "fx.jsonl"))
    pred = train_predictor(ds, "train", epochs=10)
    policy = parse_policy("name: fx\nbind: {aliases: [auto]}\ncandidates: [big, small]\n"
                          "objective: {type: cheapest_above, target: 0.8}\n")
    report = evaluate(policy, ds, split="test", prices=load_prices(None, ds.models), predictor=pred,
                      sweep=("target", [0.3, 0.8, 0.99]))
    assert report["rows"] == 20 and report["strongest"] == "big"
    assert report["single_models"]["big"] == {"quality": 1.0, "cost": pytest.approx(0.01)}  # plotted with the frontier
    mid = report["settings"][1]
    assert mid["quality"] == 1.0 and mid["cost"] == pytest.approx((10 * 0.01 + 10 * 0.001) / 20)
    assert report["baselines"]["oracle"]["cost"] == pytest.approx(mid["cost"])
    b = report["benchmarks"]["fx"]
    # a perfect ranking on this data: PGR climbs to 1 at half the prompts (the hard ones) -> APGR 0.75
    assert b["apgr"] == pytest.approx(0.75) and b["cpt50"] == pytest.approx(25.0)
    assert report["cost_to_100pct_of_strongest_frac"] == pytest.approx(0.55)
    decisions = report["decisions"]
    assert len(decisions) == 60 and {"id", "model", "target"} <= set(decisions[0])
    # the decisions alone recompute the setting's figures
    rows = {r["id"]: r for r in ds.split("test")}
    at = [d for d in decisions if d["target"] == 0.8]
    assert np.mean([rows[d["id"]][f"{d['model']}|score"] for d in at]) == mid["quality"]


def test_policy_schema_errors() -> None:
    with pytest.raises(PolicyError) as e:
        parse_policy("name: x\nbind: {aliases: [a]}\nobjective: {type: cheapest_above, target: 3}\n")
    assert any("target" in p for p in e.value.problems)
    with pytest.raises(PolicyError) as e:
        parse_policy("name: x\nbind: {aliases: [a]}\ncandidates: [m]\nobjective: {type: fixed, model: other}\n")
    assert "outside candidates" in str(e.value)
    from policies.schema import json_schema

    assert "objective" in json_schema()["properties"]
