"""Does the gain router learn more from the prompts it routes alone? A probe for issue 22 on the
folds of train (the test split is never read).

    python benchmarks/gain_choice_cv.py --data ../shared/data/routing/routellm_gpt4_mixtral.jsonl \
        [--folds 5] [--json OUT]

The shipped predictor (settings of benchmarks/gain_cv.py: L2 1, 100 steps, topic head L2 0.03,
blend 0.5) learns from every training row but MT-Bench's: MMLU's multiple choice and GSM8K's word
problems together, so its word weights (and the TF-IDF weights under them) are shared by two kinds
of prompt, while the policy routes only multiple choice (the `choice` category, read from the
prompt) by predicted gain. Here the predictor learns from the training rows whose prompt reads as
multiple choice only: words and topic head both, or the words only (beside the shipped topic head,
which keeps GSM8K as one more topic). All are scored on the same held-out folds: the APGR of
thresholding the predicted gain on MMLU. Rule fixed before the run: a change ships only for a
held-out gain of at least 0.005.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from gain_cv import SHIPPED, STRONG, WEAK, gain_apgr, held_out_folds, probe_args, report  # noqa: E402

from policies.features import categorize  # noqa: E402
from policies.loaders import load_dataset  # noqa: E402
from policies.outcomes import score  # noqa: E402
from policies.predictor import QualityPredictor  # noqa: E402


def main() -> None:
    args = probe_args()
    ds = load_dataset(args.data)
    names = ["shipped (every row)", "choice rows only", "words on choice rows, shipped topic head"]
    results: dict[str, list[float]] = {n: [] for n in names}
    for fds, out in held_out_folds(ds, args.folds):
        rows = [r for r in fds.split("train") if r.get("benchmark") != "mt-bench"]
        choice = [r for r in rows if categorize(r["prompt"]) == "choice"]

        def fit(sel: list[dict]) -> QualityPredictor:
            y = np.array([[score(r, m) for m in fds.models] for r in sel], dtype=float)
            topics = [str(r.get("category") or "") for r in sel]
            return QualityPredictor.train([r["prompt"] for r in sel], y, fds.models, topics=topics, **SHIPPED)

        shipped, only = fit(rows), fit(choice)
        s, w = shipped.models.index(STRONG), shipped.models.index(WEAK)
        qs, qw = [score(r, STRONG) for r in out], [score(r, WEAK) for r in out]
        gains: dict[str, list[float]] = {n: [] for n in names}
        for r in out:
            words, topic = shipped.parts(r["prompt"])
            words_c, topic_c = only.parts(r["prompt"])
            assert topic is not None and topic_c is not None
            for name, q in zip(names, (words + topic, words_c + topic_c, words_c + topic)):
                gains[name].append(float(q[s] - q[w]))  # half and half: the blend's 0.5, doubled
        for name in names:
            results[name].append(gain_apgr(gains[name], qs, qw))
        print(
            f"{len(choice)} of {len(rows)} rows are choice;",
            {k: round(v[-1], 4) for k, v in results.items()},
            flush=True,
        )
    report(results, args.json)


if __name__ == "__main__":
    main()
