"""The quality predictor's topic head (policies.topics): it reads a prompt's topic from its text,
carries each model's record on that topic, blends it in, survives a round trip, and is retrained
with the settings it was trained with."""

from __future__ import annotations

import json
from pathlib import Path

from zlib import crc32

import numpy as np
import pytest
from typer.testing import CliRunner

from policies.evaluate import train_predictor
from policies.features import MASK
from policies.loaders import load_dataset, load_predictor, save_predictor
from policies.predictor import QualityPredictor
from policies.topics import PRIOR_ROWS
from router.cli import cli

VOCAB = {
    "stars": "orbit planet comet nebula telescope galaxy luminosity redshift".split(),
    "torts": "plaintiff negligence statute damages liability defendant verdict appeal".split(),
    "cells": "mitochondria enzyme membrane ribosome protein nucleus cytoplasm osmosis".split(),
}
FILLER = "which of the following is most likely true about this when given".split()


def prompt(rng: np.random.Generator, topic: str, i: int) -> str:
    words = list(rng.choice(VOCAB[topic], 4)) + list(rng.choice(FILLER, 6)) + [f"item{i}"]
    rng.shuffle(words)
    return " ".join(words) + "?\nA. yes\nB. no\nAnswer:"


def topic_dataset(path: Path, n: int = 240) -> Path:
    """'big' is right on every prompt; 'small' on cells, on half of stars, on no torts prompt."""
    rng = np.random.default_rng(7)
    lines = []
    for i in range(n):
        topic = list(VOCAB)[i % 3]
        small = {"cells": 1, "stars": i % 2, "torts": 0}[topic]
        lines.append(
            {
                "id": f"t{i}",
                "prompt": prompt(rng, topic, i),
                "benchmark": "fx",
                "category": topic,
                "split": "train" if i < n * 3 // 4 else "test",
                "big|score": 1,
                "small|score": small,
                "big|cost_usd": 0.01,
                "small|cost_usd": 0.001,
            }
        )
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def test_the_topic_head_reads_the_topic_and_carries_each_models_record_on_it(tmp_path) -> None:
    ds = load_dataset(topic_dataset(tmp_path / "t.jsonl"))
    pred = train_predictor(
        ds, "train", epochs=60, lr=0.1, solver="batch", l2=1.0, topic_field="category", topic_blend=0.4
    )
    head = pred.topics
    assert head is not None and head.topics == ["cells", "stars", "torts"] and head.blend == 0.4
    assert pred.meta["topic_field"] == "category" and pred.meta["topic_blend"] == 0.4
    # each topic's record: the mean score of its train rows, PRIOR_ROWS rows' worth pulled to the mean
    train = ds.split("train")
    for m, model in enumerate(pred.models):
        overall = np.mean([r[f"{model}|score"] for r in train])
        for j, topic in enumerate(head.topics):
            scores = [r[f"{model}|score"] for r in train if r["category"] == topic]
            want = (sum(scores) + PRIOR_ROWS * overall) / (len(scores) + PRIOR_ROWS)
            assert head.quality[j, m] == pytest.approx(want, rel=1e-5)
    # held-out prompts (new mixes of the words): the topic is read from the text
    test = ds.split("test")
    right = 0
    for r in test:
        idx, val = pred._features(r["prompt"])
        probs = head.probabilities(idx, val)
        assert probs.sum() == pytest.approx(1.0) and (probs >= 0).all()
        right += head.topics[int(probs.argmax())] == r["category"]
        # the prediction is the blend of the word model's and the topic's
        words, topic = pred.parts(r["prompt"])
        assert topic == pytest.approx(probs @ head.quality, rel=1e-5)
        got = pred.predict(r["prompt"])
        for m, model in enumerate(pred.models):
            assert got[model] == pytest.approx(0.6 * words[m] + 0.4 * topic[m], rel=1e-5)
    assert right / len(test) >= 0.9
    # predicted gain follows the topic: torts (small never right) > stars (half) > cells (always)
    gain = {t: [] for t in VOCAB}
    for r in test:
        q = pred.predict(r["prompt"])
        gain[r["category"]].append(q["big"] - q["small"])
    assert np.mean(gain["torts"]) > np.mean(gain["stars"]) > np.mean(gain["cells"])
    # words never seen in training: the topics' base rates, still a distribution
    idx, val = pred._features("zyx qwv")
    assert head.probabilities(idx, val).sum() == pytest.approx(1.0)


def test_the_topic_head_survives_a_round_trip_and_stores_only_seen_features(tmp_path) -> None:
    ds = load_dataset(topic_dataset(tmp_path / "t.jsonl"))
    pred = train_predictor(ds, "train", epochs=30, lr=0.1, solver="batch", l2=1.0, topic_field="category")
    assert pred.topics is not None and len(pred.topics.keys) < 1000  # seen features, not 2^18 rows
    # a word of one training prompt only has no weight; a topic word has
    assert crc32(b"item0") & MASK not in set(pred.topics.keys.tolist())
    assert crc32(b"nebula") & MASK in set(pred.topics.keys.tolist())
    save_predictor(pred, tmp_path / "p.npz")
    back = load_predictor(tmp_path / "p.npz")
    assert back.topics is not None and back.topics.topics == pred.topics.topics
    for r in ds.split("test"):
        a, b = pred.predict(r["prompt"]), back.predict(r["prompt"])
        assert all(abs(a[m] - b[m]) < 2e-3 for m in a)  # float16 weights on disk
    # a predictor without a head loads as before
    plain = train_predictor(ds, "train", epochs=5, lr=0.1, solver="batch", l2=1.0)
    save_predictor(plain, tmp_path / "q.npz")
    assert load_predictor(tmp_path / "q.npz").topics is None
    # one training prompt: no feature is in two, the bias alone carries the head
    one = QualityPredictor.train(
        ["x y"], np.ones((1, 2)), ["a", "b"], epochs=3, lr=0.1, l2=1.0, solver="batch", topics=["t"]
    )
    assert one.topics is not None and one.predict("x y") == pytest.approx({"a": 1.0, "b": 1.0}, abs=0.2)
    with pytest.raises(ValueError, match="batch solver"):
        QualityPredictor.train(["x"], np.ones((1, 1)), ["m"], topics=["a"])


def test_train_with_a_topic_head_from_the_cli_and_retrain_it_on_resplits(tmp_path) -> None:
    run = CliRunner().invoke
    d = topic_dataset(tmp_path / "t.jsonl")
    out = tmp_path / "p.npz"
    args = ["policies", "train", "--data", str(d), "--out", str(out), "--epochs", "30", "--lr", "0.1"]
    bad = run(cli, [*args, "--topic-field", "category"])
    assert bad.exit_code == 2 and "needs --solver batch" in bad.output
    r = run(cli, [*args, "--solver", "batch", "--topic-field", "category", "--topic-l2", "0.3", "--topic-blend", "0.7"])
    assert r.exit_code == 0, r.output
    pred = load_predictor(out)
    assert pred.topics is not None and pred.topics.blend == pytest.approx(0.7)
    assert (pred.meta["topic_field"], pred.meta["topic_l2"]) == ("category", 0.3)
    (tmp_path / "fx.yaml").write_text(
        "name: fx\nbind: {aliases: [auto]}\nobjective: {type: gain, strong: big, weak: small, min_gain: 0.3}\n"
        f"quality: {{predictor: {out.name}}}\n"
    )
    r = run(cli, ["policies", "eval", "--data", str(d), "--policy", str(tmp_path / "fx.yaml"), "--resplits", "2"])
    assert r.exit_code == 0, r.output
    # every re-split's predictor was trained anew with a topic head of the file's settings
    from router.cli import policies as cli_policies

    ds = load_dataset(d)
    fresh, _ = cli_policies._retrained(None, ds, pred, {}, None)  # type: ignore[arg-type]
    assert fresh is not None and fresh.topics is not None and fresh.topics.blend == pytest.approx(0.7)
    assert fresh.meta["topic_l2"] == 0.3


def test_an_offset_is_a_prior_the_words_only_correct(tmp_path) -> None:
    """Trained with each prompt's topic record as an offset to its logit (benchmarks/gain_residual_cv.py),
    the word weights learn only what the offset leaves: here nothing, since the topic decides 'small'."""
    ds = load_dataset(topic_dataset(tmp_path / "d.jsonl"))
    rows = ds.split("train")
    prompts = [r["prompt"] for r in rows]
    y = np.array([[r["big|score"], r["small|score"]] for r in rows], dtype=float)
    rate = {"cells": 0.999, "stars": 0.5, "torts": 0.001}
    offset = np.array([[6.9, np.log(rate[r["category"]] / (1 - rate[r["category"]]))] for r in rows])
    settings = {"epochs": 60, "lr": 0.1, "l2": 1.0, "solver": "batch"}
    plain = QualityPredictor.train(prompts, y, ["big", "small"], **settings)
    prior = QualityPredictor.train(prompts, y, ["big", "small"], offset=offset, **settings)
    test = ds.split("test")
    # alone, the words must carry the topic; over the offset, their correction stays near even odds
    spread = [abs(plain.predict(r["prompt"])["small"] - 0.5) for r in test]
    corrections = [abs(prior.predict(r["prompt"])["small"] - 0.5) for r in test]
    assert np.mean(spread) > 0.08 and np.mean(corrections) < np.mean(spread) / 4  # 0.124 and 0.017
    with pytest.raises(ValueError, match="batch solver"):
        QualityPredictor.train(["x"], np.ones((1, 1)), ["m"], offset=np.zeros((1, 1)))
