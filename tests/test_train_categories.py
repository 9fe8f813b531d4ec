"""A predictor that learns only from the prompts of the task categories its policy routes by it.

The RouteLLM policy routes multiple choice by predicted gain and everything else through a verifier
cascade, so its predictor may learn from the multiple-choice rows alone. Which rows those are is read
from each prompt (``categorize``), never from the row's benchmark label; the choice is recorded in the
predictor's file, and a re-split trains the new predictor on the same categories."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from policies.evaluate import train_predictor
from policies.features import categorize
from policies.loaders import load_dataset, load_predictor, save_predictor
from policies.predictor import QualityPredictor
from router.cli import cli
from router.cli import policies as cli_policies

# a policy routing every category by the predictor beside it (p.npz)
BY_PREDICTOR = (
    "name: auto\nbind: {aliases: [auto]}\ncandidates: [big, small]\n"
    "objective: {type: utility, lambda: 10}\nquality: {predictor: p.npz}\n"
)


def question(stem: str, options: list[str]) -> str:
    return stem + "".join(f"\n{letter}. {o}" for letter, o in zip("ABCD", options)) + "\nAnswer:"


def _data(tmp_path: Path) -> Path:
    rows = []
    for i in range(120):
        if i % 3 == 0:  # a word problem, labelled "mmlu" all the same: the label must not decide
            p, bench = f"Tom has {i} apples and buys 3 more. How many apples does Tom have now?", "mmlu"
        elif i % 3 == 1:
            p, bench = question(f"Which number follows {i}?", [str(i + 1), str(i + 2), "none"]), "mmlu"
        else:
            p, bench = question(f"Pick the even one near {i}", [str(2 * i), str(2 * i + 1), "x"]), "gsm8k"
        rows.append(
            {
                "id": f"r{i}",
                "prompt": p,
                "benchmark": bench,
                "split": "train" if i < 90 else "test",
                "big|score": 1,
                "small|score": (i // 3) % 2,
                "big|cost_usd": 0.01,
                "small|cost_usd": 0.001,
            }
        )
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_only_the_rows_whose_prompt_reads_as_the_category_are_learned_from(tmp_path: Path) -> None:
    ds = load_dataset(_data(tmp_path))
    train = ds.split("train")
    choice = [r for r in train if categorize(r["prompt"]) == "choice"]
    assert 0 < len(choice) < len(train)  # the data has both kinds, under both labels
    assert {r["benchmark"] for r in choice} == {"mmlu", "gsm8k"}
    every = train_predictor(ds, "train", solver="batch", epochs=20, lr=0.1, l2=1.0)
    only = train_predictor(ds, "train", solver="batch", epochs=20, lr=0.1, l2=1.0, categories=["choice"])
    assert every.meta["rows"] == len(train) and "categories" not in every.meta
    assert only.meta["rows"] == len(choice) and only.meta["categories"] == ["choice"]
    # what it learned is the choice rows' record: trained on those rows directly, the same predictor
    direct = train_predictor(
        load_dataset(_rows_file(tmp_path, choice)), "train", solver="batch", epochs=20, lr=0.1, l2=1.0
    )  # fmt: skip
    prompt = question("Which number follows 7?", ["8", "9", "none"])
    assert only.predict(prompt) == pytest.approx(direct.predict(prompt), abs=1e-6)
    assert only.predict(prompt) != pytest.approx(every.predict(prompt), abs=1e-3)


def _rows_file(tmp_path: Path, rows: list[dict]) -> Path:
    path = tmp_path / "choice.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_an_unknown_category_is_refused(tmp_path: Path) -> None:
    ds = load_dataset(_data(tmp_path))
    with pytest.raises(ValueError, match="unknown task categories"):
        train_predictor(ds, "train", solver="batch", epochs=5, categories=["mmlu"])


def test_the_cli_records_the_categories_and_a_resplit_keeps_them(tmp_path: Path) -> None:
    data, out = _data(tmp_path), tmp_path / "p.npz"
    args = ["policies", "train", "--data", str(data), "--out", str(out), "--solver", "batch", "--epochs", "20"]
    bad = CliRunner().invoke(cli, [*args, "--category", "mmlu"])
    assert bad.exit_code == 2 and "--category" in bad.output and not out.exists()
    none = CliRunner().invoke(cli, [*args, "--category", "json"])  # a category no training prompt reads as
    assert none.exit_code == 2 and "no rows to learn from in split 'train' whose prompt reads as json" in none.output
    assert not out.exists() and "Traceback" not in none.output
    r = CliRunner().invoke(cli, [*args, "--lr", "0.1", "--category", "choice", "--features", "options-apart"])
    assert r.exit_code == 0, r.output
    pred = load_predictor(out)
    ds = load_dataset(data)
    n_choice = sum(categorize(x["prompt"]) == "choice" for x in ds.split("train"))
    assert pred.meta["categories"] == ["choice"] and pred.meta["rows"] == n_choice
    fresh, _ = cli_policies._retrained(None, ds, pred, {}, None)  # type: ignore[arg-type]
    assert fresh is not None and fresh.meta["categories"] == ["choice"] and fresh.meta["rows"] == n_choice
    assert fresh.meta["features"] == "options-apart"


def test_the_shipped_predictor_is_what_its_policy_file_says() -> None:
    """The shipped RouteLLM predictor was trained as its policy's comment says (options apart, choice
    rows only), and the policy routes by it only the category it learned."""
    from policies.loaders import load_policy

    root = Path(__file__).resolve().parent.parent
    pred = load_predictor(root / "policies/data/routellm-gpt4-mixtral.npz")
    meta = pred.meta
    assert meta["features"] == "options-apart" and meta["categories"] == ["choice"]
    assert (meta["solver"], meta["l2"], meta["epochs"], meta["lr"]) == ("batch", 1.0, 100, 0.1)
    assert (meta["topic_field"], meta["topic_l2"], meta["topic_blend"]) == ("category", 0.03, 0.5)
    assert meta["split"] == "train" and meta["excluded"] == ["mt-bench"]
    comment = (root / "policies/examples/routellm-gpt4-mixtral.yaml").read_text()
    assert "--features options-apart --category choice" in comment
    policy = load_policy(root / "policies/examples/routellm-gpt4-mixtral.yaml")
    by_predictor = {name for name, rule in (policy.categories or {}).items() if rule.type == "gain"}
    assert by_predictor == {"choice"}


def _choice_predictor(path: Path) -> None:
    """A predictor that learned from multiple-choice prompts only (as ``--category choice`` records)."""
    prompts = [question(f"Which follows {i}?", [str(i + 1), str(i + 2)]) for i in range(30)]
    scores = [[1.0, float(i % 2)] for i in range(30)]
    pred = QualityPredictor.train(
        prompts, np.array(scores), ["big", "small"], solver="batch", epochs=10, lr=0.1, l2=1.0,
        meta={"categories": ["choice"]},
    )  # fmt: skip
    save_predictor(pred, path)


def test_a_policy_routing_other_categories_by_a_predictor_that_never_saw_them_is_warned_of(tmp_path: Path) -> None:
    """check-config (and the gateway's log at load) names the categories a policy routes by predicted
    quality that its predictor, trained with --category, never learned from; a policy that routes
    those by an objective that does not read the predictor is not warned of."""
    import logging

    from router.cli.checks import load_policies
    from router.config import parse_config

    pol = tmp_path / "pol"
    pol.mkdir()
    _choice_predictor(pol / "p.npz")
    (pol / "auto.yaml").write_text(BY_PREDICTOR)
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(
        "model_list:\n"
        "  - {model_name: big, litellm_params: {model: simulated/frontier}}\n"
        "  - {model_name: small, litellm_params: {model: simulated/small}}\n"
        f"policies: {{dirs: ['{pol}']}}\n"
    )
    r = CliRunner().invoke(cli, ["check-config", str(cfg)])
    assert r.exit_code == 0, r.output
    assert (
        "policy 'auto' routes json, code, math, general prompts by predicted quality, but its predictor "
        "learned only from choice prompts"
    ) in r.output
    # the same policy, everything but multiple choice sent by a fixed model and a cascade: no warning
    (pol / "auto.yaml").write_text(
        "name: auto\nbind: {aliases: [auto]}\ncandidates: [big, small]\n"
        "objective: {type: cascade, steps: [small, big], check: {type: agreement, with: [big]}}\n"
        "categories:\n  choice: {type: gain, strong: big, weak: small, min_gain: 0.1}\n"
        "  code: {type: fixed, model: big}\n"
        "quality: {predictor: p.npz}\n"
    )
    r = CliRunner().invoke(cli, ["check-config", str(cfg)])
    assert r.exit_code == 0 and "predicted quality" not in r.output, r.output
    # ... and one category left to an objective that reads it: named alone
    (pol / "auto.yaml").write_text(
        (pol / "auto.yaml").read_text().replace("code: {type: fixed, model: big}", "code: {type: utility, lambda: 5}")
    )
    store, problems = load_policies(parse_config(cfg.read_text()))
    assert not problems
    assert [w.split(" by predicted")[0] for w in store.predictor_gaps()] == ["policy 'auto' routes code prompts"]
    # the gateway says it in its log when it loads the policies
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("switchyard.policies")
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        ok, _ = store.reload()
    finally:
        logger.removeHandler(handler)
    assert ok and any("routes code prompts by predicted quality" in r.getMessage() for r in records)


def test_the_shipped_policy_routes_by_its_predictor_only_what_it_learned() -> None:
    from policies.loaders import load_policy

    root = Path(__file__).resolve().parent.parent
    policy = load_policy(root / "policies/examples/routellm-gpt4-mixtral.yaml")
    learned = load_predictor(root / "policies/data/routellm-gpt4-mixtral.npz").meta["categories"]
    assert policy.untrained_categories(learned) == []
    assert policy.untrained_categories(None) == [] and policy.untrained_categories([]) == []
    assert policy.untrained_categories(["code"]) == ["choice"]


def test_policies_eval_warns_of_the_same(tmp_path: Path) -> None:
    data = _data(tmp_path)
    pred_path = tmp_path / "p.npz"
    r = CliRunner().invoke(
        cli,
        ["policies", "train", "--data", str(data), "--out", str(pred_path), "--solver", "batch", "--epochs", "5"]
        + ["--category", "choice"],
    )
    assert r.exit_code == 0, r.output
    pol = tmp_path / "auto.yaml"
    pol.write_text(BY_PREDICTOR)
    r = CliRunner().invoke(cli, ["policies", "eval", "--data", str(data), "--policy", str(pol)])
    assert r.exit_code == 0, r.output
    assert "warning: 'auto' routes json, code, math, general prompts by a predictor that learned only from choice" in (
        r.output
    )
