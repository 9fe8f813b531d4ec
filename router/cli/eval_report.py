"""The tables ``switchyard policies eval`` prints: settings, benchmarks, resplits."""

from __future__ import annotations

from typing import Any


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


def print_report(report: dict[str, Any]) -> None:
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
