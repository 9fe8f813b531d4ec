"""``switchyard policies simulate``: a policy learning online from feedback, replayed over a stream
of recorded outcomes, against the same policy offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from router.cli.common import refuse, written


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

    from router.cli.policies import replay_inputs

    pol, pred, verifiers, ds, price_map, resp = replay_inputs(policy, data, predictor, prices, None)
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
        refuse(f"{policy}: {exc}")
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

        written(plot, lambda p: learning_png(runs, p))
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
