"""``switchyard policies ...``: check, train and evaluate routing policies offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

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
) -> None:
    """Train the quality predictor on outcome data."""
    import time as _time

    from policies.evaluate import train_predictor
    from policies.loaders import load_assets, load_dataset, load_responses, save_predictor
    from policies.loaders import load_policy
    from policies.schema import PolicyError

    ds = load_dataset(data)
    pol, verifiers = None, {}
    if policy is not None:
        try:
            pol = load_policy(policy)
            verifiers = load_assets(pol, policy.parent, with_predictor=False)[1]
        except PolicyError as exc:
            typer.echo("\n".join(f"{policy}: {p}" for p in exc.problems), err=True)
            raise typer.Exit(2)
    t0 = _time.perf_counter()
    if solver not in ("adagrad", "batch"):
        typer.echo(f"--solver: unknown solver '{solver}' (adagrad, batch)", err=True)
        raise typer.Exit(2)
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
        responses=load_responses(responses or data.with_name(data.stem + "_responses.jsonl")),
    )
    pred.meta.update(data=data.name)
    save_predictor(pred, out)
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
    from policies.loaders import load_dataset, load_responses, save_verifier

    ds = load_dataset(data)
    unknown = [m for m in [model, *with_] if m not in ds.models]
    if unknown:
        typer.echo(f"not in the data: {', '.join(unknown)}", err=True)
        raise typer.Exit(2)
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
        typer.echo(str(exc), err=True)
        raise typer.Exit(2)
    ver.meta.update(data=data.name)
    save_verifier(ver, out)
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

    pol, pred, verifiers, ds, price_map, resp = _replay_inputs(policy, data, predictor, prices, responses)
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
        typer.echo(f"{policy}: {exc}", err=True)
        raise typer.Exit(2)
    lines = report.pop("decisions")
    if decisions:
        decisions.write_text("".join(json.dumps(x) + "\n" for x in lines))
    if plot:
        from router.analytics.plots import frontier_png

        frontier_png(report, plot)
    if resplits:
        import numpy as np

        runs = []
        for seed in range(1, resplits + 1):
            ds_k = resplit(ds, seed)
            pred_k, ver_k = _retrained(pol, ds_k, pred, verifiers, resp)
            r = evaluate(
                pol,
                ds_k,
                prices=price_map,
                predictor=pred_k,
                sweep=sweeps,
                responses=resp,
                verifiers=ver_k,
                sold_at=sold,
            )
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
    _print_report(report)


def _replay_inputs(
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
    from policies.loaders import load_assets, load_dataset, load_prices, load_responses
    from policies.loaders import load_policy
    from policies.schema import PolicyError

    try:
        pol = load_policy(policy)
        pred, verifiers = load_assets(pol, policy.parent, predictor)
    except PolicyError as exc:
        typer.echo("\n".join(f"{policy}: {p}" for p in exc.problems), err=True)
        raise typer.Exit(2)
    ds = load_dataset(data)
    prices_path = prices or (data.parent / "prices.json" if (data.parent / "prices.json").exists() else None)
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


def _pct(v: float | None) -> str:
    return "never" if v is None else f"{v:.1%}"


def _settings_table(report: dict[str, Any]) -> Any:
    """One row per setting of the sweep and per baseline: quality, cost, and the margin at a fixed price."""
    from rich.table import Table

    t = Table(title=f"policy {report['policy']} on {report['rows']} '{report['split']}' rows")
    sold = "sold_at_per_mtok" in report
    for col in ("setting", "quality", "USD / 1k prompts") + (("operator margin",) if sold else ()):
        t.add_column(col, justify="left" if col == "setting" else "right")

    def margin(v: float | None) -> str:
        return "-" if v is None else f"{v:.1%}"

    for s in report["settings"]:
        label = (
            ", ".join(
                f"{k}={v:g}"
                for k, v in s.items()
                if k not in ("quality", "cost", "cost_total", "by_benchmark", "revenue", "margin")
            )
            or "policy"
        )
        t.add_row(label, f"{s['quality']:.4f}", f"{s['cost'] * 1000:.4f}", *((margin(s["margin"]),) if sold else ()))
    for name, b in report["baselines"].items():
        model_margin = report["single_models"][b["model"]].get("margin") if sold and "model" in b else None
        t.add_row(
            f"[dim]{name}{' (' + b['model'] + ')' if 'model' in b else ''}[/dim]",
            f"{b['quality']:.4f}",
            f"{b['cost'] * 1000:.4f}",
            *((margin(model_margin),) if sold else ()),
        )
    return t


def _benchmark_table(report: dict[str, Any], two: bool) -> Any:
    """One row per benchmark: AIQ, cost to the strongest model's quality, and (two models) APGR, CPT."""
    from rich.table import Table

    bt = Table(title="per benchmark")
    cols = ["benchmark", "rows", "AIQ", "zero-router AIQ", "cost to 95% of strongest", "to 100%"]
    if two:
        cols += ["APGR", "CPT(50%)", "CPT(80%)", "APGR of the predictor's ranking"]
    for col in cols:
        bt.add_column(col, justify="left" if col == "benchmark" else "right")

    def num(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    for name, e in report["benchmarks"].items():
        row = [
            name,
            str(e["rows"]),
            f"{e['aiq']:.3f}",
            f"{e['zero_router_aiq']:.3f}",
            _pct(e["cost_to_95pct_of_strongest_frac"]),
            _pct(e["cost_to_100pct_of_strongest_frac"]),
        ]
        if two:
            row += [
                f"{e.get('apgr', 0):.3f}",
                num(e.get("cpt50")),
                num(e.get("cpt80")),
                f"{e.get('ranking_apgr', 0):.3f}",
            ]
        bt.add_row(*row)
    return bt


def _resplits_table(rs: dict[str, Any]) -> Any:
    from rich.table import Table

    rt = Table(title=f"over {rs['k']} re-splits (retrained on each train split, settings fixed)")
    for col in ("figure", "mean", "sd", "min", "max", "runs"):
        rt.add_column(col, justify="left" if col == "figure" else "right")
    for name, f in rs["figures"].items():
        rt.add_row(name, f"{f['mean']:.4f}", f"{f['sd']:.4f}", f"{f['min']:.4f}", f"{f['max']:.4f}", str(f["runs"]))
    return rt


def _print_report(report: dict[str, Any]) -> None:
    from rich.console import Console

    console = Console()
    console.print(_settings_table(report))
    if "sold_at_per_mtok" in report:
        inp, out = report["sold_at_per_mtok"]
        console.print(
            f"operator margin: (revenue - cost) / revenue at a fixed ${inp:g} / ${out:g} per 1M input / output tokens"
        )
    two = any("apgr" in e for e in report["benchmarks"].values())
    console.print(_benchmark_table(report, two))
    console.print(
        f"mean AIQ {report['mean_aiq']:.3f} (zero router {report['mean_zero_router_aiq']:.3f}); "
        f"pooled cost to reach 95% of {report['strongest']}: {_pct(report['cost_to_95pct_of_strongest_frac'])}"
    )
    if two:
        console.print(
            "APGR, CPT: from the policy's own decisions (one point per setting: its share of calls to the "
            "strongest model, its quality). The ranking's APGR sorts prompts by the predicted gain: an "
            "upper envelope for a threshold on it, not what the policy does."
        )
    if report.get("resplits"):
        console.print(_resplits_table(report["resplits"]))


@policies_cli.command("simulate")
def policies_simulate(
    data: Path = typer.Option(..., help="Outcome data (JSON lines)."),
    policy: Path = typer.Option(..., help="The policy file."),
    split: str = typer.Option("test", help="Stream this split's rows."),
    start: str = typer.Option(
        "uninformed",
        help="uninformed (every model at 0.5, no predictor) or trained (the policy's predictor as the prior).",
    ),
    seed: int = typer.Option(0, help="Seeds the order of the rows and the bandit's draws."),
    seeds: int = typer.Option(1, min=1, help="Repeat with this many seeds (seed, seed+1, ...) and report the spread."),
    window: int = typer.Option(250, min=1, help="Rows in the trailing window of the running utility."),
    at: int = typer.Option(
        500, min=1, help="Compare the online policy with the offline one after this many feedback events."
    ),
    lambda_: Optional[float] = typer.Option(
        None, "--lambda", help="Utility = quality - lambda x cost (default: the policy's)."
    ),
    predictor: Optional[Path] = typer.Option(None, help="Override the policy's predictor file."),
    prices: Optional[Path] = typer.Option(None, help="prices.json (default: beside the data, if present)."),
    plot: Optional[Path] = typer.Option(None, help="Write the learning curve as a PNG (needs matplotlib)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Stream rows through the live decision code, feeding each answer's recorded score back; report
    the learning curve against the offline-trained policy, the best single model and the oracle."""
    import numpy as np

    from policies.simulate import simulate, utility_gap

    pol, pred, verifiers, ds, price_map, resp = _replay_inputs(policy, data, predictor, prices, None)
    try:
        runs = [
            simulate(
                pol,
                ds,
                prices=price_map,
                predictor=pred,
                start=start,
                split=split,
                seed=s,
                lam=lambda_,
                window=window,
                responses=resp,
                verifiers=verifiers,
                checkpoints=tuple(sorted({0, 100, 250, at})),
            )
            for s in range(seed, seed + seeds)
        ]
    except ValueError as exc:
        typer.echo(f"{policy}: {exc}", err=True)
        raise typer.Exit(2)
    gaps = [utility_gap(r, at) for r in runs]

    def spread(key: str) -> dict[str, float]:
        v = [g[key] for g in gaps if g[key] is not None]
        return {"mean": float(np.mean(v)), "min": float(min(v)), "max": float(max(v))} if v else {}

    report = {
        **runs[0],
        "seeds": [r["seed"] for r in runs],
        "gap_at": gaps,
        "window_gap": spread("window_gap"),
        "learned_gap": spread("learned_gap"),
    }
    if seeds > 1:
        report["runs"] = [r["curves"] for r in runs[1:]]
    if plot:
        from router.analytics.plots import learning_png

        learning_png(runs, plot)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    r0 = runs[0]
    t = Table(
        title=f"policy {r0['policy']}: {r0['rows']} '{split}' rows streamed, start {start}, lambda {r0['lambda']:g}, "
        f"seed {seed}"
    )
    names = list(r0["curves"])
    t.add_column("rows")
    for n in names:
        t.add_column(f"{n} utility (last {window})" if n == "online" else n, justify="right")
    for i, point in enumerate(r0["curves"]["online"]):
        t.add_row(str(point["n"]), *(f"{r0['curves'][n][i]['window_utility']:.4f}" for n in names))
    Console().print(t)
    g, lg = report["window_gap"], report["learned_gap"]
    seeds_text = f"seeds {seed}..{seed + seeds - 1}"
    typer.echo(
        f"after {gaps[0]['n']} feedback events: online utility over the last {window} rows vs the offline "
        f"policy's: {g['mean']:+.1%} ({seeds_text}: {g['min']:+.1%} .. {g['max']:+.1%}); best single model: "
        f"{r0['best_single_model']}"
    )
    if lg:
        typer.echo(
            f"what it learned in {at} events, frozen and applied greedily to all {r0['rows']} rows: utility "
            f"{lg['mean']:+.1%} vs the offline policy's ({seeds_text}: {lg['min']:+.1%} .. {lg['max']:+.1%})"
        )
