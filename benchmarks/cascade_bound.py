"""How far agreement cascades and plurality votes can lift RouterBench's AIQ: a bound, not a router.

    python benchmarks/cascade_bound.py [--data ../shared/data/routing/routerbench_subset.jsonl] [--split test]

For each benchmark, every agreement cascade over the cheaper models (one answering model, one to
``--max-voters`` checking models of which at least k must give the same answer, a final model
otherwise) is replayed on the split, and AIQ is taken over the upper hull of all of them together
with the single models; then again with plurality votes added (three to five of the cheaper models
all answer, the most common answer is sent, ties to the better model, all of them paid). Choosing
among them with the split's own scores is what a router cannot do, so the figures bound what any
policy built from these cascades or votes could score on that split.
"""

from __future__ import annotations

import argparse
import itertools
from collections import Counter
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from policies.checks import normalise  # noqa: E402
from policies.metrics import aiq  # noqa: E402

CHEAP = [
    "zero-one-ai/Yi-34B-Chat",
    "mistralai/mixtral-8x7b-chat",
    "gpt-3.5-turbo-1106",
    "mistralai/mistral-7b-chat",
    "WizardLM/WizardLM-13B-V1.2",
    "claude-instant-v1",
    "meta/llama-2-70b-chat",
    "meta/code-llama-instruct-34b-chat",
]
FINAL = ["gpt-4-1106-preview", "gpt-3.5-turbo-1106", "zero-one-ai/Yi-34B-Chat", "claude-v1"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/routing/routerbench_subset.jsonl")
    ap.add_argument("--split", default="test")
    ap.add_argument("--max-voters", type=int, default=2)
    args = ap.parse_args()
    rows = [r for r in map(json.loads, open(args.data)) if r["routerdc_split"] == args.split]
    answers = {
        r["id"]: {m: normalise(str(t)) for m, t in r.items() if m != "id"}
        for r in map(json.loads, open(args.data.with_name(args.data.stem + "_responses.jsonl")))
    }
    models = sorted({k.split("|")[0] for k in rows[0] if k.endswith("|score")})
    out, with_votes = [], []
    for bench in sorted({r["benchmark"] for r in rows}):
        rs = [r for r in rows if r["benchmark"] == bench]
        score = {m: np.array([r[f"{m}|score"] for r in rs], dtype=float) for m in models}
        cost = {m: np.array([r[f"{m}|cost_usd"] for r in rs]) for m in models}
        said = {m: [answers[r["id"]][m] for r in rs] for m in models}
        singles = [(float(cost[m].mean()), float(score[m].mean())) for m in models]
        points = list(singles)
        n = 0
        for first in CHEAP:
            for k in range(1, args.max_voters + 1):
                for voters in itertools.combinations([m for m in CHEAP if m != first], k):
                    agreeing = sum(
                        np.array([bool(a) and said[v][i] == a for i, a in enumerate(said[first])]) for v in voters
                    )
                    base = cost[first] + sum(cost[v] for v in voters)
                    for need in range(1, k + 1):
                        agree = agreeing >= need
                        for last in FINAL:
                            if last == first or last in voters:
                                continue
                            q = np.where(agree, score[first], score[last]).mean()
                            c = (base + np.where(agree, 0.0, cost[last])).mean()
                            points.append((float(c), float(q)))
                            n += 1
        c_max = max(c for c, _ in singles)
        out.append(aiq(points, c_max))
        points += votes(said, score, cost, len(rs))
        with_votes.append(aiq(points, c_max))
        print(
            f"{bench:<14} rows {len(rs):>4}  cascades {n}  zero router AIQ {aiq(singles, c_max):.3f}  "
            f"hull of singles and cascades {out[-1]:.3f}  with plurality votes {with_votes[-1]:.3f}"
        )
    print(f"mean AIQ of the hull: {np.mean(out):.3f}; with plurality votes {np.mean(with_votes):.3f}")


def votes(said: dict, score: dict, cost: dict, n: int) -> list[tuple[float, float]]:
    """(cost, quality) of every plurality vote of three to five cheaper models."""
    by_quality = sorted(CHEAP, key=lambda m: -score[m].mean())
    points = []
    for k in (3, 4, 5):
        for group in itertools.combinations(by_quality, k):
            q = np.empty(n)
            for i in range(n):
                tally = Counter(said[m][i] for m in group if said[m][i])
                top = max(tally.values(), default=0)
                q[i] = next((score[m][i] for m in group if tally.get(said[m][i], -1) == top), score[group[0]][i])
            points.append((float(sum(cost[m] for m in group).mean()), float(q.mean())))
    return points


if __name__ == "__main__":
    main()
