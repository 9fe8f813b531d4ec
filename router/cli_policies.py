"""``switchyard policies ...``: check, train and evaluate routing policies offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

policies_cli = typer.Typer(no_args_is_help=True, help="Routing policies: check, train, evaluate.")


@policies_cli.command("schema")
def policies_schema() -> None:
    """Print the policy files' JSON Schema (for editor completion)."""
    from policies.schema import json_schema

    typer.echo(json.dumps(json_schema(), indent=2))


@policies_cli.command("check")
def policies_check(files: list[Path] = typer.Argument(..., help="Policy YAML files.")) -> None:
    """Validate policy files without serving."""
    from policies.schema import PolicyError, load_policy

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
    epochs: int = typer.Option(5, min=1),
    lr: float = typer.Option(0.5, min=0.0, help="AdaGrad step size (smaller: smoother predictions)."),
    policy: Optional[Path] = typer.Option(None, help="Also predict the outcome of this policy's named cascades."),
    responses: Optional[Path] = typer.Option(None, help="Answer texts for the cascades' checks (default: <data>_responses.jsonl)."),
) -> None:
    """Train the quality predictor on outcome data."""
    import time as _time

    from policies.assets import load_assets
    from policies.evaluate import load_dataset, load_responses, train_predictor
    from policies.schema import PolicyError, load_policy

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
    pred = train_predictor(ds, split, exclude=exclude_benchmark, epochs=epochs, lr=lr, policy=pol, verifiers=verifiers,
                           responses=load_responses(responses or data.with_name(data.stem + "_responses.jsonl")))
    pred.meta.update(data=data.name)
    pred.save(out)
    typer.echo(f"trained on {pred.meta['rows']} rows x {len(pred.models)} columns in {_time.perf_counter() - t0:.1f}s -> {out}")


@policies_cli.command("train-verifier")
def policies_train_verifier(
    data: Path = typer.Option(..., help="Outcome data with answer texts (JSON lines)."),
    model: str = typer.Option(..., help="The model whose answers the verifier judges (a cascade's cheap step)."),
    out: Path = typer.Option(..., help="Where to write the verifier (.json)."),
    with_: list[str] = typer.Option([], "--with", help="Models whose answers it compares (the check's with:)."),
    split: str = typer.Option("train", help="Train on this split only."),
    exclude_benchmark: list[str] = typer.Option([], help="Leave these benchmarks out of training."),
    responses: Optional[Path] = typer.Option(None, help="Answer texts by id (default: <data>_responses.jsonl, or the data's own '|response' fields)."),
) -> None:
    """Train a cascade's answer verifier on outcome data."""
    from policies.evaluate import load_dataset, load_responses, train_verifier

    ds = load_dataset(data)
    unknown = [m for m in [model, *with_] if m not in ds.models]
    if unknown:
        typer.echo(f"not in the data: {', '.join(unknown)}", err=True)
        raise typer.Exit(2)
    try:
        ver = train_verifier(ds, split, model, list(with_), exclude=exclude_benchmark,
                             responses=load_responses(responses or data.with_name(data.stem + "_responses.jsonl")))
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2)
    ver.meta.update(data=data.name)
    ver.save(out)
    weights = ", ".join(f"{k} {v:+.2f}" for k, v in ver.weights.items() if v)
    typer.echo(f"trained on {ver.meta['rows']} answers of {model} -> {out}\n  {weights}")


@policies_cli.command("eval")
def policies_eval(
    data: Path = typer.Option(..., help="Outcome data (JSON lines)."),
    policy: Path = typer.Option(..., help="The policy file."),
    split: str = typer.Option("test", help="Evaluate on this split."),
    sweep: Optional[str] = typer.Option(None, help="NAME=v1,v2,... : one objective parameter to sweep."),
    predictor: Optional[Path] = typer.Option(None, help="Override the policy's predictor file."),
    prices: Optional[Path] = typer.Option(None, help="prices.json (default: beside the data, if present)."),
    responses: Optional[Path] = typer.Option(None, help="Recorded responses for cascade checks (default: <data>_responses.jsonl)."),
    decisions: Optional[Path] = typer.Option(None, help="Write one line per prompt: id, model (and the swept value)."),
    plot: Optional[Path] = typer.Option(None, help="Write the cost-quality frontier as a PNG (needs matplotlib)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Replay a dataset through a policy; report cost and quality beside the baselines."""
    from policies.assets import load_assets
    from policies.evaluate import evaluate, load_dataset, load_prices, load_responses
    from policies.schema import PolicyError, load_policy

    try:
        pol = load_policy(policy)
        pred, verifiers = load_assets(pol, policy.parent, predictor)
    except PolicyError as exc:
        typer.echo("\n".join(f"{policy}: {p}" for p in exc.problems), err=True)
        raise typer.Exit(2)
    ds = load_dataset(data)
    prices_path = prices or (data.parent / "prices.json" if (data.parent / "prices.json").exists() else None)
    resp_path = responses or data.with_name(data.stem + "_responses.jsonl")
    sweep_spec = None
    if sweep:
        name, _, values = sweep.partition("=")
        sweep_spec = (name.strip(), [float(v) for v in values.split(",") if v.strip()])
    try:
        report = evaluate(pol, ds, split=split, prices=load_prices(prices_path, ds.models), predictor=pred,
                          sweep=sweep_spec, responses=load_responses(resp_path), verifiers=verifiers)
    except ValueError as exc:
        typer.echo(f"{policy}: {exc}", err=True)
        raise typer.Exit(2)
    lines = report.pop("decisions")
    if decisions:
        decisions.write_text("".join(json.dumps(x) + "\n" for x in lines))
    if plot:
        from policies.plot import frontier_png

        frontier_png(report, plot)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    _print_report(report)


def _print_report(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    t = Table(title=f"policy {report['policy']} on {report['rows']} '{report['split']}' rows")
    for col in ("setting", "quality", "USD / 1k prompts"):
        t.add_column(col, justify="left" if col == "setting" else "right")
    for s in report["settings"]:
        label = ", ".join(f"{k}={v:g}" for k, v in s.items() if k not in ("quality", "cost", "cost_total", "by_benchmark")) or "policy"
        t.add_row(label, f"{s['quality']:.4f}", f"{s['cost'] * 1000:.4f}")
    for name, b in report["baselines"].items():
        t.add_row(f"[dim]{name}{' (' + b['model'] + ')' if 'model' in b else ''}[/dim]", f"{b['quality']:.4f}",
                  f"{b['cost'] * 1000:.4f}")
    console.print(t)
    bt = Table(title="per benchmark")
    cols = ["benchmark", "rows", "AIQ", "zero-router AIQ", "cost to 95% of strongest", "to 100%"]
    two = any("apgr" in e for e in report["benchmarks"].values())
    if two:
        cols += ["APGR", "CPT(50%)", "CPT(80%)"]
    for col in cols:
        bt.add_column(col, justify="left" if col == "benchmark" else "right")

    def pct(v: float | None) -> str:
        return "never" if v is None else f"{v:.1%}"

    def num(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    for name, e in report["benchmarks"].items():
        row = [name, str(e["rows"]), f"{e['aiq']:.3f}", f"{e['zero_router_aiq']:.3f}",
               pct(e["cost_to_95pct_of_strongest_frac"]), pct(e["cost_to_100pct_of_strongest_frac"])]
        if two:
            row += [f"{e.get('apgr', 0):.3f}", num(e.get("cpt50")), num(e.get("cpt80"))]
        bt.add_row(*row)
    console.print(bt)
    console.print(f"mean AIQ {report['mean_aiq']:.3f} (zero router {report['mean_zero_router_aiq']:.3f}); "
                  f"pooled cost to reach 95% of {report['strongest']}: {pct(report['cost_to_95pct_of_strongest_frac'])}")
