"""The cost-quality frontier of an evaluation report, as a PNG (matplotlib, an optional extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def frontier_png(report: dict[str, Any], out: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the extra being installed
        raise SystemExit("--plot needs matplotlib: pip install 'switchyard[plot]'") from exc
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    pts = sorted((s["cost"] * 1000, s["quality"]) for s in report["settings"])
    ax.plot([c for c, _ in pts], [q for _, q in pts], "o-", label=f"policy {report['policy']}", zorder=3)
    singles = report.get("single_models") or {}
    ax.scatter([s["cost"] * 1000 for s in singles.values()], [s["quality"] for s in singles.values()],
               marker="x", color="gray", label="single models", zorder=2)
    for name, s in singles.items():
        ax.annotate(name.split("/")[-1], (s["cost"] * 1000, s["quality"]), fontsize=6, color="gray",
                    xytext=(3, -8), textcoords="offset points")
    for name, color in (("random", "tab:green"), ("oracle", "tab:red")):
        b = report["baselines"][name]
        ax.scatter([b["cost"] * 1000], [b["quality"]], marker="s", color=color, label=name, zorder=2)
    ax.set_xlabel("USD per 1,000 prompts")
    ax.set_ylabel("mean quality")
    ax.set_title(f"{report['policy']}: cost-quality frontier ({report['split']} split)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
