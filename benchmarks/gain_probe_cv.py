"""Two probes beside the shipped MMLU gain predictor, cross-validated on train only (scikit-learn).

    pip install scikit-learn   # not a project dependency: this probe alone needs it
    python benchmarks/gain_probe_cv.py --data ../shared/data/routing/routellm_gpt4_mixtral.jsonl \
        [--json OUT]     # about 6 minutes here

The train split is cut into folds as benchmarks/gain_cv.py cuts it; on each fold the shipped
settings train a predictor on the others (as benchmarks/gain_ensemble_cv.py does) and score the
held-out MMLU rows by predicted gain. Then:
- ``knn``: a prompt's gain is the similarity-weighted mean gain (GPT-4's score minus Mixtral's) of
  its k nearest training prompts by TF-IDF cosine (word 1-2-grams, or character 3-5-grams), alone
  and averaged with the shipped gain (each divided by its spread on the fold);
- ``stack``: gradient-boosted trees on the shipped predictor's two qualities and its gain, with or
  without eleven features of the prompt's shape (lengths, option lengths, digits, operators,
  NOT/EXCEPT/LEAST, "of the above", true/false pairs), trained on the other folds' held-out
  predictions and scored on this fold's.
Printed: held-out MMLU APGR, mean and spread over the folds, for each. The test split is never read.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from gain_cv import STRONG, WEAK, gain_apgr, blend, held_out_folds, probe_args, report  # noqa: E402
from gain_ensemble_cv import VARIANTS  # noqa: E402

from policies.evaluate import train_predictor  # noqa: E402
from policies.loaders import load_dataset  # noqa: E402
from policies.outcomes import score  # noqa: E402

OPTION = re.compile(r"^[A-D]\. ")


def shape(prompt: str) -> list[float]:
    """Eleven features of a multiple-choice prompt's shape."""
    opts = [line[3:] for line in prompt.split("\n") if OPTION.match(line)]
    lengths = [len(o) for o in opts] or [0]
    question = prompt.split("\nA. ")[0]
    return [
        len(prompt),
        len(question),
        float(np.mean(lengths)),
        max(lengths),
        min(lengths),
        sum(c.isdigit() for c in prompt) / max(len(prompt), 1),
        float(bool(re.search(r"\b(NOT|EXCEPT|LEAST)\b", prompt))),
        sum(c in "=+-*/^" for c in prompt),
        len(opts),
        float(any(re.search(r"(True|False|Wrong|Not wrong), ", o) for o in opts)),
        float(any("of the above" in o.lower() for o in opts)),
    ]


def main() -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.feature_extraction.text import TfidfVectorizer

    args = probe_args()
    ds = load_dataset(args.data)
    folds = []  # per fold: held-out rows, the shipped predictor's qualities and gain, the truth, training rows
    for k, (fds, held) in enumerate(held_out_folds(ds, args.folds)):
        pred = train_predictor(fds, "train", exclude=["mt-bench"], **VARIANTS["shipped"])  # type: ignore[arg-type]
        s, w = pred.models.index(STRONG), pred.models.index(WEAK)
        q = np.array([list(pred.predict(r["prompt"]).values()) for r in held])
        truth = (np.array([score(r, STRONG) for r in held]), np.array([score(r, WEAK) for r in held]))
        fit = [r for r in fds.split("train") if r.get("benchmark") != "mt-bench"]
        folds.append((held, q[:, s], q[:, w], q[:, s] - q[:, w], truth, fit))
        print(f"fold {k}: shipped predictor trained", flush=True)
    results: dict[str, list[float]] = {"shipped": [gain_apgr(f[3], *f[4]) for f in folds]}
    for held, _, _, gain, truth, fit in folds:
        target = np.array([score(r, STRONG) - score(r, WEAK) for r in fit])
        for name, vec in (
            ("words 1-2", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)),
            (
                "chars 3-5",
                TfidfVectorizer(
                    analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, min_df=2, max_features=300_000
                ),
            ),
        ):
            known = vec.fit_transform([r["prompt"] for r in fit])
            sims = (vec.transform([r["prompt"] for r in held]) @ known.T).toarray()
            order = np.argsort(-sims, axis=1)
            for k in (5, 20, 50, 200):
                top = order[:, :k]
                near = np.take_along_axis(sims, top, 1)
                knn = (target[top] * near).sum(1) / np.maximum(near.sum(1), 1e-9)
                for share in (0.0, 0.5, 0.75):
                    results.setdefault(f"knn {name} k={k} shipped share {share:g}", []).append(
                        gain_apgr(blend(gain, knn, share), *truth)
                    )
    inputs = {
        "predictions": [np.column_stack(f[1:4]) for f in folds],
        "predictions and shape": [
            np.column_stack([*f[1:4], np.array([shape(r["prompt"]) for r in f[0]])]) for f in folds
        ],
    }
    for cols, xs in inputs.items():
        for k, f in enumerate(folds):
            others = [j for j in range(len(folds)) if j != k]
            y = np.concatenate([folds[j][4][0] - folds[j][4][1] for j in others])
            trees = HistGradientBoostingRegressor(max_iter=60, learning_rate=0.05, max_depth=3, min_samples_leaf=200)
            stacked = trees.fit(np.vstack([xs[j] for j in others]), y).predict(xs[k])
            for share in (0.0, 0.5):
                results.setdefault(f"stack on {cols}, shipped share {share:g}", []).append(
                    gain_apgr(blend(f[3], stacked, share), *f[4])
                )
    report(results, args.json)


if __name__ == "__main__":
    main()
