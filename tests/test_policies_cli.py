"""`switchyard policies ...` end to end on a small outcome file: train the predictor (with a named
cascade's column) and a verifier, evaluate with a sweep, and recompute a setting from the decisions."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from router.cli import cli

POLICY = """
name: fx
bind: {aliases: [auto]}
candidates: [small, big, checked]
cascades:
  checked: {steps: [small, big], check: {type: verifier, verifier: v.json, min_confidence: 0.5}}
objective: {type: utility, lambda: 10}
quality: {predictor: p.npz, bandit: {enabled: false}}
"""


def data(path) -> None:
    lines = []
    for i in range(120):
        ok = i % 3 != 0
        answer = f"{i} + 1 = {i + 1}\n#### {i + 1}" if ok else f"{i} + 1 = {i + 2}, about {i}.5"
        lines.append({"id": f"q{i}", "prompt": f"what is {i} plus one", "benchmark": "sums",
                      "split": "train" if i < 80 else "test", "small|score": int(ok), "small|cost_usd": 0.001,
                      "small|response": answer, "big|score": 1, "big|cost_usd": 0.02, "big|response": "#### ok"})
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))


def test_train_verifier_train_and_eval(tmp_path) -> None:
    run = CliRunner().invoke
    d = tmp_path / "sums.jsonl"
    data(d)
    (tmp_path / "fx.yaml").write_text(POLICY)
    r = run(cli, ["policies", "train-verifier", "--data", str(d), "--model", "small", "--out", str(tmp_path / "v.json")])
    assert r.exit_code == 0, r.output
    assert "trained on 80 answers of small" in r.output and "arithmetic_errors -" in r.output
    r = run(cli, ["policies", "train", "--data", str(d), "--policy", str(tmp_path / "fx.yaml"), "--epochs", "3",
                  "--out", str(tmp_path / "p.npz")])
    assert r.exit_code == 0, r.output
    assert "80 rows x 3 columns" in r.output  # big, small and the cascade
    r = run(cli, ["policies", "eval", "--data", str(d), "--policy", str(tmp_path / "fx.yaml"), "--json",
                  "--sweep", "cascades.checked.check.min_confidence=0,0.5,1", "--decisions", str(tmp_path / "dec.jsonl")])
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    knob = "cascades.checked.check.min_confidence"
    assert [s[knob] for s in report["settings"]] == [0, 0.5, 1]
    decisions = [json.loads(x) for x in (tmp_path / "dec.jsonl").read_text().splitlines()]
    assert len(decisions) == 3 * 40
    rows = {x["id"]: x for x in map(json.loads, d.read_text().splitlines())}
    for s in report["settings"]:  # anyone can recompute a setting's figures from the decisions
        mine = [x for x in decisions if x[knob] == s[knob]]
        assert np.mean([rows[x["id"]][f"{x['model']}|score"] for x in mine]) == s["quality"]
        spent = [sum(rows[x["id"]][f"{m}|cost_usd"] for m in x.get("called", [x["model"]])) for x in mine]
        assert np.mean(spent) == s["cost"]
    bad = run(cli, ["policies", "eval", "--data", str(d), "--policy", str(tmp_path / "fx.yaml"), "--sweep", "check.x=1"])
    assert bad.exit_code == 2 and "has no parameter 'check.x'" in bad.output
    bad = run(cli, ["policies", "train-verifier", "--data", str(d), "--model", "nope", "--out", str(tmp_path / "x.json")])
    assert bad.exit_code == 2 and "not in the data: nope" in bad.output
