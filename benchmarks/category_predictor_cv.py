"""Does the RouterBench policy gain from a predictor per task category? A probe for issue 22 on the
folds of train (the test split is never read).

    python benchmarks/category_predictor_cv.py --data ../shared/data/routing/routerbench_subset.jsonl \
        --policy policies/examples/routerbench-subset.yaml [--folds 5] [--json OUT]

The RouteLLM predictor gained when it learned from the multiple-choice rows alone: word problems no
longer shared its weights. The RouterBench policy routes every prompt by its predictor, so here it
gets two: one learned from the training rows whose prompt reads as multiple choice (``categorize``:
ARC, Winogrande), one from the rest (code: MBPP), each prompt predicted by its own category's. Both
with the shipped settings (batch solver, L2 1, 100 steps of 0.1, the policy's cascade column),
against the one shipped predictor, on the same folds and lambda sweep.

Rule fixed before the run (this file is committed before it runs): a predictor per category is built
into the policy only if its mean cost to reach 95% of GPT-4's quality over the five folds is at least
0.01 below the one predictor's and lower on at least four folds of five.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from policy_cv import LAMBDAS, fold_of, inputs  # noqa: E402

from policies.evaluate import evaluate, train_predictor  # noqa: E402
from policies.features import categorize  # noqa: E402
from policies.outcomes import Dataset  # noqa: E402
from policies.predictor import QualityPredictor  # noqa: E402
from policies.schema import CATEGORIES  # noqa: E402


class ByCategory:
    """Each prompt predicted by the predictor of its own task category (``other`` for the rest)."""

    def __init__(self, choice: QualityPredictor, other: QualityPredictor) -> None:
        self.choice, self.other = choice, other
        self.models = choice.models

    def predict(self, prompt: str) -> dict[str, float]:
        return (self.choice if categorize(prompt) == "choice" else self.other).predict(prompt)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--policy", required=True, type=Path)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    ds, policy, prices, responses = inputs(args.data, args.policy)
    settings = {"epochs": 100, "lr": 0.1, "solver": "batch", "l2": 1.0, "policy": policy, "responses": responses}
    names = ["one predictor (shipped)", "a predictor per category"]
    costs: dict[str, list[float]] = {n: [] for n in names}
    aiqs: dict[str, list[float]] = {n: [] for n in names}
    train = ds.split("train")
    rest = [c for c in CATEGORIES if c != "choice"]
    for k in range(args.folds):
        rows = [{**r, ds.split_field: "test" if fold_of(r["id"], args.folds) == k else "train"} for r in train]
        fold_ds = Dataset(rows, ds.models, ds.split_field)
        one = train_predictor(fold_ds, "train", **settings)  # type: ignore[arg-type]
        split = ByCategory(
            train_predictor(fold_ds, "train", categories=["choice"], **settings),  # type: ignore[arg-type]
            train_predictor(fold_ds, "train", categories=rest, **settings),  # type: ignore[arg-type]
        )
        for name, pred in zip(names, (one, split)):
            rep = evaluate(
                policy, fold_ds, split="test", prices=prices, predictor=pred,  # type: ignore[arg-type]
                responses=responses, sweep=("lambda", LAMBDAS),
            )  # fmt: skip
            c = rep["cost_to_95pct_of_strongest_frac"]
            costs[name].append(1.0 if c is None else float(c))
            aiqs[name].append(float(rep["mean_aiq"]))
        print(f"fold {k}: " + ", ".join(f"{n} {costs[n][-1]:.3f}" for n in names), flush=True)
    base, per = (np.array(costs[n]) for n in names)
    out = {
        n: {"cost_to_95pct": float(np.mean(costs[n])), "folds": costs[n], "mean_aiq": float(np.mean(aiqs[n]))}
        for n in names
    }
    out["difference"] = {"mean": float(np.mean(per - base)), "folds_lower": int((per < base).sum())}
    print(json.dumps(out, indent=1))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
