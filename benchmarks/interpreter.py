"""Which CPython build a benchmark ran on, and how fast it is on this host right now.

    python benchmarks/interpreter.py [PYTHON ...]     # prints one JSON line per interpreter

The same Switchyard code costs about a fifth less CPU per small request on an optimised CPython
build (profile-guided and link-time optimised: the official `python` container images; Debian's and
Ubuntu's `python3`, which also link libpython into the binary) than on a plain source build
(pyenv's default: no `--enable-optimizations`, libpython as a shared library), and 100 KB prompts
about a tenth less (benchmarks/RESULTS.md, sizes-2026-12-02-e.json). So a figure means little without the build it ran on.
``describe`` names the build and times a fixed pure-Python loop (10 million additions, pinned to
one CPU, best of three), the calibration the notes in RESULTS.md use to compare hosts and builds.
"""

from __future__ import annotations

import json
import subprocess
import sys

_PROBE = r"""
import json, sys, sysconfig, time
cfg = sysconfig.get_config_var("CONFIG_ARGS") or ""
best = None
for _ in range(3):
    t = time.perf_counter(); s = 0
    for i in range(10_000_000):
        s += i
    dt = time.perf_counter() - t
    best = dt if best is None else min(best, dt)
print(json.dumps({
    "executable": sys.executable,
    "version": sys.version.split()[0],
    "libpython": "shared" if "libpython" in open("/proc/self/maps").read() else "linked in",
    "configure_optimizations": "--enable-optimizations" in cfg,
    "configure_lto": "--with-lto" in cfg,
    "loop_10m_additions_s": round(best, 3),
}))
"""


def describe(python: str = sys.executable, cpu: str | None = "1") -> dict[str, object]:
    """``python``'s build and its calibration loop time (pinned to ``cpu`` when given)."""
    cmd = [python, "-c", _PROBE]
    if cpu is not None:
        cmd = ["taskset", "-c", cpu, *cmd]
    out: dict[str, object] = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    return out


if __name__ == "__main__":
    if any(a.startswith("-") for a in sys.argv[1:]):
        sys.exit(__doc__)
    for py in sys.argv[1:] or [sys.executable]:
        print(json.dumps(describe(py)))
