"""``switchyard policies ...``: check, train and evaluate routing policies offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from router.cli.common import load_data, refuse, written
from router.cli.eval_report import print_report
from router.cli.simulate import policies_simulate

if TYPE_CHECKING:  # the commands import what they use when they run (a fast `switchyard --help`)
    from policies.outcomes import Dataset
    from policies.predictor import QualityPredictor
    from policies.schema import Policy
    from policies.verifier import Verifier
    from pricing import ModelPrice

policies_cli = typer.Typer(no_args_is_help=True, help="Routing policies: check, train, evaluate.")


@policies_cli.command("schema")
def policies_schema() -> None:
    """Print the policy files' JSON Schema (for editor completion)."""
    from policies.schema import json_schema

    typer.echo(json.dumps(json_schema(), indent=2))


@policies_cli.command("check")
def policies_check(files: list[Path] = typer.Argument(..., help="Policy YAML files.")) -> None:
    """Validate policy files without serving."""
    from policies.loaders import load_policy
    from policies.schema import PolicyError

    bad = False
    for f in files:
        try:
            p = load_policy(f)
            typer.echo(f"{f}: OK - policy '{p.name}', {p.objective.type}, {len(p.pool)} candidate(s)")
        except PolicyError as exc:
            bad = True
            for problem in exc.problems:
                typer.echo(f"{f}: {problem}", err=True)
    if bad:
        raise typer.Exit(2)


@policies_cli.command("train")
def policies_train(
    data: Path = typer.Option(..., help="Outcome data (JSON lines; see docs)."),
    out: Path = typer.Option(..., help="Where to write the predictor (.npz)."),
    split: str = typer.Option("train", help="Train on this split only."),
    exclude_benchmark: list[str] = typer.Option([], help="Leave these benchmarks out of training."),
    epochs: int = typer.Option(5, min=1, help="adagrad: passes over the data; batch: full-batch steps."),
    lr: float = typer.Option(0.5, min=0.0, help="Step size (adagrad: smaller is smoother; batch: Adam's)."),
    solver: str = typer.Option(
        "adagrad",
        help="adagrad (stochastic, raw features) or batch (full-batch Adam, TF-IDF features, L2-regularised).",
    ),
    l2: Optional[float] = typer.Option(None, min=0.0, help="L2 strength (default: 1e-6 adagrad, 1.0 batch)."),
    policy: Optional[Path] = typer.Option(None, help="Also predict the outcome of this policy's named cascades."),
    responses: Optional[Path] = typer.Option(
        None, help="Answer texts for the cascades' checks (default: <data>_responses.jsonl)."
    ),
    topic_field: Optional[str] = typer.Option(
        None, help="A row field (e.g. category) a topic head learns to read from the prompt (batch solver)."
    ),
    topic_l2: float = typer.Option(0.1, min=0.0, help="The topic head's L2 strength."),
    topic_blend: float = typer.Option(0.5, min=0.0, max=1.0, help="The topic quality's share in a prediction."),
    features: str = typer.Option(
        "words", help="The prompt's features: words, or options-apart (a question's stem and options apart)."
    ),
    category: list[str] = typer.Option(
        [], help="Learn only from rows whose prompt reads as this task category (repeatable; e.g. choice)."
    ),
) -> None:
    """Train the quality predictor on outcome data."""
    import time as _time

    from policies.evaluate import train_predictor
    from policies.loaders import load_assets, load_responses, save_predictor
    from policies.loaders import load_policy
    from policies.schema import PolicyError

    ds = load_data(data)
    pol, verifiers = None, {}
    if policy is not None:
        try:
            pol = load_policy(policy)
            verifiers = load_assets(pol, policy.parent, with_predictor=False)[1]
        except PolicyError as exc:
            refuse("\n".join(f"{policy}: {p}" for p in exc.problems))
    t0 = _time.perf_counter()
    if solver not in ("adagrad", "batch"):
        refuse(f"--solver: unknown solver '{solver}' (adagrad, batch)")
    from policies.features import feature_set

    try:
        feature_set(features)
    except ValueError as exc:
        refuse(f"--features: {exc}")
    if topic_field is not None and solver != "batch":
        refuse("--topic-field: a topic head needs --solver batch")
    from policies.schema import CATEGORIES

    if set(category) - set(CATEGORIES):
        refuse(f"--category: unknown {sorted(set(category) - set(CATEGORIES))} ({', '.join(CATEGORIES)})")
    try:
        pred = train_predictor(
            ds,
            split,
            exclude=exclude_benchmark,
            epochs=epochs,
            lr=lr,
            policy=pol,
            verifiers=verifiers,
            solver=solver,
            l2=l2,
            topic_field=topic_field,
            topic_l2=topic_l2,
            topic_blend=topic_blend,
            features=features,
            categories=category,
            responses=load_responses(responses or data.with_name(data.stem + "_responses.jsonl")),
        )
    except ValueError as exc:  # e.g. no row of the data reads as the --category asked for
        refuse(f"{data}: {exc}")
    pred.meta.update(data=data.name)
    written(out, lambda p: save_predictor(pred, p))
    typer.echo(
        f"trained on {pred.meta['rows']} rows x {len(pred.models)} columns in {_time.perf_counter() - t0:.1f}s -> {out}"
    )


@policies_cli.command("train-verifier")
def policies_train_verifier(
    data: Path = typer.Option(..., help="Outcome data with answer texts (JSON lines)."),
    model: str = typer.Option(..., help="The model whose answers the verifier judges (a cascade's cheap step)."),
    out: Path = typer.Option(..., help="Where to write the verifier (.json)."),
    with_: list[str] = typer.Option([], "--with", help="Models whose answers it compares (the check's with:)."),
    split: str = typer.Option("train", help="Train on this split only."),
    exclude_benchmark: list[str] = typer.Option([], help="Leave these benchmarks out of training."),
    responses: Optional[Path] = typer.Option(
        None, help="Answer texts by id (default: <data>_responses.jsonl, or the data's own '|response' fields)."
    ),
) -> None:
    """Train a cascade's answer verifier on outcome data."""
    from policies.outcomes import train_verifier
    from policies.loaders import load_responses, save_verifier

    ds = load_data(data)
    unknown = [m for m in [model, *with_] if m not in ds.models]
    if unknown:
        refuse(f"not in the data: {', '.join(unknown)}")
    try:
        ver = train_verifier(
            ds,
            split,
            model,
            list(with_),
            exclude=exclude_benchmark,
            responses=load_responses(responses or data.with_name(data.stem + "_responses.jsonl")),
        )
    except ValueError as exc:
        refuse(str(exc))
    ver.meta.update(data=data.name)
    written(out, lambda p: save_verifier(ver, p))
    weights = ", ".join(f"{k} {v:+.2f}" for k, v in ver.weights.items() if v)
    typer.echo(f"trained on {ver.meta['rows']} answers of {model} -> {out}\n  {weights}")


def _retrained(
    pol: Policy,
    ds: Dataset,
    pred: QualityPredictor | None,
    verifiers: dict[str, Verifier],
    responses: dict[str, dict[str, str]] | None,
) -> tuple[QualityPredictor | None, dict[str, Verifier]]:
    """The policy's predictor and verifiers trained again on ``ds``'s train split, each with the
    settings it was trained with (its own metadata)."""
    from policies.evaluate import train_predictor
    from policies.outcomes import train_verifier

    fresh = {}
    for name, ver in verifiers.items():
        m = ver.meta
        fresh[name] = train_verifier(
            ds, "train", m["model"], list(m.get("with") or []), exclude=m.get("excluded") or [], responses=responses
        )
    new_pred = None
    if pred is not None:
        m = pred.meta
        with_policy = any(c not in ds.models for c in pred.models)
        new_pred = train_predictor(
            ds,
            "train",
            exclude=m.get("excluded") or [],
            epochs=int(m.get("epochs", 5)),
            lr=float(m.get("lr", 0.5)),
            solver=m.get("solver", "adagrad"),
            l2=m.get("l2"),
            topic_field=m.get("topic_field"),
            topic_l2=float(m.get("topic_l2", 0.1)),
            topic_blend=float(m.get("topic_blend", 0.5)),
            features=str(m.get("features", "words")),
            categories=list(m.get("categories") or []),
            policy=pol if with_policy else None,
            verifiers=fresh,
            responses=responses,
        )
    return new_pred, fresh


@policies_cli.command("eval")
def policies_eval(
    data: Path = typer.Option(..., help="Outcome data (JSON lines)."),
    policy: Path = typer.Option(..., help="The policy file."),
    split: str = typer.Option("test", help="Evaluate on this split."),
    sweep: list[str] = typer.Option(
        [],
        help="NAME=v1,v2,... : a parameter to sweep (e.g. lambda, min_gain, "
        "check.min_confidence, categories.choice.min_gain); several go in lockstep.",
    ),
    predictor: Optional[Path] = typer.Option(None, help="Override the policy's predictor file."),
    prices: Optional[Path] = typer.Option(None, help="prices.json (default: beside the data, if present)."),
    responses: Optional[Path] = typer.Option(
        None, help="Recorded responses for cascade checks (default: <data>_responses.jsonl)."
    ),
    decisions: Optional[Path] = typer.Option(None, help="Write one line per prompt: id, model (and the swept values)."),
    plot: Optional[Path] = typer.Option(None, help="Write the cost-quality frontier as a PNG (needs matplotlib)."),
    sell_at: Optional[str] = typer.Option(
        None,
        help="IN,OUT: a fixed price in USD per 1M input and output tokens; "
        "reports the operator's margin under it (and margin objectives see it).",
    ),
    resplits: int = typer.Option(
        0,
        min=0,
        help="Also split the data anew K times (seeded), retrain the policy's "
        "predictor and verifiers on each train split with their own settings, "
        "evaluate on its test split, and report mean and spread.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Replay a dataset through a policy; report cost and quality beside the baselines."""
    from policies.evaluate import evaluate, headline
    from policies.outcomes import resplit

    pol, pred, verifiers, ds, price_map, resp = replay_inputs(policy, data, predictor, prices, responses)
    gaps = pol.untrained_categories(pred.meta.get("categories") if pred is not None else None)
    if gaps and pred is not None:
        typer.echo(
            f"warning: '{pol.name}' routes {', '.join(gaps)} prompts by a predictor that learned only from "
            f"{', '.join(pred.meta['categories'])} prompts",
            err=True,
        )
    try:
        sweeps = [_parse_sweep(x) for x in sweep]
        sold = _parse_price(sell_at) if sell_at else None
        report = evaluate(
            pol,
            ds,
            split=split,
            prices=price_map,
            predictor=pred,
            sweep=sweeps,
            responses=resp,
            verifiers=verifiers,
            sold_at=sold,
        )
    except ValueError as exc:
        refuse(f"{policy}: {exc}")
    lines = report.pop("decisions")
    if decisions:
        written(decisions, lambda p: p.write_text("".join(json.dumps(x) + "\n" for x in lines)))
    if plot:
        from router.analytics.plots import frontier_png

        written(plot, lambda p: frontier_png(report, p))
    if resplits:
        import numpy as np

        runs = []
        for seed in range(1, resplits + 1):
            ds_k = resplit(ds, seed)
            try:
                pred_k, ver_k = _retrained(pol, ds_k, pred, verifiers, resp)
                r = evaluate(pol, ds_k, prices=price_map, predictor=pred_k, sweep=sweeps, responses=resp,
                             verifiers=ver_k, sold_at=sold)  # fmt: skip
            except ValueError as exc:  # what the official split passed, a re-split's rows may not
                refuse(f"{policy}: re-split {seed}: {exc}")
            r.pop("decisions")
            runs.append(headline(r))
            if not as_json:
                typer.echo(f"re-split {seed}/{resplits}: {r['rows']} test rows", err=True)
        names = list(dict.fromkeys(k for h in runs for k in h))
        report["resplits"] = {
            "k": resplits,
            "figures": {
                k: {
                    "mean": float(np.mean(v)),
                    "sd": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                    "min": float(min(v)),
                    "max": float(max(v)),
                    "runs": len(v),
                    "values": v,
                }
                for k in names
                for v in [[h[k] for h in runs if k in h]]
            },
        }
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    print_report(report)


def replay_inputs(
    policy: Path, data: Path, predictor: Optional[Path], prices: Optional[Path], responses: Optional[Path]
) -> tuple[
    Policy,
    QualityPredictor | None,
    dict[str, Verifier],
    Dataset,
    dict[str, ModelPrice],
    dict[str, dict[str, str]] | None,
]:
    """What a replay needs: the policy and its trained files, the data, its prices (prices.json
    beside the data unless given) and recorded answers (<data>_responses.jsonl unless given)."""
    from policies.loaders import load_assets, load_prices, load_responses
    from policies.loaders import load_policy
    from policies.schema import PolicyError

    try:
        pol = load_policy(policy)
        pred, verifiers = load_assets(pol, policy.parent, predictor)
    except PolicyError as exc:
        refuse("\n".join(f"{policy}: {p}" for p in exc.problems))
    from policies.outcomes import unpriced_models

    ds = load_data(data)
    prices_path = prices or (data.parent / "prices.json" if (data.parent / "prices.json").exists() else None)
    unpriced = unpriced_models(ds, json.loads(prices_path.read_text()) if prices_path else {})
    if unpriced:  # their cost would be read as $0: every figure in dollars would be wrong
        typer.echo(
            f"{data}: no cost for {', '.join(unpriced)}: rows without '<model>|cost_usd' need a price in "
            f"{prices_path or 'a prices.json beside the data (or --prices)'}",
            err=True,
        )
        raise typer.Exit(2)
    resp = load_responses(responses or data.with_name(data.stem + "_responses.jsonl"))
    return pol, pred, verifiers, ds, load_prices(prices_path, ds.models), resp


def _parse_sweep(text: str) -> tuple[str, list[float]]:
    name, eq, values = text.partition("=")
    try:
        vals = [float(v) for v in values.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--sweep {text}: values are numbers (NAME=v1,v2,...)") from None
    if not eq or not name.strip() or not vals:
        raise ValueError(f"--sweep {text}: give NAME=v1,v2,...")
    return name.strip(), vals


def _parse_price(text: str) -> tuple[float, float]:
    try:
        inp, out = (float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--sell-at {text}: give IN,OUT in USD per 1M tokens") from None
    if inp < 0 or out < 0:
        raise ValueError(f"--sell-at {text}: prices are not negative")
    return inp / 1e6, out / 1e6


policies_cli.command("simulate")(policies_simulate)
