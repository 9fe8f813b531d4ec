"""Would a second predictor, averaged in, help the two-model gain router? Cross-validated on train only.

    python benchmarks/gain_ensemble_cv.py --data ../shared/data/routing/routellm_gpt4_mixtral.jsonl \
        [--folds 5] [--json OUT]     # about 12 minutes here

The train split is cut into folds as benchmarks/gain_cv.py cuts it (a stable hash of each row's id;
MT-Bench left out of training). On each fold three predictors are trained on the others:
- ``shipped``: the shipped settings (TF-IDF words and word pairs, batch L2 1, 100 steps, the topic
  head at L2 0.03 blended half);
- ``chars``: the same solver over hashed character 3-, 4- and 5-grams of the prompt's last 1,200
  characters instead of words (no topic head);
- ``adagrad``: the earlier stochastic solver over the word features (5 epochs, step 0.5).
Each scores the held-out MMLU rows by its predicted gain (GPT-4's predicted quality minus
Mixtral's); printed, the held-out APGR of each alone and of weighted averages of the shipped one's
gain with a partner's (each gain divided by its standard deviation on the fold first). The test
split is never read.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from gain_cv import STRONG, WEAK, gain_apgr, blend, held_out_folds, probe_args, report  # noqa: E402

import policies.predictor as predictor_module  # noqa: E402
from policies.evaluate import train_predictor  # noqa: E402
from policies.features import MASK, featurize  # noqa: E402
from policies.loaders import load_dataset  # noqa: E402
from policies.outcomes import score  # noqa: E402

MULT = np.uint64(0x9E3779B97F4A7C15)


def char_features(text: str, tail: int = 1200) -> tuple[np.ndarray, np.ndarray]:
    """Hashed character 3-5-grams (a polynomial hash over the UTF-8 bytes), counts L2-normalised,
    and the bias feature 0."""
    b = np.frombuffer(text[-tail:].lower().encode()[-tail:], dtype=np.uint8).astype(np.uint64)
    keys = []
    for n in (3, 4, 5):
        if len(b) >= n:
            h = np.zeros(len(b) - n + 1, dtype=np.uint64)
            for j in range(n):
                h = h * MULT + b[j : len(b) - n + 1 + j] + np.uint64(n)
            keys.append(h)
    hashed = (np.concatenate(keys) if keys else np.zeros(0, np.uint64)) >> np.uint64(20)
    idx, counts = np.unique((hashed & np.uint64(MASK)).astype(np.int64), return_counts=True)
    val = np.append(counts, 1.0).astype(np.float32)
    return np.append(idx, 0).astype(np.int64), val / np.sqrt((val * val).sum())


VARIANTS = {
    "shipped": dict(solver="batch", l2=1.0, epochs=100, lr=0.1, topic_field="category", topic_l2=0.03, topic_blend=0.5),
    "chars": dict(solver="batch", l2=1.0, epochs=100, lr=0.1),
    "adagrad": dict(solver="adagrad", epochs=5, lr=0.5),
}


def main() -> None:
    args = probe_args()
    ds = load_dataset(args.data)
    gains: dict[str, list[np.ndarray]] = {v: [] for v in VARIANTS}
    truth: list[tuple[np.ndarray, np.ndarray]] = []
    for k, (fds, held) in enumerate(held_out_folds(ds, args.folds)):
        truth.append((np.array([score(r, STRONG) for r in held]), np.array([score(r, WEAK) for r in held])))
        for name, settings in VARIANTS.items():
            predictor_module.featurize = char_features if name == "chars" else featurize  # type: ignore[assignment]
            pred = train_predictor(fds, "train", exclude=["mt-bench"], **settings)  # type: ignore[arg-type]
            s, w = pred.models.index(STRONG), pred.models.index(WEAK)
            q = np.array([list(pred.predict(r["prompt"]).values()) for r in held])
            gains[name].append(q[:, s] - q[:, w])
            print(f"fold {k}: {name} trained", flush=True)
    predictor_module.featurize = featurize  # type: ignore[assignment]
    results: dict[str, list[float]] = {}
    for name in VARIANTS:
        results[name] = [gain_apgr(g, *t) for g, t in zip(gains[name], truth)]
    for partner in ("chars", "adagrad"):
        for share in (0.75, 0.5, 0.25):
            results[f"{share:g} shipped + {1 - share:g} {partner}"] = [
                gain_apgr(blend(a, b, share), *t) for a, b, t in zip(gains["shipped"], gains[partner], truth)
            ]
    report(results, args.json)


if __name__ == "__main__":
    main()
