"""Markdown tables from benchmarks/results.json (written by benchmarks/run.py).

python benchmarks/report.py [benchmarks/results.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def fmt(v: float | None, nd: int = 2) -> str:
    return "-" if v is None or v != v else f"{v:.{nd}f}"


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("results.json"))
    r = json.loads(path.read_text())
    gws = [g for g in ("switchyard", "switchyard_redis_pg", "litellm") if g in r]
    print(
        f"Run {r['date']}, {r['machine']['cpus']} CPUs, Python {r['machine']['python']}, {r['machine']['platform']}; "
        f"{r['args']['duration']:g} s per scenario.\n"
    )
    print("| | " + " | ".join(gws) + " |")
    print("|---|" + "---:|" * len(gws))
    rows = [
        ("start to first answer (s)", lambda g: fmt(r[g]["startup_s"])),
        ("peak RSS (MB)", lambda g: fmt(r[g]["peak_rss_mb"], 0)),
    ]
    for mode in ("nonstream", "stream"):
        rows.append((f"{mode}: max throughput (req/s)", lambda g, m=mode: fmt(r[g][f"{m}@max"]["rps"], 0)))
        rows.append((f"{mode}: CPU ms/request at max", lambda g, m=mode: fmt(r[g][f"{m}@max"].get("cpu_ms_per_req"))))
        rows.append(
            (
                f"{mode}: ledger queue right after the max window",
                lambda g, m=mode: fmt(r[g][f"{m}@max"].get("ledger_queue_after"), 0),
            )
        )
        rates = sorted(
            {k.split("@")[1] for g in gws for k in r[g] if k.startswith(mode + "@") and k != f"{mode}@max"}, key=float
        )
        for rate in rates:
            key = f"{mode}@{rate}"

            def cell(g: str, key: str = key) -> str:
                add = r.get(f"{g}_added_ms", {}).get(key)
                if key not in r[g] or add is None:
                    return "-"
                return (
                    f"+{fmt(add['p50'])} / +{fmt(add['p90'])} / +{fmt(add['p99'])} ms; ttfb +{fmt(add['ttfb50'])}; "
                    f"cpu {fmt(r[g][key].get('cpu_ms_per_req'))}"
                )

            rows.append((f"{mode} @ {float(rate):g} rps: added p50/p90/p99, CPU ms/req", cell))
    for name, fn in rows:
        print(f"| {name} | " + " | ".join(fn(g) for g in gws) + " |")
    if "paired_max" in r:
        print(
            "\nMax throughput in alternating windows (Switchyard, LiteLLM, LiteLLM, Switchyard, ...; "
            f"{r['args'].get('pair_seconds', 5):g} s each):\n"
        )
        print("| | Switchyard req/s (median) | LiteLLM req/s (median) | per-round ratios | ratio (median) |")
        print("|---|---:|---:|---|---:|")
        for mode in ("nonstream", "stream"):
            p = r["paired_max"][mode]
            print(
                f"| {mode} | {fmt(p['median_rps_switchyard'], 0)} | {fmt(p['median_rps_litellm'], 1)} | "
                + " ".join(f"{x:.1f}" for x in p["ratios"])
                + f" | **{p['median_ratio']:.1f}x** |"
            )
    if "ratio_max_rps_blocks" in r:
        b = r["ratio_max_rps_blocks"]
        print(
            f"\nThe same ratio from the scenario blocks above (minutes apart): non-streaming {b['nonstream']:.1f}x, "
            f"streaming {b['stream']:.1f}x."
        )
    elif "ratio_max_rps" in r:
        print(
            f"\nMax throughput, Switchyard / LiteLLM in the same run: non-streaming "
            f"{r['ratio_max_rps']['nonstream']:.1f}x, streaming {r['ratio_max_rps']['stream']:.1f}x."
        )


if __name__ == "__main__":
    main()
