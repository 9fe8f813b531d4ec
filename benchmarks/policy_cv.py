"""Choose a routing policy's settings by cross-validation on the train split only.

    python benchmarks/policy_cv.py --data ../shared/data/routing/routerbench_subset.jsonl \
        --policy policies/examples/routerbench-subset.yaml [--folds 3] [--features words|options-apart] [--json OUT]

The train split is cut into folds (a stable hash of each row's id); for every setting of the grid
(the predictor's solver, epochs, step size and L2, and which of the policy's named cascades are candidates),
the predictor is trained on all folds but one and the policy's lambda sweep is replayed on the one
left out. Reported per setting, averaged over folds: the pooled cost to reach 95% of the strongest
single model's quality (as a share of its cost) and the mean AIQ. The test split is never read, so
the setting chosen here can be reported on it honestly.

Options-apart features for the RouterBench policy (issue 22, 2026-12-03; rule fixed before the run):
with the shipped settings (``--folds 5 --solver batch --epochs 100 --lr 0.1 --l2 1``), the policy's
predictor changes to ``--features options-apart`` only if its mean cost to 95% over the five folds is
at least 0.01 lower than the word features' (0.176) **and** lower on at least four folds of five.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from policies.evaluate import evaluate, train_predictor  # noqa: E402
from policies.outcomes import Dataset  # noqa: E402
from policies.loaders import load_dataset, load_policy, load_prices, load_responses  # noqa: E402
from policies.schema import Policy  # noqa: E402

LAMBDAS = [0, 3, 10, 20, 30, 40, 50, 70, 100, 300, 1000, 3000, 10000]


def fold_of(row_id: str, folds: int) -> int:
    return zlib.crc32(str(row_id).encode()) % folds


def inputs(data: Path, policy: Path) -> tuple[Dataset, Policy, dict, dict | None]:
    """The data, the policy, the prices beside the data and the recorded answers a probe replays."""
    ds = load_dataset(data)
    prices = load_prices(data.parent / "prices.json", ds.models)
    return ds, load_policy(policy), prices, load_responses(data.with_name(data.stem + "_responses.jsonl"))


def variant(policy: Policy, cascades: tuple[str, ...]) -> Policy:
    """The policy with only these named cascades among its candidates."""
    keep = [c for c in policy.candidates if c not in policy.cascades or c in cascades]
    data = policy.model_dump(by_alias=True)
    data["candidates"] = keep
    data["cascades"] = {k: v for k, v in data["cascades"].items() if k in cascades}
    return Policy.model_validate(data)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--policy", required=True, type=Path)
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--epochs", default="2,3,5")
    ap.add_argument("--lr", default="0.05,0.1,0.2,0.5")
    ap.add_argument("--solver", default="adagrad", choices=["adagrad", "batch"])
    ap.add_argument("--l2", default=None, help="comma-separated L2 strengths (default: the solver's own)")
    ap.add_argument("--features", default="words", help="the prompt's feature set (words, options-apart)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    ds, policy, prices, responses = inputs(args.data, args.policy)
    train = ds.split("train")
    names = list(policy.cascades)
    cascade_sets = [tuple(names[:k]) for k in range(len(names) + 1)]
    results = []
    l2s = [None] if args.l2 is None else [float(x) for x in args.l2.split(",")]
    for epochs, lr, l2, cascades in itertools.product(
        [int(x) for x in args.epochs.split(",")], [float(x) for x in args.lr.split(",")], l2s, cascade_sets
    ):
        pol = variant(policy, cascades)
        costs, aiqs = [], []
        for k in range(args.folds):
            rows = [{**r, ds.split_field: "test" if fold_of(r["id"], args.folds) == k else "train"} for r in train]
            fold_ds = Dataset(rows, ds.models, ds.split_field)
            pred = train_predictor(
                fold_ds, "train", epochs=epochs, lr=lr, policy=pol, responses=responses, solver=args.solver, l2=l2,
                features=args.features,
            )  # fmt: skip
            rep = evaluate(
                pol,
                fold_ds,
                split="test",
                prices=prices,
                predictor=pred,
                responses=responses,
                sweep=("lambda", LAMBDAS),
            )
            costs.append(
                1.0 if rep["cost_to_95pct_of_strongest_frac"] is None else rep["cost_to_95pct_of_strongest_frac"]
            )
            aiqs.append(rep["mean_aiq"])
        res = {
            "epochs": epochs,
            "lr": lr,
            "solver": args.solver,
            "l2": l2,
            "features": args.features,
            "cascades": list(cascades),
            "cost_to_95pct": float(np.mean(costs)),
            "mean_aiq": float(np.mean(aiqs)),
            "folds_cost_to_95pct": costs,
        }
        results.append(res)
        print(
            f"{args.solver} epochs={epochs} lr={lr:<5g} l2={l2} cascades={len(cascades)}  cost to 95%: {res['cost_to_95pct']:.3f} "
            f"(folds {', '.join(f'{c:.3f}' for c in costs)})  mean AIQ {res['mean_aiq']:.4f}",
            flush=True,
        )
    best = min(results, key=lambda r: (r["cost_to_95pct"], -r["mean_aiq"]))
    print(
        f"chosen: {args.solver} epochs={best['epochs']} lr={best['lr']:g} l2={best['l2']} cascades={best['cascades']} "
        f"(cost to 95% {best['cost_to_95pct']:.3f}, mean AIQ {best['mean_aiq']:.4f})"
    )
    if args.json:
        args.json.write_text(json.dumps({"results": results, "chosen": best}, indent=1) + "\n")


if __name__ == "__main__":
    main()
