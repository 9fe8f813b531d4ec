"""Do the two probes that each gained a little gain more together? A probe for issue 22 on the folds of
train (the test split is never read).

    python benchmarks/gain_combo_cv.py --data ../shared/data/routing/routellm_gpt4_mixtral.jsonl \
        [--folds 5] [--fold-salt S] [--json OUT]

Two earlier probes each raised the held-out MMLU APGR of the gain router without clearing the rule
they were held to: the question's stem and options read apart (``--features options-apart``: +0.0086
on the usual folds, +0.0073 on another partition, better on three folds of five each) and learning
from the multiple-choice rows only, the kind the policy routes by gain (+0.0027, three of five).
They change different things (what a prompt's features are; which rows the predictor learns from),
so here both at once: the predictor (the shipped settings, words and topic head) trained with the
options-apart features on the training rows whose prompt reads as multiple choice, against the
shipped predictor on the same folds.

Rule fixed before the run (this file is committed before it runs): the combination ships only if, on
the usual folds, its held-out MMLU APGR gain is at least 0.005 and it is better on at least four folds
of five, and on the second partition (``--fold-salt resplit-b:``) its gain is again at least 0.005.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from gain_cv import SHIPPED, STRONG, WEAK, gain_apgr, held_out_folds  # noqa: E402

from policies.features import categorize  # noqa: E402
from policies.loaders import load_dataset  # noqa: E402
from policies.outcomes import score  # noqa: E402
from policies.predictor import QualityPredictor  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--fold-salt", default="")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    ds = load_dataset(args.data)
    names = ["shipped (words, every row)", "options apart, choice rows only"]
    results: dict[str, list[float]] = {n: [] for n in names}
    for fds, out in held_out_folds(ds, args.folds, salt=args.fold_salt):
        rows = [r for r in fds.split("train") if r.get("benchmark") != "mt-bench"]
        choice = [r for r in rows if categorize(r["prompt"]) == "choice"]

        def fit(sel: list[dict], features: str) -> QualityPredictor:
            y = np.array([[score(r, m) for m in fds.models] for r in sel], dtype=float)
            topics = [str(r.get("category") or "") for r in sel]
            return QualityPredictor.train(
                [r["prompt"] for r in sel], y, fds.models, topics=topics, features=features, **SHIPPED
            )

        predictors = (fit(rows, "words"), fit(choice, "options-apart"))
        qs, qw = [score(r, STRONG) for r in out], [score(r, WEAK) for r in out]
        for name, pred in zip(names, predictors):
            gain = [q[STRONG] - q[WEAK] for q in (pred.predict(r["prompt"]) for r in out)]
            results[name].append(gain_apgr(gain, qs, qw))
        print({k: round(v[-1], 4) for k, v in results.items()}, flush=True)
    base, combo = (np.array(results[n]) for n in names)
    summary = {n: {"mean": float(np.mean(f)), "sd": float(np.std(f, ddof=1)), "folds": f} for n, f in results.items()}
    summary["gain"] = {"mean": float(np.mean(combo - base)), "folds_better": int((combo > base).sum())}
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
