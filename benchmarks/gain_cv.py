"""Choose the two-model gain router's settings by cross-validation on the train split only.

    python benchmarks/gain_cv.py --data ../shared/data/routing/routellm_gpt4_mixtral.jsonl \
        [--folds 5] [--benchmark mmlu] [--l2 1,3,10] [--steps 50,100,200] \
        [--topic-l2 none,0.03,0.1,0.3 --blends 0.25,0.5,0.75] [--features words|options-apart] [--fold-salt S] [--category choice] [--json OUT]

The train split is cut into folds (a stable hash of each row's id). For each setting of the
batch-trained predictor (L2 strength, Adam steps; with a topic head, its L2 strength and the share
of its quality in a prediction), the predictor is trained on all folds but one (MT-Bench left out,
as for the shipped file; the topic head learns the rows' ``category``, read back from the prompt)
and scored on the one left out: the APGR of thresholding its predicted gain (GPT-4's predicted
quality minus Mixtral's), on the benchmark's rows. Then, for the best setting, the share of GPT-4
calls and the quality at each candidate ``min_gain`` on the held-out folds, pooled: the shipped
threshold is the highest gain bar (the fewest GPT-4 calls) that keeps 95% of GPT-4's quality
there. The test split is never read.
"""

from __future__ import annotations

import argparse
import json
import sys
import zlib
from pathlib import Path
from typing import Iterator, Sequence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from policies import metrics  # noqa: E402
from policies.evaluate import train_predictor  # noqa: E402
from policies.outcomes import Dataset, score  # noqa: E402
from policies.loaders import load_dataset  # noqa: E402

STRONG, WEAK = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"
# the shipped predictor's settings (chosen below), as `QualityPredictor.train` takes them
SHIPPED = {"epochs": 100, "lr": 0.1, "l2": 1.0, "solver": "batch", "topic_l2": 0.03, "topic_blend": 0.5}
GAINS = [-0.05, 0.0, 0.02, 0.04, 0.06, 0.08, 0.1, 0.12, 0.15, 0.2, 0.25, 0.3]


def floats(text: str) -> list[float | None]:
    return [None if v == "none" else float(v) for v in text.split(",")]


def fold_of(train: list[dict], folds: int, salt: str = "") -> dict:
    """Each train row's fold, by a stable hash of its id (``salt``: another partition of the same rows)."""
    return {r["id"]: zlib.crc32((salt + str(r["id"])).encode()) % folds for r in train}


def probe_args() -> argparse.Namespace:
    """The command line of a probe on the folds of train: --data, --folds, --json."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--json", type=Path)
    return ap.parse_args()


def blend(a: np.ndarray, b: np.ndarray, share: float) -> np.ndarray:
    """Two predicted gains averaged, ``share`` of the first, each divided by its spread first."""
    return share * a / a.std() + (1 - share) * b / max(float(b.std()), 1e-9)


def report(results: dict[str, list[float]], out: Path | None) -> None:
    """Each probe's held-out APGR over the folds: printed, and written to ``out`` as JSON."""
    for name, folds in results.items():
        print(f"{name}: held-out MMLU APGR {np.mean(folds):.4f} +/- {np.std(folds, ddof=1):.4f} {np.round(folds, 3)}")
    if out:
        out.write_text(json.dumps({n: {"mean": float(np.mean(f)), "folds": f} for n, f in results.items()}, indent=2))


def held_out_folds(
    ds: Dataset, folds: int, benchmark: str = "mmlu", salt: str = ""
) -> Iterator[tuple[Dataset, list[dict]]]:
    """Each fold of the train split in turn: the data with that fold's rows marked ``held`` and the
    others ``train``, and the fold's rows of ``benchmark``."""
    train = ds.split("train")
    fold = fold_of(train, folds, salt)
    for k in range(folds):
        rows = [{**r, ds.split_field: "train" if fold[r["id"]] != k else "held"} for r in train]
        fds = Dataset(rows, ds.models, ds.split_field)
        yield fds, [r for r in fds.split("held") if r.get("benchmark") == benchmark]


def gain_apgr(gain: Sequence[float], qs: Sequence[float], qw: Sequence[float]) -> float:
    """The APGR of thresholding a predicted gain (GPT-4's scores ``qs``, Mixtral's ``qw``)."""
    curve = metrics.routellm_curve([float(g) for g in gain], [float(q) for q in qs], [float(q) for q in qw])
    return metrics.apgr(curve, float(np.mean(qs)), float(np.mean(qw)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--benchmark", default="mmlu")
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--l2", type=floats, default=[1.0, 3.0, 10.0])
    ap.add_argument("--steps", type=floats, default=[50, 100, 200])
    ap.add_argument("--topic-l2", type=floats, default=[None], help="none: no topic head")
    ap.add_argument("--blends", type=floats, default=[0.5])
    ap.add_argument("--features", default="words", help="the prompt's feature set (words, options-apart)")
    ap.add_argument("--fold-salt", default="", help="another partition of train into folds (hashed with the ids)")
    ap.add_argument("--category", action="append", default=[], help="learn only from prompts of this task category")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    ds = load_dataset(args.data)
    results: dict[str, dict] = {}
    held_by: dict[str, list] = {}
    for l2 in args.l2:
        for steps in args.steps:
            for topic_l2 in args.topic_l2:
                blends = [0.0] if topic_l2 is None else args.blends
                apgrs: dict[float, list[float]] = {b: [] for b in blends}
                held: dict[float, list] = {b: [] for b in blends}
                for fds, out in held_out_folds(ds, args.folds, args.benchmark, args.fold_salt):
                    pred = train_predictor(
                        fds, "train", exclude=["mt-bench"], epochs=int(steps), lr=args.lr, solver="batch", l2=l2,
                        topic_field=None if topic_l2 is None else "category", topic_l2=topic_l2 or 0.0,
                        features=args.features, categories=args.category,
                    )  # fmt: skip
                    s, w = pred.models.index(STRONG), pred.models.index(WEAK)
                    parts = [pred.parts(r["prompt"]) for r in out]
                    qs, qw = [score(r, STRONG) for r in out], [score(r, WEAK) for r in out]
                    for b in blends:
                        mixed = [p if t is None else (1 - b) * p + b * t for p, t in parts]
                        gain = [float(q[s] - q[w]) for q in mixed]
                        apgrs[b].append(gain_apgr(gain, qs, qw))
                        held[b] += list(zip(gain, qs, qw))
                for b in blends:
                    name = f"l2={l2:g} steps={steps:g}" + (
                        "" if topic_l2 is None else f" topic_l2={topic_l2:g} blend={b:g}"
                    )
                    results[name] = {
                        "l2": l2,
                        "steps": steps,
                        "topic_l2": topic_l2,
                        "blend": b if topic_l2 is not None else None,
                        "apgr_mean": float(np.mean(apgrs[b])),
                        "apgr_sd": float(np.std(apgrs[b], ddof=1)),
                        "folds": apgrs[b],
                    }
                    held_by[name] = held[b]
                    print(
                        f"{name}: held-out APGR {np.mean(apgrs[b]):.3f} +/- {np.std(apgrs[b], ddof=1):.3f}", flush=True
                    )
    best_name = max(results, key=lambda n: results[n]["apgr_mean"])
    held_arr = np.array(held_by[best_name])
    target = 0.95 * held_arr[:, 1].mean()
    bars = []
    for g in GAINS:
        strong = held_arr[:, 0] >= g
        q = float(np.where(strong, held_arr[:, 1], held_arr[:, 2]).mean())
        bars.append({"min_gain": g, "strong_share": float(strong.mean()), "quality": q})
        print(f"  min_gain {g:+.2f}: {strong.mean():.1%} GPT-4 calls, quality {q:.4f} (95% of GPT-4: {target:.4f})")
    chosen = max((b for b in bars if b["quality"] >= target), key=lambda b: b["min_gain"], default=bars[0])
    print(f"best: {best_name}; min_gain {chosen['min_gain']:g}")
    if args.json:
        doc = {"settings": results, "best": results[best_name], "bars": bars, "chosen": chosen}
        args.json.write_text(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
