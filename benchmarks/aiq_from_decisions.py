"""Recompute a many-model policy's RouterBench figures from its decisions file alone.

    switchyard policies eval --data D.jsonl --policy P.yaml --sweep lambda=... --decisions dec.jsonl
    python benchmarks/aiq_from_decisions.py --data D.jsonl --decisions dec.jsonl [--sell-at 5,15]

Independent of the evaluator (nothing imported from ``policies``): each decision line names the
answering model and, when a cascade ran, every model it called. A setting (the swept values on
its lines) scores the answering model's recorded score and pays the recorded cost (``|cost_usd``)
of every model called. Per setting that gives one (mean cost, mean quality) point, pooled and per
benchmark. The non-decreasing upper convex hull of a benchmark's points, extended flat to the
dearest single model's cost, gives its AIQ (area / that cost); the single models' own hull gives
the zero router's. The pooled cost to reach 95% of the strongest model's quality (the model with
the highest mean score on the train split) is read off the pooled hull by linear interpolation,
as a share of that model's cost. ``--sell-at IN,OUT`` (USD per 1M tokens): each setting's
operator margin, revenue being the answering model's recorded tokens at that price.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from statistics import mean


def hull(points: list[tuple[float, float]], c_max: float | None = None) -> list[tuple[float, float]]:
    """Upper convex hull of (cost, quality), non-decreasing, extended flat to ``c_max``."""
    out: list[tuple[float, float]] = []
    for c, q in sorted(set(points)):
        if out and q <= out[-1][1]:
            continue
        while len(out) >= 2 and (out[-1][1] - out[-2][1]) * (c - out[-2][0]) <= (q - out[-2][1]) * (
            out[-1][0] - out[-2][0]
        ):
            out.pop()
        out.append((c, q))
    if c_max is not None and c_max > out[-1][0]:
        out.append((c_max, out[-1][1]))
    return out


def area_share(points: list[tuple[float, float]], c_max: float) -> float:
    """Area under the hull up to c_max only (a dearer point counts through the chord that crosses c_max)."""
    h = hull(points)
    xs = [c for c, _ in h if c < c_max] + [c_max]
    return sum((b - a) * (at(h, a) + at(h, b)) / 2 for a, b in zip(xs, xs[1:])) / c_max


def at(h: list[tuple[float, float]], c: float) -> float:
    """The hull's value at cost c: flat past its last point, on the chord between two points, 0 before the first."""
    if c < h[0][0]:
        return 0.0
    for (c1, q1), (c2, q2) in zip(h, h[1:]):
        if c1 <= c <= c2:
            return q2 if c2 == c1 else q1 + (q2 - q1) * (c - c1) / (c2 - c1)
    return h[-1][1]


def cost_to(points: list[tuple[float, float]], target: float) -> float | None:
    h = hull(points)
    if h[0][1] >= target:
        return h[0][0]
    for (c1, q1), (c2, q2) in zip(h, h[1:]):
        if q2 >= target > q1:
            return c1 + (target - q1) * (c2 - c1) / (q2 - q1)
    return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--decisions", required=True, type=Path)
    ap.add_argument("--sell-at", default=None, help="IN,OUT: USD per 1M input and output tokens")
    args = ap.parse_args()
    rows = {}
    train = []
    for line in args.data.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            rows[r["id"]] = r
            if r.get("routerdc_split") == "train":
                train.append(r)
    models = [k.split("|")[0] for k in next(iter(rows.values())) if k.endswith("|score")]
    strongest = max(models, key=lambda m: mean(r[f"{m}|score"] for r in train))
    sell = [float(x) / 1e6 for x in args.sell_at.split(",")] if args.sell_at else None

    by_setting: dict[str, list[dict]] = defaultdict(list)
    for line in args.decisions.read_text().splitlines():
        if line.strip():
            d = json.loads(line)
            key = json.dumps({k: v for k, v in d.items() if k not in ("id", "model", "called")}, sort_keys=True)
            by_setting[key].append(d)
    ids = {d["id"] for d in next(iter(by_setting.values()))}
    test = [rows[i] for i in ids]
    benches = sorted({r["benchmark"] for r in test})
    pooled: list[tuple[float, float]] = []
    per_bench: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for key, lines in by_setting.items():
        pts: dict[str, list[tuple[float, float]]] = defaultdict(list)
        revenue = paid = 0.0
        for d in lines:
            r = rows[d["id"]]
            c = sum(r[f"{m}|cost_usd"] for m in d.get("called") or [d["model"]])
            q = r[f"{d['model']}|score"]
            pts[r["benchmark"]].append((c, q))
            paid += c
            if sell:
                revenue += r[f"{d['model']}|input_tokens"] * sell[0] + r[f"{d['model']}|output_tokens"] * sell[1]
        every = [p for b in pts for p in pts[b]]
        pooled.append((mean(c for c, _ in every), mean(q for _, q in every)))
        for b, p in pts.items():
            per_bench[b].append((mean(c for c, _ in p), mean(q for _, q in p)))
        if sell:
            print(f"{key}: quality {pooled[-1][1]:.4f}, USD/1k {pooled[-1][0] * 1000:.4f}, "
                  f"margin {(revenue - paid) / revenue:+.4f}")  # fmt: skip
    best_c = mean(r[f"{strongest}|cost_usd"] for r in test)
    best_q = mean(r[f"{strongest}|score"] for r in test)
    aiqs, zeros = [], []
    for b in benches:
        brows = [r for r in test if r["benchmark"] == b]
        singles = [(mean(r[f"{m}|cost_usd"] for r in brows), mean(r[f"{m}|score"] for r in brows)) for m in models]
        c_max = max(c for c, _ in singles)
        aiqs.append(area_share(per_bench[b], c_max))
        zeros.append(area_share(singles, c_max))
        print(f"{b}: AIQ {aiqs[-1]:.4f}, zero router {zeros[-1]:.4f}")
    need = cost_to(pooled, 0.95 * best_q)
    print(f"mean AIQ {mean(aiqs):.4f}, zero router {mean(zeros):.4f}, gain {mean(aiqs) - mean(zeros):+.4f}")
    print(f"pooled cost to reach 95% of {strongest}: " + ("never" if need is None else f"{need / best_c:.4f}"))


if __name__ == "__main__":
    main()
