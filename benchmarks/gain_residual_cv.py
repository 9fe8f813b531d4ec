"""Does the word model gain when it learns what the topic head leaves, instead of being averaged
with it? A probe for issue 22 on the folds of train (the test split is never read).

    python benchmarks/gain_residual_cv.py --data ../shared/data/routing/routellm_gpt4_mixtral.jsonl \
        [--folds 5] [--json OUT]

The shipped predictor (policies/predictor.py, settings of benchmarks/gain_cv.py: L2 1, 100 steps,
topic head L2 0.03) averages its word model's quality with its topic head's, half and half. Here
the word model is instead trained with each training prompt's topic quality as an offset to its
logit, so its L2 shrinks each prompt toward its subject's record rather than toward the mean over
all prompts, and a prediction is the topic quality's logit plus the words' correction. The offsets
are cross-fitted (3 folds within the training rows: each row's topic quality comes from a head
that did not see it), as a routed prompt's topic quality comes from a head that never saw it.
Both are scored on the same held-out folds: the APGR of thresholding the predicted gain on MMLU.
Rule fixed before the run: a change ships only for a held-out gain of at least 0.005.
"""

from __future__ import annotations

import sys
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from gain_cv import SHIPPED, STRONG, WEAK, gain_apgr, held_out_folds, probe_args, report  # noqa: E402

from policies.loaders import load_dataset  # noqa: E402
from policies.outcomes import score  # noqa: E402
from policies.predictor import QualityPredictor  # noqa: E402


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def main() -> None:
    args = probe_args()
    ds = load_dataset(args.data)
    inner_folds = 3
    results: dict[str, list[float]] = {"shipped (blend 0.5)": [], "residual on cross-fitted topics": []}
    for fds, out in held_out_folds(ds, args.folds):
        rows = [r for r in fds.split("train") if r.get("benchmark") != "mt-bench"]
        prompts = [r["prompt"] for r in rows]
        labels = [str(r.get("category") or "") for r in rows]
        y = np.array([[score(r, m) for m in fds.models] for r in rows], dtype=float)

        def fit(sel: np.ndarray, offset: np.ndarray | None = None) -> QualityPredictor:
            topics = None if offset is not None else [labels[i] for i in sel]
            return QualityPredictor.train(
                [prompts[i] for i in sel], y[sel], fds.models, topics=topics, offset=offset, **SHIPPED
            )

        everything = np.arange(len(rows))
        shipped = fit(everything)
        inner = np.array([zlib.crc32(f"inner:{r['id']}".encode()) % inner_folds for r in rows])
        topic_q = np.empty_like(y)
        for k in range(inner_folds):
            part = fit(np.flatnonzero(inner != k))
            assert part.topics is not None
            for i in np.flatnonzero(inner == k):
                topic_q[i] = part.topics.quality_of(*part._features(prompts[i]))
        residual = fit(everything, offset=logit(topic_q))
        s, w = shipped.models.index(STRONG), shipped.models.index(WEAK)
        qs, qw = [score(r, STRONG) for r in out], [score(r, WEAK) for r in out]
        base, resid = [], []
        for r in out:
            words, topic = shipped.parts(r["prompt"])
            assert topic is not None
            mixed = 0.5 * words + 0.5 * topic
            base.append(float(mixed[s] - mixed[w]))
            correction, _ = residual.parts(r["prompt"])
            q = 1.0 / (1.0 + np.exp(-(logit(correction) + logit(topic))))
            resid.append(float(q[s] - q[w]))
        results["shipped (blend 0.5)"].append(gain_apgr(base, qs, qw))
        results["residual on cross-fitted topics"].append(gain_apgr(resid, qs, qw))
        print({k: round(v[-1], 4) for k, v in results.items()}, flush=True)
    report(results, args.json)


if __name__ == "__main__":
    main()
