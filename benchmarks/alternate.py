"""Two checkouts measured in alternating child processes, and the comparison printed (in-process A/Bs:
asgi_ab.py, plan.py)."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def alternate(script: str, before: str, rounds: int, child_args: list[str]) -> dict[str, list[float]]:
    """``rounds`` times, ``script --child *child_args`` under each checkout (PYTHONPATH), pinned to CPU 1
    when ``taskset`` exists; each child's last line of output is its figure."""
    pin = ["taskset", "-c", "1"] if shutil.which("taskset") else []
    runs: dict[str, list[float]] = {"before": [], "after": []}
    for _ in range(rounds):
        for name, path in (("before", before), ("after", str(HERE.parent))):
            out = subprocess.run(
                [*pin, sys.executable, script, "--child", *child_args],
                env={**os.environ, "PYTHONPATH": str(Path(path).resolve())},
                capture_output=True,
                text=True,
                check=True,
            )
            runs[name].append(float(out.stdout.strip().splitlines()[-1]))
    return runs


def report(runs: dict[str, list[float]], digits: int, unit: str, what: str = "") -> None:
    for name, vals in runs.items():
        print(
            f"{name:6} {' '.join(f'{v:.{digits}f}' for v in sorted(vals))}  "
            f"min {min(vals):.{digits}f}  median {statistics.median(vals):.{digits}f} {unit}"
        )
    b, f = runs["before"], runs["after"]
    ratio = f"after / before: min {min(f) / min(b):.3f}, median {statistics.median(f) / statistics.median(b):.3f}"
    print(ratio + (f" ({what})" if what else ""))
