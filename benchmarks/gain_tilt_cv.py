"""Does another function of the two predicted qualities rank MMLU prompts better than their
difference? A probe for issue 22 on the folds of train (the test split is never read).

    python benchmarks/gain_tilt_cv.py --data ../shared/data/routing/routellm_gpt4_mixtral.jsonl \
        [--folds 5] [--json OUT]

The shipped policy sends a multiple-choice prompt to GPT-4 when its predicted quality exceeds
Mixtral's by at least ``min_gain``: it ranks prompts by q_s - q_w. A gradient-boosted stacker on the
two qualities ranked them a little better on these folds (+0.0045, benchmarks/gain_probe_cv.py),
so the ranking is not the best function of the two. Here, with the shipped predictor trained on
each fold's other rows, one-parameter alternatives a policy could act on with the same threshold:
q_s - a q_w (a < 1 leans to prompts GPT-4 is likely to get right, a > 1 to those Mixtral is likely
to miss), the difference of their logits, and q_s (1 - q_w), the chance GPT-4 is right where
Mixtral is wrong if the two were independent. Rule fixed before the run: a variant ships only for
a held-out gain of at least 0.005 on the mean and better on four folds of five.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from gain_cv import SHIPPED, STRONG, WEAK, gain_apgr, held_out_folds, probe_args, report  # noqa: E402

from policies.loaders import load_dataset  # noqa: E402
from policies.outcomes import score  # noqa: E402
from policies.predictor import QualityPredictor  # noqa: E402


def _logit(q: np.ndarray) -> np.ndarray:
    q = np.clip(q, 1e-4, 1 - 1e-4)
    return np.log(q / (1 - q))


VARIANTS = {
    "shipped: q_s - q_w": lambda s, w: s - w,
    **{f"q_s - {a} q_w": (lambda a: lambda s, w: s - a * w)(a) for a in (0.5, 0.75, 0.9, 1.1, 1.25, 1.5)},
    "logit(q_s) - logit(q_w)": lambda s, w: _logit(s) - _logit(w),
    "q_s (1 - q_w)": lambda s, w: s * (1 - w),
}


def main() -> None:
    args = probe_args()
    ds = load_dataset(args.data)
    results: dict[str, list[float]] = {n: [] for n in VARIANTS}
    for fds, out in held_out_folds(ds, args.folds):
        rows = [r for r in fds.split("train") if r.get("benchmark") != "mt-bench"]
        y = np.array([[score(r, m) for m in fds.models] for r in rows], dtype=float)
        topics = [str(r.get("category") or "") for r in rows]
        pred = QualityPredictor.train([r["prompt"] for r in rows], y, fds.models, topics=topics, **SHIPPED)
        s, w = pred.models.index(STRONG), pred.models.index(WEAK)
        q = pred.predict_many(r["prompt"] for r in out)
        qs, qw = [score(r, STRONG) for r in out], [score(r, WEAK) for r in out]
        for name, f in VARIANTS.items():
            results[name].append(gain_apgr(list(f(q[:, s], q[:, w])), qs, qw))
        print({k: round(v[-1], 4) for k, v in results.items()}, flush=True)
    report(results, args.json)


if __name__ == "__main__":
    main()
