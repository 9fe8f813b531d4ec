"""Does the RouterBench policy gain from a price of quality of its own for code prompts? A probe for
issue 22's per-category routing, on the folds of train (the test split is never read).

    python benchmarks/category_lambda_cv.py --data ../shared/data/routing/routerbench_subset.jsonl \
        --policy policies/examples/routerbench-subset.yaml [--folds 5] [--ratios 0.25,0.5,1,2,4] [--json OUT]

The policy trades predicted quality against expected cost with one lambda for every prompt. With a
calibrated predictor one lambda is the best way to spend a pooled budget; where the predictor is
calibrated differently for one kind of prompt, a lambda of its own for that kind can do better. The
RouterBench prompts read as two categories (``categorize``: multiple choice, ARC and Winogrande;
code, MBPP), so here the code category gets ``categories.code: {type: utility, lambda: r x lambda}``,
swept in lockstep with the policy's lambda, for each ratio r. The predictor is trained on the other
folds with the shipped settings (batch solver, L2 1, 100 steps of 0.1, the policy's cascade).

Rule fixed before the run (this file is committed before it runs): a ratio other than 1 is adopted
only if it has the lowest mean cost to reach 95% of GPT-4's quality over the five folds, at least
0.01 below the ratio 1's, and lower than the ratio 1's on at least four folds of five.
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
from policies.outcomes import Dataset  # noqa: E402
from policies.schema import Policy  # noqa: E402


def with_code_lambda(policy: Policy) -> Policy:
    """The policy with a utility objective of its own for code prompts (its lambda set by the sweep)."""
    data = policy.model_dump(by_alias=True, exclude_none=True)
    data["categories"] = {**(data.get("categories") or {}), "code": {"type": "utility", "lambda": 1.0}}
    return Policy.model_validate(data)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--policy", required=True, type=Path)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--ratios", default="0.25,0.5,1,2,4")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    ds, base, prices, responses = inputs(args.data, args.policy)
    policy = with_code_lambda(base)
    ratios = [float(x) for x in args.ratios.split(",")]
    costs: dict[float, list[float]] = {r: [] for r in ratios}
    aiqs: dict[float, list[float]] = {r: [] for r in ratios}
    train = ds.split("train")
    for k in range(args.folds):
        rows = [{**r, ds.split_field: "test" if fold_of(r["id"], args.folds) == k else "train"} for r in train]
        fold_ds = Dataset(rows, ds.models, ds.split_field)
        pred = train_predictor(
            fold_ds, "train", epochs=100, lr=0.1, policy=base, responses=responses, solver="batch", l2=1.0
        )  # fmt: skip
        for ratio in ratios:
            sweep = [("lambda", LAMBDAS), ("categories.code.lambda", [ratio * x for x in LAMBDAS])]
            rep = evaluate(
                policy, fold_ds, split="test", prices=prices, predictor=pred, responses=responses, sweep=sweep
            )  # fmt: skip
            c = rep["cost_to_95pct_of_strongest_frac"]
            costs[ratio].append(1.0 if c is None else float(c))
            aiqs[ratio].append(float(rep["mean_aiq"]))
        plain = evaluate(
            base, fold_ds, split="test", prices=prices, predictor=pred, responses=responses, sweep=("lambda", LAMBDAS)
        )  # fmt: skip
        if 1.0 in costs:  # the ratio 1 is the policy as it is: the same decisions, so the same figure
            assert costs[1.0][-1] == (plain["cost_to_95pct_of_strongest_frac"] or 1.0), (costs[1.0][-1], plain)
        print(f"fold {k}: " + ", ".join(f"r={r:g} {costs[r][-1]:.3f}" for r in ratios), flush=True)
    out = {}
    for r in ratios:
        out[f"{r:g}"] = {
            "cost_to_95pct": float(np.mean(costs[r])),
            "folds": costs[r],
            "mean_aiq": float(np.mean(aiqs[r])),
            "folds_lower_than_ratio_1": int(sum(a < b for a, b in zip(costs[r], costs.get(1.0, costs[r])))),
        }
        print(
            f"ratio {r:g}: cost to 95% {np.mean(costs[r]):.3f} (folds {', '.join(f'{c:.3f}' for c in costs[r])}), "
            f"mean AIQ {np.mean(aiqs[r]):.4f}, lower than ratio 1 on {out[f'{r:g}']['folds_lower_than_ratio_1']} folds"
        )
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
