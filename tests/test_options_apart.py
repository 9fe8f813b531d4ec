"""The "options-apart" feature set: a multiple-choice question's stem and options read as two texts.

A predictor trained on one feature set is only valid for it, so the fast implementation is held to a
plain definition, the set is recorded in the predictor's file, and a file naming an unknown set is
refused rather than read with the wrong features."""

from __future__ import annotations

import re
from zlib import crc32

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.features import FEATURES, MASK, featurize, featurize_options_apart
from policies.loaders import load_predictor, save_predictor
from policies.predictor import QualityPredictor

OPTION_LINE = re.compile(r"\n[ \t]*\(?[Aa][.):]")


def reference(text: str) -> tuple[np.ndarray, np.ndarray]:
    """The definition: cut before the last option line "A." of the 4,000-character tail; each part's
    features; the options' keys remapped; equal keys summed; normalised again."""
    tail = text[-4000:]
    starts = [m.start() for m in OPTION_LINE.finditer(tail)]
    if not starts:
        return featurize(text)
    cut = len(text) - len(tail) + starts[-1]
    (i1, v1), (i2, v2) = featurize(text[:cut]), featurize(text[cut:])
    summed: dict[int, float] = {}
    for k, v in zip(i1.tolist(), v1.tolist()):
        summed[k] = summed.get(k, 0.0) + v
    for k, v in zip(i2.tolist(), v2.tolist()):
        r = (k * 0x9E3779B1 + 0x7F4A7C15) & MASK
        summed[r] = summed.get(r, 0.0) + v
    keys = sorted(summed)
    val = np.array([summed[k] for k in keys], dtype=np.float64)
    return np.array(keys, dtype=np.int64), (val / np.sqrt((val * val).sum())).astype(np.float32)


def question(stem: str, options: list[str]) -> str:
    return stem + "".join(f"\n{letter}. {o}" for letter, o in zip("ABCD", options)) + "\nAnswer:"


words = st.text(alphabet="abcdefghij 0123456789?.,()=", min_size=0, max_size=60)


@settings(max_examples=200, deadline=None)
@given(words, st.lists(words, min_size=2, max_size=4))
def test_multiple_choice_matches_the_definition(stem: str, options: list[str]) -> None:
    text = question(stem, options)
    (i1, v1), (i2, v2) = featurize_options_apart(text), reference(text)
    assert np.array_equal(i1, i2)
    assert np.allclose(v1, v2, atol=1e-6)
    assert i1.dtype == np.int64 and v1.dtype == np.float32
    assert len(set(i1.tolist())) == len(i1) and 0 <= i1.min() and i1.max() <= MASK
    assert abs(float((v1.astype(np.float64) ** 2).sum()) - 1.0) < 1e-5


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300).filter(lambda t: OPTION_LINE.search(t) is None))
def test_text_without_options_keeps_the_word_features(text: str) -> None:
    (i1, v1), (i2, v2) = featurize_options_apart(text), featurize(text)
    assert np.array_equal(i1, i2) and np.array_equal(v1, v2)


def test_a_word_among_the_options_is_not_the_same_word_in_the_question() -> None:
    # the same words, once in the stem and once as an option: the word feature differs
    a = question("Which is prime? 7", ["4", "6", "8"])
    b = question("Which is prime?", ["4", "6", "7"])
    assert not np.array_equal(featurize_options_apart(a)[0], featurize_options_apart(b)[0])
    # the word "7" is one feature for the word features wherever it stands; options apart, it is the
    # stem's feature in the first question and the options' (remapped) feature in the second
    seven = crc32(b"7") & MASK
    seven_as_option = (seven * 0x9E3779B1 + 0x7F4A7C15) & MASK
    assert seven in featurize(a)[0] and seven in featurize(b)[0]
    apart_a, apart_b = set(featurize_options_apart(a)[0].tolist()), set(featurize_options_apart(b)[0].tolist())
    assert seven in apart_a and seven_as_option not in apart_a
    assert seven_as_option in apart_b and seven not in apart_b


def test_options_are_found_in_the_tail_that_is_read() -> None:
    # a long preamble before the question: the cut is still the last option line
    text = "context " * 2000 + question("What is 2 + 2?", ["3", "4", "5", "22"])
    assert np.array_equal(featurize_options_apart(text)[0], reference(text)[0])


def _tiny(features: str) -> QualityPredictor:
    prompts = [question(f"q{i} what is {i}?", [str(i), str(i + 1), "x"]) for i in range(40)] + ["plain text"] * 4
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 2, size=(len(prompts), 2)).astype(float)
    return QualityPredictor.train(
        prompts, scores, ["a", "b"], solver="batch", epochs=20, lr=0.1, l2=1.0, features=features
    )  # fmt: skip


def test_the_feature_set_is_recorded_and_read_back(tmp_path) -> None:
    pred = _tiny("options-apart")
    assert pred.meta["features"] == "options-apart" and pred.featurize is featurize_options_apart
    save_predictor(pred, tmp_path / "p.npz")
    back = load_predictor(tmp_path / "p.npz")
    assert back.featurize is featurize_options_apart
    prompt = question("what is 5?", ["5", "6", "x"])
    assert back.predict(prompt) == pytest.approx(pred.predict(prompt), abs=2e-3)  # weights saved as float16
    # the same training on words differs: the features, not only the name, changed
    words_pred = _tiny("words")
    assert "features" not in words_pred.meta and words_pred.featurize is featurize
    assert words_pred.predict(prompt) != pred.predict(prompt)


def test_an_unknown_feature_set_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown feature set"):
        _tiny("letters")
    pred = _tiny("options-apart")
    pred.meta["features"] = "letters"
    save_predictor(pred, tmp_path / "p.npz")
    with pytest.raises(ValueError, match="unknown feature set 'letters'"):
        load_predictor(tmp_path / "p.npz")
    assert set(FEATURES) == {"words", "options-apart"}


def test_train_with_options_apart_from_the_cli_and_retrain_it_on_resplits(tmp_path) -> None:
    import json

    from typer.testing import CliRunner

    from policies.loaders import load_dataset
    from router.cli import cli
    from router.cli import policies as cli_policies

    rows = []
    for i in range(80):
        p = question(f"question {i % 7} about {i}", [str(i), "yes", "no"]) if i % 4 else f"plain {i}"
        split = "train" if i < 60 else "test"
        rows.append(
            {"id": f"r{i}", "prompt": p, "benchmark": "fx", "split": split, "big|score": 1, "small|score": i % 2}
        )
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "p.npz"
    args = ["policies", "train", "--data", str(data), "--out", str(out), "--epochs", "20", "--lr", "0.1"]
    bad = CliRunner().invoke(cli, [*args, "--solver", "batch", "--features", "letters"])
    assert bad.exit_code == 2 and "unknown feature set 'letters'" in bad.output and not out.exists()
    r = CliRunner().invoke(cli, [*args, "--solver", "batch", "--features", "options-apart"])
    assert r.exit_code == 0, r.output
    pred = load_predictor(out)
    assert pred.meta["features"] == "options-apart" and pred.featurize is featurize_options_apart
    # a re-split's predictor is trained anew on the file's feature set
    fresh, _ = cli_policies._retrained(None, load_dataset(data), pred, {}, None)  # type: ignore[arg-type]
    assert fresh is not None and fresh.meta["features"] == "options-apart"
    assert fresh.featurize is featurize_options_apart
