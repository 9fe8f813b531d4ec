"""Choose the two-model gain router's settings by cross-validation on the train split only.

    python benchmarks/gain_cv.py --data ../shared/data/routing/routellm_gpt4_mixtral.jsonl \
        [--folds 5] [--benchmark mmlu] [--json OUT]

The train split is cut into folds (a stable hash of each row's id). For each setting of the
batch-trained predictor (L2 strength, Adam steps), the predictor is trained on all folds but one
(MT-Bench left out, as for the shipped file) and scored on the one left out: the APGR of
thresholding its predicted gain (GPT-4's predicted quality minus Mixtral's), on the benchmark's
rows. Then, for the best setting, the share of GPT-4 calls and the quality at each candidate
``min_gain`` on the held-out folds, pooled: the shipped threshold is the highest gain bar (the fewest
GPT-4 calls) that
keeps 95% of GPT-4's quality there. The test split is never read.
"""

from __future__ import annotations

import argparse
import json
import sys
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from policies import metrics  # noqa: E402
from policies.evaluate import train_predictor  # noqa: E402
from policies.outcomes import Dataset, score  # noqa: E402
from policies.loaders import load_dataset  # noqa: E402

STRONG, WEAK = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"
GRID = [(l2, steps) for l2 in (1.0, 3.0, 10.0) for steps in (50, 100, 200)]
GAINS = [-0.05, 0.0, 0.02, 0.04, 0.06, 0.08, 0.1, 0.12, 0.15, 0.2, 0.25, 0.3]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--benchmark", default="mmlu")
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    ds = load_dataset(args.data)
    train = ds.split("train")
    fold = {r["id"]: zlib.crc32(str(r["id"]).encode()) % args.folds for r in train}
    results = {}
    gains_by_setting = {}
    for l2, steps in GRID:
        apgrs, held = [], []
        for k in range(args.folds):
            rows = [{**r, ds.split_field: "train" if fold[r["id"]] != k else "held"} for r in train]
            fds = Dataset(rows, ds.models, ds.split_field)
            pred = train_predictor(fds, "train", exclude=["mt-bench"], epochs=steps, lr=args.lr, solver="batch", l2=l2)
            out = [r for r in fds.split("held") if r.get("benchmark") == args.benchmark]
            gain = [(lambda q: q[STRONG] - q[WEAK])(pred.predict(r["prompt"])) for r in out]
            qs, qw = [score(r, STRONG) for r in out], [score(r, WEAK) for r in out]
            curve = metrics.routellm_curve(gain, qs, qw)
            apgrs.append(metrics.apgr(curve, float(np.mean(qs)), float(np.mean(qw))))
            held += list(zip(gain, qs, qw))
        results[f"l2={l2:g} steps={steps}"] = {
            "l2": l2,
            "steps": steps,
            "apgr_mean": float(np.mean(apgrs)),
            "apgr_sd": float(np.std(apgrs, ddof=1)),
            "folds": apgrs,
        }
        gains_by_setting[(l2, steps)] = held
        print(
            f"l2={l2:g} steps={steps}: held-out APGR {np.mean(apgrs):.3f} +/- {np.std(apgrs, ddof=1):.3f}", flush=True
        )
    best = max(results.values(), key=lambda e: e["apgr_mean"])
    held = np.array(gains_by_setting[(best["l2"], best["steps"])])
    target = 0.95 * held[:, 1].mean()
    bars = []
    for g in GAINS:
        strong = held[:, 0] >= g
        q = float(np.where(strong, held[:, 1], held[:, 2]).mean())
        bars.append({"min_gain": g, "strong_share": float(strong.mean()), "quality": q})
        print(f"  min_gain {g:+.2f}: {strong.mean():.1%} GPT-4 calls, quality {q:.4f} (95% of GPT-4: {target:.4f})")
    chosen = max((b for b in bars if b["quality"] >= target), key=lambda b: b["min_gain"], default=bars[0])
    print(f"best: l2={best['l2']:g} steps={best['steps']}; min_gain {chosen['min_gain']:g}")
    if args.json:
        args.json.write_text(json.dumps({"settings": results, "best": best, "bars": bars, "chosen": chosen}, indent=2))


if __name__ == "__main__":
    main()
