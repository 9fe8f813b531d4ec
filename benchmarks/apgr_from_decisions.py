"""Recompute a two-model policy's APGR per benchmark from its decisions file alone.

    switchyard policies eval --data D.jsonl --policy P.yaml --sweep ... --decisions dec.jsonl
    python benchmarks/apgr_from_decisions.py --data D.jsonl --decisions dec.jsonl

Independent of the evaluator: for each setting (the swept values on each decision line), the share
of the benchmark's rows whose calls include the strong model and their mean recorded score; the
curve is those points sorted by share, anchored at (0, always weak) and (1, always strong); APGR is
its area in PGR units (trapezoids). The strong model is the one with the higher mean score on the
train split.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--decisions", required=True, type=Path)
    args = ap.parse_args()
    rows = {}
    for line in args.data.read_text().split("\n"):
        if not line.strip():
            continue
        r = json.loads(line)
        if not r.get("excluded_by_routellm_decontamination"):
            rows[r["id"]] = r
    models = sorted({k.split("|")[0] for k in next(iter(rows.values())) if k.endswith("|score")})
    train = [r for r in rows.values() if r.get("split") == "train"]
    strong = max(models, key=lambda m: sum(float(r[f"{m}|score"]) for r in train))
    weak = next(m for m in models if m != strong)

    def score(r: dict, m: str) -> float:
        v = float(r[f"{m}|score"])
        return v / 10 if v > 1 else v

    points: dict[str, dict[tuple, list[tuple[bool, float]]]] = defaultdict(lambda: defaultdict(list))
    for line in args.decisions.read_text().split("\n"):
        if not line.strip():
            continue
        d = json.loads(line)
        r = rows[d["id"]]
        setting = tuple(sorted((k, v) for k, v in d.items() if k not in ("id", "model", "called")))
        points[r["benchmark"]][setting].append((strong in d.get("called", [d["model"]]), score(r, d["model"])))
    for bench, settings in sorted(points.items()):
        ids = {d for d in rows if rows[d]["benchmark"] == bench and rows[d]["split"] == "test"}
        qs = sum(score(rows[i], strong) for i in ids) / len(ids)
        qw = sum(score(rows[i], weak) for i in ids) / len(ids)
        curve = sorted({(sum(s for s, _ in v) / len(v), sum(q for _, q in v) / len(v)) for v in settings.values()})
        if curve[0][0] > 0:
            curve.insert(0, (0.0, qw))
        if curve[-1][0] < 1:
            curve.append((1.0, qs))
        pgr = [(x, (y - qw) / (qs - qw)) for x, y in curve]
        area = sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in zip(pgr, pgr[1:]))
        print(f"{bench}: {len(ids)} rows, {len(settings)} settings, APGR {area:.4f}")


if __name__ == "__main__":
    main()
