"""The cost-quality frontier of an evaluation report, as a PNG (matplotlib, an optional extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the extra being installed
        raise SystemExit("--plot needs matplotlib: pip install 'switchyard[plot]'") from exc
    return plt


def _finish(plt: Any, fig: Any, ax: Any, out: Path) -> None:
    """Grid, legend, layout; written to ``out`` and closed."""
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def frontier_png(report: dict[str, Any], out: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    pts = sorted((s["cost"] * 1000, s["quality"]) for s in report["settings"])
    ax.plot([c for c, _ in pts], [q for _, q in pts], "o-", label=f"policy {report['policy']}", zorder=3)
    singles = report.get("single_models") or {}
    ax.scatter(
        [s["cost"] * 1000 for s in singles.values()],
        [s["quality"] for s in singles.values()],
        marker="x",
        color="gray",
        label="single models",
        zorder=2,
    )
    for name, s in singles.items():
        ax.annotate(
            name.split("/")[-1],
            (s["cost"] * 1000, s["quality"]),
            fontsize=6,
            color="gray",
            xytext=(3, -8),
            textcoords="offset points",
        )
    for name, color in (("random", "tab:green"), ("oracle", "tab:red")):
        b = report["baselines"][name]
        ax.scatter([b["cost"] * 1000], [b["quality"]], marker="s", color=color, label=name, zorder=2)
    ax.set_xlabel("USD per 1,000 prompts")
    ax.set_ylabel("mean quality")
    ax.set_title(f"{report['policy']}: cost-quality frontier ({report['split']} split)")
    _finish(plt, fig, ax, out)


def learning_png(runs: list[dict[str, Any]], out: Path) -> None:
    """Running utility (trailing window) of the online policy, per seed, beside the offline policy,
    the best single model and the oracle (the first seed's order)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    first = runs[0]
    for i, r in enumerate(runs):
        pts = r["curves"]["online"]
        ax.plot(
            [p["n"] for p in pts],
            [p["window_utility"] for p in pts],
            color="tab:blue",
            alpha=0.4 if i else 1.0,
            label=f"online, from {first['start']} priors" if i == 0 else None,
        )
    for name, color in (("offline", "tab:orange"), ("best single model", "gray"), ("oracle", "tab:red")):
        pts = first["curves"][name]
        ax.plot(
            [p["n"] for p in pts],
            [p["window_utility"] for p in pts],
            color=color,
            linestyle="--",
            label=f"{name} ({first['best_single_model'].split('/')[-1]})" if name == "best single model" else name,
        )
    ax.set_xlabel("feedback events (rows streamed)")
    ax.set_ylabel(f"utility, last {first['window']} rows (quality - {first['lambda']:g} x USD)")
    ax.set_title(f"{first['policy']}: learning online ({first['split']} split, {len(runs)} seed(s))")
    _finish(plt, fig, ax, out)
