"""Evaluation metrics against hand-computed cases and the published baselines; the offline
evaluator on a small fixture dataset of its own."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from policies import metrics
from policies.evaluate import evaluate, headline, train_predictor
from policies.outcomes import resplit
from policies.loaders import load_dataset, load_predictor, load_prices, save_predictor
from policies.predictor import QualityPredictor
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


def test_aiq_counts_no_area_past_c_max() -> None:
    """RouterBench's AIQ integrates the hull up to the dearest single model's cost. A setting dearer
    than that (a cascade that pays its checkers and then GPT-4) shapes the hull below c_max through
    the chord to it, and adds nothing past it: AIQ is never above the best quality reached by c_max
    (it was: these points scored 1.125)."""
    pts = [(0.5, 0.5), (1.0, 0.6), (2.0, 1.0)]
    # (1, .6) is under the chord from (.5, .5) to (2, 1), whose value at c_max 1 is 0.5 + 0.5/3
    at_c_max = 0.5 + 0.5 * (0.5 / 1.5)
    assert metrics.aiq(pts, 1.0) == pytest.approx(0.5 * (0.5 + at_c_max) / 2)
    assert metrics.aiq([(2.0, 1.0)], 1.0) == 0.0  # nothing at or below c_max
    assert metrics.aiq([(0.5, 0.5), (1.0, 0.6)], 1.0) == pytest.approx(0.5 * 1.1 / 2)  # unchanged inside


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0.01, 10.0), st.floats(0.0, 1.0)),
        min_size=1,
        max_size=12,
    ),
    st.floats(0.05, 10.0),
)
def test_aiq_bounded_and_agrees_with_the_decisions_script(pts: list[tuple[float, float]], c_max: float) -> None:
    """For any points and c_max: AIQ is at most the hull's value at c_max times the share of [0, c_max]
    it covers, never negative, and equal to benchmarks/aiq_from_decisions.py's own computation (written
    apart, so a reader can recompute a policy's AIQ without the package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("aiq_script", ROOT / "benchmarks" / "aiq_from_decisions.py")
    assert spec and spec.loader
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    value = metrics.aiq(pts, c_max)
    reached = [q for c, q in pts if c <= c_max]
    hull = metrics.ndch(pts)
    best_by_c_max = max(
        [q1 + (q2 - q1) * (c_max - c1) / (c2 - c1) for (c1, q1), (c2, q2) in zip(hull, hull[1:]) if c1 <= c_max < c2]
        + reached
        + [0.0]
    )
    assert 0.0 <= value <= best_by_c_max + 1e-9
    assert value == pytest.approx(script.area_share(pts, c_max), abs=1e-9)


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
        prompt = (
            "what is the capital of france" if easy else "prove the riemann hypothesis in detail"
        ) + f" #{rng.integers(1000)}"
        lines.append(
            {
                "id": f"p{i}",
                "prompt": prompt,
                "benchmark": "fx",
                "split": "train" if i < 40 else "test",
                "big|score": 1,
                "big|cost_usd": 0.01,
                "small|score": 1 if easy else 0,
                "small|cost_usd": 0.001,
            }
        )
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def test_evaluator_learns_and_reports(tmp_path) -> None:
    ds = load_dataset(fixture_dataset(tmp_path / "fx.jsonl"))
    pred = train_predictor(ds, "train", epochs=10)
    policy = parse_policy(
        "name: fx\nbind: {aliases: [auto]}\ncandidates: [big, small]\nobjective: {type: cheapest_above, target: 0.8}\n"
    )
    report = evaluate(
        policy,
        ds,
        split="test",
        prices=load_prices(None, ds.models),
        predictor=pred,
        sweep=("target", [0.3, 0.8, 0.99]),
    )
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


def test_the_decision_curve_is_anchored_at_its_ends_and_keeps_every_setting() -> None:
    # two settings: 30% strong calls at quality 0.7, 60% at 0.65 (worse: kept, not hidden)
    curve = metrics.decision_curve([(0.6, 0.65), (0.3, 0.7)], q_strong=0.8, q_weak=0.5)
    assert curve == [(0.0, 0.5), (0.3, 0.7), (0.6, 0.65), (1.0, 0.8)]
    # PGR 0 -> 2/3 -> 1/2 -> 1: area 0.3*(1/3) + 0.3*(7/12) + 0.4*(3/4)
    assert metrics.apgr(curve, 0.8, 0.5) == pytest.approx(0.1 + 0.175 + 0.3)
    assert metrics.decision_curve([(0.0, 0.6), (1.0, 0.8)], 0.8, 0.5) == [(0.0, 0.6), (1.0, 0.8)]


def test_the_batch_predictor_learns_the_gain_and_survives_a_round_trip(tmp_path) -> None:
    ds = load_dataset(fixture_dataset(tmp_path / "fx.jsonl"))
    pred = train_predictor(ds, "train", epochs=100, lr=0.1, solver="batch", l2=1.0)
    assert pred.idf is not None and pred.bias is not None and pred.meta["solver"] == "batch"
    test = ds.split("test")
    gain = [(lambda q: q["big"] - q["small"])(pred.predict(r["prompt"])) for r in test]
    hard = [r["small|score"] == 0 for r in test]
    # every hard prompt ranks above every easy one
    assert min(g for g, h in zip(gain, hard) if h) > max(g for g, h in zip(gain, hard) if not h)
    save_predictor(pred, tmp_path / "p.npz")
    back = load_predictor(tmp_path / "p.npz")
    for r in test:
        a, b = pred.predict(r["prompt"]), back.predict(r["prompt"])
        assert a.keys() == b.keys() and all(abs(a[m] - b[m]) < 2e-3 for m in a)  # float16 weights on disk
    with pytest.raises(ValueError, match="unknown solver"):
        QualityPredictor.train(["x"], np.ones((1, 1)), ["m"], solver="sgd")


def test_a_resplit_keeps_the_share_and_is_seeded(tmp_path) -> None:
    ds = load_dataset(fixture_dataset(tmp_path / "fx.jsonl"))
    a, b, c = resplit(ds, 1), resplit(ds, 1), resplit(ds, 2)
    assert [r["split"] for r in a.rows] == [r["split"] for r in b.rows]
    assert [r["split"] for r in a.rows] != [r["split"] for r in c.rows]
    assert abs(len(a.split("train")) - 40) <= 8 and len(a.split("train")) + len(a.split("test")) == 60
    assert [r["split"] for r in ds.rows].count("train") == 40  # the dataset itself is left alone


def test_gain_policy_apgr_and_margin_come_from_its_own_decisions(tmp_path) -> None:
    ds = load_dataset(fixture_dataset(tmp_path / "fx.jsonl"))
    pred = train_predictor(ds, "train", epochs=100, lr=0.1, solver="batch", l2=1.0)
    policy = parse_policy(
        "name: fx\nbind: {aliases: [auto]}\n"
        "objective: {type: gain, strong: big, weak: small, min_gain: 0.5}\n"
        "categories: {math: {type: gain, strong: big, weak: small, min_gain: 0}}\n"
    )
    # sold at $400 per 1M tokens of any kind, each row 1,000 input + 10 output tokens of its model
    for r in ds.rows:
        for m in ("big", "small"):
            r[f"{m}|input_tokens"], r[f"{m}|output_tokens"] = 1000, 10
    sold = (4e-4, 4e-4)
    bars = [1.0, 0.5, -1.0]
    report = evaluate(
        policy,
        ds,
        prices=load_prices(None, ds.models),
        predictor=pred,
        sweep=[("min_gain", bars), ("categories.math.min_gain", [0.0, 0.1, 0.2])],
        sold_at=sold,
    )
    rows = {r["id"]: r for r in ds.split("test")}
    b = report["benchmarks"]["fx"]
    points = []
    for s, bar in zip(report["settings"], bars):
        assert s["min_gain"] == bar
        mine = [d for d in report["decisions"] if d["min_gain"] == bar]
        share = np.mean([d["model"] == "big" for d in mine])
        quality = np.mean([rows[d["id"]][f"{d['model']}|score"] for d in mine])
        spent = np.sum([rows[d["id"]][f"{d['model']}|cost_usd"] for d in mine])
        earned = len(mine) * 1010 * 4e-4
        assert s["quality"] == pytest.approx(quality) and s["margin"] == pytest.approx((earned - spent) / earned)
        points.append((share, quality))
    assert [p[0] for p in points] == [0.0, 0.5, 1.0]  # never, the hard half, always
    # APGR from those points alone: weak 0.5, strong 1.0 on this data; the middle setting is perfect
    assert b["apgr"] == pytest.approx(metrics.apgr(metrics.decision_curve(points, 1.0, 0.5), 1.0, 0.5)) == 0.75
    assert b["ranking_apgr"] == pytest.approx(0.75)
    figures = headline(report)
    assert (
        figures["fx APGR"] == b["apgr"]
        and figures["[min_gain=0.5, categories.math.min_gain=0.1] margin"] == report["settings"][1]["margin"]
    )
    with pytest.raises(ValueError, match="lockstep"):
        evaluate(
            policy,
            ds,
            prices=load_prices(None, ds.models),
            predictor=pred,
            sweep=[("min_gain", [0.1]), ("min_gain", [1.0, 2.0])],
        )


def bandit_dataset(path: Path) -> Path:
    """'good' always right at $0.001, 'bad' always wrong at $0.0005: a learner must find out which."""
    lines = [
        {
            "id": f"b{i}",
            "prompt": f"question {i}",
            "benchmark": "fx",
            "split": "train" if i < 100 else "test",
            "good|score": 1,
            "good|cost_usd": 0.001,
            "bad|score": 0,
            "bad|cost_usd": 0.0005,
        }
        for i in range(400)
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def test_simulate_learns_online_from_uninformed_priors(tmp_path) -> None:
    from policies.simulate import simulate, utility_gap

    ds = load_dataset(bandit_dataset(tmp_path / "b.jsonl"))
    policy = parse_policy(
        "name: b\nbind: {aliases: [auto]}\ncandidates: [good, bad]\n"
        "objective: {type: utility, lambda: 10}\n"
        "quality: {priors: {good: 0.9, bad: 0.2}, bandit: {enabled: false, exploration: 0.05}}\n"
    )
    prices = load_prices(None, ds.models)
    r = simulate(
        policy,
        ds,
        prices=prices,
        predictor=None,
        start="uninformed",
        seed=3,
        window=50,
        every=25,
        checkpoints=(0, 50, 100),
    )
    best = 1 - 10 * 0.001  # always good
    assert r["rows"] == 300 and r["lambda"] == 10 and r["best_single_model"] == "good"
    assert r["offline_utility"] == pytest.approx(best)  # the policy's own priors already pick good
    # knowing nothing, it starts on the cheaper model; one wrong answer later it moves, and stays
    assert r["learned_utility"]["0"] == pytest.approx(0 - 10 * 0.0005)
    assert r["learned_utility"]["50"] == pytest.approx(best) == r["learned_utility"]["100"]
    online = r["curves"]["online"]
    assert online[0]["n"] == 25 and online[-1]["n"] == 300 and len(online) == 12
    assert online[0]["utility"] < best and online[-1]["window_utility"] >= 0.9 * best  # exploration aside
    assert r["curves"]["oracle"][-1]["utility"] == pytest.approx(best)
    gap = utility_gap(r, 100)
    assert gap["n"] == 100 and gap["learned_gap"] == pytest.approx(0.0)
    # from the trained prior (here the policy's own priors), it is the offline policy from the start
    t = simulate(policy, ds, prices=prices, predictor=None, start="trained", seed=3, window=50, every=25)
    assert [p["utility"] for p in t["curves"]["online"]] == pytest.approx(
        [p["utility"] for p in t["curves"]["offline"]], abs=0.02
    )
    with pytest.raises(ValueError, match="uninformed"):
        simulate(policy, ds, prices=prices, predictor=None, start="never")
