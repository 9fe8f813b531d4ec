"""The cascade's answer verifier: its features by hand, its training, and replaying a verified cascade."""

from __future__ import annotations

import json

import numpy as np
import pytest

from policies.evaluate import evaluate, with_param
from policies.outcomes import train_verifier
from policies.loaders import load_dataset, load_prices, load_verifier, save_verifier
from policies.schema import PolicyError, parse_policy
from policies.verifier import FEATURES, Verifier, arithmetic, features


def test_features_read_final_answer_and_arithmetic() -> None:
    good = features("Seattle has 20, so Charleston has 20 x 4 = <<20*4=80>>80.\nTogether 20 + 80 = 100.\n#### 100")
    assert good["has_final"] == 1 and good["final_is_last_result"] == 1
    assert good["arithmetic_errors"] == 0 and good["final_not_integer"] == 0
    bad = features("3 x 4 = 13, and 13 + 1 = 14. The answer is 14.5")
    assert bad["arithmetic_errors"] == 1 and bad["has_final"] == 1
    assert bad["final_not_integer"] == 1 and bad["final_is_last_result"] == 0
    assert features("<<5*5=26>> so #### 26")["arithmetic_errors"] == 1
    assert features("I'm not sure, unfortunately.")["hedges"] == 1
    assert features("It is 7.")["has_final"] == 0


def test_voter_agreement_share() -> None:
    f = features("B)", ["b", "A", "B."])
    assert f["voters_agree"] == pytest.approx(2 / 3) and f["voters_disagree"] == pytest.approx(1 / 3)
    assert features("B", [])["voters_agree"] == 0 == features("B", [])["voters_disagree"]


def test_arithmetic_is_arithmetic_only() -> None:
    assert arithmetic("2 + 3 * (4 - 1)") == 11
    assert arithmetic("1,200 / 4") == 300
    assert arithmetic("__import__('os').system('x')") is None
    assert arithmetic("2 ** 99999") is None and arithmetic("1 / 0") is None


def _answers(n: int) -> tuple[list[str], list[float]]:
    texts, good = [], []
    for i in range(n):
        ok = i % 3 != 0
        texts.append(f"{i} + 1 = {i + 1}\n#### {i + 1}" if ok else f"{i} + 1 = {i + 2}, roughly {i}.5")
        good.append(1.0 if ok else 0.0)
    return texts, good


def test_training_learns_which_answers_hold_and_round_trips(tmp_path) -> None:
    texts, good = _answers(60)
    v = Verifier.train(texts, [[]] * len(texts), good)
    assert v.weights["arithmetic_errors"] < 0 and v.weights["has_final"] > 0
    assert v.confidence("2 + 2 = 4\n#### 4") > 0.9 > 0.1 > v.confidence("2 + 2 = 5, roughly 4.5")
    save_verifier(v, tmp_path / "v.json")
    again = load_verifier(tmp_path / "v.json")
    assert again.weights == v.weights and again.meta["rows"] == 60
    (tmp_path / "bad.json").write_text(json.dumps({"weights": {"bias": 1, "vibes": 2}}))
    with pytest.raises(ValueError, match="vibes"):
        load_verifier(tmp_path / "bad.json")


def test_verifier_check_needs_its_file() -> None:
    with pytest.raises(PolicyError, match="verifier"):
        parse_policy(
            "name: v\nbind: {aliases: [a]}\nobjective: {type: cascade, steps: [s, b], check: {type: verifier}}\n"
        )


def _dataset(path) -> str:
    texts, good = _answers(80)
    lines = [
        {
            "id": f"q{i}",
            "prompt": f"what is {i} + 1?",
            "benchmark": "sums",
            "split": "train" if i < 40 else "test",
            "big|score": 1,
            "big|cost_usd": 0.01,
            "small|score": g,
            "small|cost_usd": 0.001,
            "small|response": t,
        }
        for i, (t, g) in enumerate(zip(texts, good))
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return str(path)


def test_a_verified_cascade_replays_and_ranks_by_its_doubt(tmp_path) -> None:
    ds = load_dataset(_dataset(tmp_path / "sums.jsonl"))
    ver = train_verifier(ds, "train", "small", [])
    assert ver.meta["rows"] == 40 and set(ver.weights) == set(FEATURES)
    policy = parse_policy(
        "name: sums\nbind: {aliases: [auto]}\nobjective:\n  type: cascade\n  steps: [small, big]\n"
        "  check: {type: verifier, verifier: v.json, min_confidence: 0.5}\n"
    )
    report = evaluate(
        policy,
        ds,
        split="test",
        prices=load_prices(None, ds.models),
        verifiers={"v.json": ver},
        sweep=("check.min_confidence", [0.0, 0.5, 1.0]),
    )
    lo, mid, hi = report["settings"]
    # bar 0: small always answers (two thirds right); bar 1: always escalates; 0.5: escalates exactly the bad ones
    assert lo["quality"] == pytest.approx(np.mean(good_of(ds, "test"))) and lo["cost"] == pytest.approx(0.001)
    assert hi["quality"] == 1.0 and hi["cost"] == pytest.approx(0.011)
    assert mid["quality"] == 1.0 and mid["cost"] < hi["cost"]
    called = [d for d in report["decisions"] if d["check.min_confidence"] == 0.5 and d["model"] == "big"]
    assert called and all(d["called"] == ["small", "big"] for d in called)
    # the RouteLLM ranking comes from the verifier's doubt: perfect here, so APGR is the oracle's
    assert report["benchmarks"]["sums"]["apgr"] > 0.8
    with pytest.raises(ValueError, match="no parameter"):
        with_param(policy, "check.nothing", 1.0)


def good_of(ds, split: str) -> list[float]:
    return [float(r["small|score"]) for r in ds.split(split)]
