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
        lines.append(
            {
                "id": f"q{i}",
                "prompt": f"what is {i} plus one",
                "benchmark": "sums",
                "split": "train" if i < 80 else "test",
                "small|score": int(ok),
                "small|cost_usd": 0.001,
                "small|response": answer,
                "big|score": 1,
                "big|cost_usd": 0.02,
                "big|response": "#### ok",
            }
        )
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))


def test_train_verifier_train_and_eval(tmp_path) -> None:
    run = CliRunner().invoke
    d = tmp_path / "sums.jsonl"
    data(d)
    (tmp_path / "fx.yaml").write_text(POLICY)
    r = run(
        cli, ["policies", "train-verifier", "--data", str(d), "--model", "small", "--out", str(tmp_path / "v.json")]
    )
    assert r.exit_code == 0, r.output
    assert "trained on 80 answers of small" in r.output and "arithmetic_errors -" in r.output
    r = run(
        cli,
        [
            "policies",
            "train",
            "--data",
            str(d),
            "--policy",
            str(tmp_path / "fx.yaml"),
            "--epochs",
            "3",
            "--out",
            str(tmp_path / "p.npz"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "80 rows x 3 columns" in r.output  # big, small and the cascade
    r = run(
        cli,
        [
            "policies",
            "eval",
            "--data",
            str(d),
            "--policy",
            str(tmp_path / "fx.yaml"),
            "--json",
            "--sweep",
            "cascades.checked.check.min_confidence=0,0.5,1",
            "--decisions",
            str(tmp_path / "dec.jsonl"),
        ],
    )
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
    bad = run(
        cli, ["policies", "eval", "--data", str(d), "--policy", str(tmp_path / "fx.yaml"), "--sweep", "check.x=1"]
    )
    assert bad.exit_code == 2 and "has no parameter 'check.x'" in bad.output
    bad = run(
        cli, ["policies", "train-verifier", "--data", str(d), "--model", "nope", "--out", str(tmp_path / "x.json")]
    )
    assert bad.exit_code == 2 and "not in the data: nope" in bad.output


def test_eval_resplits_retrain_with_the_files_own_settings_and_report_the_spread(tmp_path) -> None:
    run = CliRunner().invoke
    d = tmp_path / "sums.jsonl"
    data(d)
    (tmp_path / "fx.yaml").write_text(POLICY)
    assert (
        run(
            cli, ["policies", "train-verifier", "--data", str(d), "--model", "small", "--out", str(tmp_path / "v.json")]
        ).exit_code
        == 0
    )
    r = run(
        cli,
        [
            "policies",
            "train",
            "--data",
            str(d),
            "--policy",
            str(tmp_path / "fx.yaml"),
            "--epochs",
            "20",
            "--lr",
            "0.1",
            "--solver",
            "batch",
            "--l2",
            "2",
            "--out",
            str(tmp_path / "p.npz"),
        ],
    )
    assert r.exit_code == 0, r.output
    args = [
        "policies",
        "eval",
        "--data",
        str(d),
        "--policy",
        str(tmp_path / "fx.yaml"),
        "--json",
        "--sweep",
        "lambda=0,10,1000",
        "--sell-at",
        "50,50",
    ]
    r = run(cli, args + ["--resplits", "3"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    figures = report["resplits"]["figures"]
    assert report["resplits"]["k"] == 3 and report["sold_at_per_mtok"] == [50.0, 50.0]
    q = figures["[lambda=1000] quality"]
    assert q["runs"] == 3 and len(q["values"]) == 3 and q["min"] <= q["mean"] <= q["max"]
    assert q["sd"] == np.std(q["values"], ddof=1)
    # the cascade's verifier and the predictor were retrained on each new split: the splits differ, so do figures
    assert len(set(figures["[lambda=0] USD/1k prompts"]["values"])) > 1 or len(set(q["values"])) > 1
    assert "sums AIQ" in figures and "AIQ gain over zero router" in figures
    for bad, why in (
        (["--sweep", "lambda"], "give NAME=v1,v2"),
        (["--sweep", "lambda=a,b"], "values are numbers"),
        (["--sell-at", "5"], "IN,OUT"),
        (["--sweep", "nothing=1"], "no parameter 'nothing'"),
    ):
        r = run(cli, ["policies", "eval", "--data", str(d), "--policy", str(tmp_path / "fx.yaml")] + bad)
        assert r.exit_code == 2 and why in r.output, (bad, r.output)


def test_check_config_warns_when_a_fixed_price_alias_can_route_to_a_dearer_model(tmp_path) -> None:
    (tmp_path / "pol").mkdir()
    (tmp_path / "pol" / "auto.yaml").write_text(
        "name: auto\nbind: {aliases: [auto]}\ncandidates: [big, small]\n"
        "objective: {type: margin, min_quality: 0.7}\nquality: {priors: {big: 0.9, small: 0.6}}\n"
    )
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(
        "model_list:\n"
        "  - {model_name: big, litellm_params: {model: simulated/frontier}}\n"  # $2.5 / $10 per 1M tokens
        "  - {model_name: small, litellm_params: {model: simulated/small}}\n"
        f"policies: {{dirs: ['{tmp_path / 'pol'}']}}\n"
        "billing:\n  default_plan: flat\n  plans:\n    flat: {fixed: {auto: {input_per_mtok: 1.0, output_per_mtok: 20.0}}}\n"
    )
    r = CliRunner().invoke(cli, ["check-config", str(cfg)])
    assert r.exit_code == 0, r.output
    assert (
        "plan 'flat' sells 'auto' at a fixed $1 / $20 per million input / output tokens, and 'auto' can route "
        "to 'big', which costs more per million tokens (input $2.5 > $1)"
    ) in r.output
    assert "route to 'small'" not in r.output


def test_simulate_prints_the_learning_curve_and_its_gap(tmp_path) -> None:
    from tests.test_policy_metrics import bandit_dataset

    d = bandit_dataset(tmp_path / "b.jsonl")
    (tmp_path / "b.yaml").write_text(
        "name: b\nbind: {aliases: [auto]}\ncandidates: [good, bad]\n"
        "objective: {type: utility, lambda: 10}\nquality: {priors: {good: 0.9, bad: 0.2}}\n"
    )
    run = CliRunner().invoke
    r = run(
        cli,
        [
            "policies",
            "simulate",
            "--data",
            str(d),
            "--policy",
            str(tmp_path / "b.yaml"),
            "--seeds",
            "3",
            "--at",
            "100",
            "--window",
            "50",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "after 100 feedback events: online utility over the last 50 rows vs the offline policy's" in r.output
    assert "frozen and applied greedily to all 300 rows: utility +0.0% vs the offline policy's (seeds 0..2" in r.output
    r = run(cli, ["policies", "simulate", "--data", str(d), "--policy", str(tmp_path / "b.yaml"), "--json"])
    report = json.loads(r.output)
    assert report["start"] == "uninformed" and report["curves"]["online"][-1]["n"] == 300
    r = run(cli, ["policies", "simulate", "--data", str(d), "--policy", str(tmp_path / "b.yaml"), "--start", "x"])
    assert r.exit_code == 2 and "start is 'uninformed' or 'trained'" in r.output
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    r = run(
        cli,
        [
            "policies",
            "simulate",
            "--data",
            str(d),
            "--policy",
            str(tmp_path / "b.yaml"),
            "--plot",
            str(tmp_path / "c.png"),
        ],
    )
    assert r.exit_code == 0 and (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def utility_policy(name: str) -> str:
    """A two-model utility policy over big and small, with fixed priors (no predictor)."""
    return (
        f"name: {name}\nbind: {{aliases: [auto]}}\ncandidates: [big, small]\n"
        "objective: {type: utility, lambda: 10}\nquality: {priors: {big: 0.9, small: 0.5}}\n"
    )


def test_replaying_data_with_no_cost_for_a_model_is_refused_not_priced_at_zero(tmp_path) -> None:
    """A model whose rows carry no cost and which prices.json does not price would be read as free:
    eval and simulate refuse the data, naming the model, instead of reporting $0 (or crashing on a
    division by a cost of zero, as eval did)."""
    from tests.test_train_categories import _data

    rows = [json.loads(x) for x in _data(tmp_path).read_text().splitlines()]
    for r in rows:
        del r["small|cost_usd"]
    data = tmp_path / "nocost.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pol = tmp_path / "auto.yaml"
    pol.write_text(utility_policy("auto"))
    for command in ("eval", "simulate"):
        r = CliRunner().invoke(cli, ["policies", command, "--data", str(data), "--policy", str(pol)])
        assert r.exit_code == 2, (command, r.output)
        assert "no cost for small" in r.output and "Traceback" not in r.output
    # priced by a prices.json beside the data (tokens x price): accepted
    for r in rows:
        r["small|input_tokens"], r["small|output_tokens"] = 100, 10
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "prices.json").write_text(
        json.dumps({"small": {"dataset_price_usd_per_1M": {"input": 1, "output": 2}}})
    )
    r = CliRunner().invoke(cli, ["policies", "eval", "--data", str(data), "--policy", str(pol), "--json"])
    assert r.exit_code == 0, r.output
    # every model free (all costs zero): a clear refusal, not a division by zero
    for r in rows:
        r["big|cost_usd"] = 0.0
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "prices.json").write_text(
        json.dumps({"small": {"dataset_price_usd_per_1M": {"input": 0, "output": 0}}})
    )
    r = CliRunner().invoke(cli, ["policies", "eval", "--data", str(data), "--policy", str(pol)])
    assert r.exit_code == 2 and "costs nothing" in r.output and "Traceback" not in r.output, r.output


def test_a_resplit_whose_rows_cannot_be_scored_is_a_clear_error(tmp_path) -> None:
    """The official split passes, and a re-split puts rows where the strongest model costs nothing in
    its test split: the command names the re-split and exits 2 (it raised a traceback before)."""
    rows = []
    for i in range(80):
        rows.append(
            {"id": f"a{i}", "prompt": f"question {i}", "benchmark": "a", "split": "train" if i < 60 else "test",
             "big|score": 1, "small|score": i % 2, "big|cost_usd": 0.01, "small|cost_usd": 0.001}
        )  # fmt: skip
    for i in range(12):  # a benchmark whose rows are all free, every one of them in train
        rows.append(
            {"id": f"b{i}", "prompt": f"free {i}", "benchmark": "b", "split": "train",
             "big|score": 1, "small|score": 0, "big|cost_usd": 0.0, "small|cost_usd": 0.0}
        )  # fmt: skip
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pol = tmp_path / "p.yaml"
    pol.write_text(utility_policy("p"))
    args = ["policies", "eval", "--data", str(data), "--policy", str(pol)]
    assert CliRunner().invoke(cli, args).exit_code == 0
    r = CliRunner().invoke(cli, [*args, "--resplits", "3"])
    assert r.exit_code == 2, r.output
    assert "re-split" in r.output and "costs nothing on the b rows" in r.output and "Traceback" not in r.output


def test_the_policies_commands_answer_bad_files_with_a_clear_error(tmp_path) -> None:
    """Data that is missing, not JSON lines, not rows or holds no model; an output in a folder that does
    not exist; a topic field no row has: each an error naming the file and exit 2, never a traceback."""
    from tests.test_train_categories import _data

    good = _data(tmp_path)
    pol = tmp_path / "p.yaml"
    pol.write_text(utility_policy("p"))
    bad = {
        "missing.jsonl": None,
        "yaml.jsonl": "name: p\n",
        "array.jsonl": "[1, 2]\n",
        "empty.jsonl": "\n\n",
        "noscore.jsonl": json.dumps({"id": "a", "prompt": "hi", "split": "train"}) + "\n",
        "latin1.jsonl": b'{"prompt": "caf\xe9"}\n',
    }
    for name, text in bad.items():
        path = tmp_path / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        elif text is not None:
            path.write_text(text)
        for args in (
            ["policies", "eval", "--data", str(path), "--policy", str(pol)],
            ["policies", "simulate", "--data", str(path), "--policy", str(pol)],
            ["policies", "train", "--data", str(path), "--out", str(tmp_path / "o.npz")],
        ):
            r = CliRunner().invoke(cli, args)
            assert r.exit_code == 2 and f"{path}: cannot read the data" in r.output, (name, args[1], r.output)
            assert not isinstance(r.exception, Exception) or isinstance(r.exception, SystemExit), r.exception
    nowhere = tmp_path / "no-such-folder" / "x"
    for args in (
        ["policies", "train", "--data", str(good), "--out", f"{nowhere}.npz"],
        ["policies", "eval", "--data", str(good), "--policy", str(pol), "--decisions", f"{nowhere}.jsonl"],
    ):
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 2 and "cannot write: No such file or directory" in r.output, (args, r.output)
    args = ["policies", "train", "--data", str(good), "--out", str(tmp_path / "o.npz"), "--solver", "batch"]
    r = CliRunner().invoke(cli, [*args, "--topic-field", "subject"])
    assert r.exit_code == 2 and "no training row has the topic field 'subject'" in r.output
    assert not (tmp_path / "o.npz").exists()


def test_a_config_or_policy_file_that_is_not_utf8_is_a_clear_error(tmp_path) -> None:
    cfg, pol = tmp_path / "gw.yaml", tmp_path / "p.yaml"
    cfg.write_bytes(b"model_list: []\n# caf\xe9\n")
    pol.write_bytes(b"name: caf\xe9\n")
    for args, where in ((["check-config", str(cfg)], cfg), (["policies", "check", str(pol)], pol)):
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 2 and f"{where}" in r.output and "not UTF-8 text (byte " in r.output, r.output
        assert r.exception is None or isinstance(r.exception, SystemExit)
    # a policy directory holding such a file: the config names it, it does not crash
    (tmp_path / "pols").mkdir()
    (tmp_path / "pols" / "p.yaml").write_bytes(b"name: caf\xe9\n")
    cfg.write_text(
        "model_list:\n  - {model_name: big, litellm_params: {model: simulated/frontier}}\n"
        f"policies: {{dirs: ['{tmp_path / 'pols'}']}}\n"
    )
    r = CliRunner().invoke(cli, ["check-config", str(cfg)])
    assert r.exit_code == 2 and "not UTF-8 text" in r.output, r.output
