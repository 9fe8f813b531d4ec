"""How far agreement cascades and plurality votes can lift RouterBench's figures: a bound, not a router.

    python benchmarks/cascade_bound.py [--data ../shared/data/routing/routerbench_subset.jsonl] [--split test]
        [--max-voters 2] [--resplits 5] [--no-votes]

For each benchmark, every agreement cascade over the cheaper models (one answering model, one to
``--max-voters`` checking models of which at least k must give the same answer, a final model
otherwise) is replayed on the split, and AIQ is taken over the upper hull of all of them together
with the single models; then again with plurality votes added (three to five of the cheaper models
all answer, the most common answer is sent, ties to the better model, all of them paid).

Issue 22's other RouterBench figure, the pooled cost of reaching 95% of GPT-4's accuracy, is bounded
the same way: the least total cost of one point (or a mix of two neighbouring points) on each
benchmark's hull whose pooled accuracy is 95% of GPT-4's, found by taking the hulls' segments in
order of accuracy gained per dollar. That is what a router choosing one cascade per task category
(and mixing two) could reach at best.

``--patterns`` adds what a learned verifier over checkers' votes could do at best: for the three best
cheaper answering models and every three checkers, the eight patterns of which checkers agree are
ranked by how often the answer is right *on these rows* and each cut of that ranking is a setting
(answers under the cut go to GPT-4).

Choosing among them with the split's own scores is what a router cannot do, so the figures bound what
any policy built from these cascades or votes could score on that split. ``--resplits K`` repeats it
on the test rows of the K seeded re-splits ``switchyard policies eval --resplits K`` scores.
``--choose-on-train`` keeps only the cascades on each benchmark's hull of the *train* rows (votes
left out) and scores those on the test rows: what a router that picks its cascades honestly reaches
(the pooled figure still mixes them with the test rows' hull, so it stays a bound).
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
from policies.loaders import load_dataset  # noqa: E402
from policies.metrics import aiq, ndch  # noqa: E402
from policies.outcomes import resplit  # noqa: E402

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
STRONG = "gpt-4-1106-preview"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/routing/routerbench_subset.jsonl")
    ap.add_argument("--split", default="test")
    ap.add_argument("--max-voters", type=int, default=2)
    ap.add_argument("--resplits", type=int, default=0, help="also bound the test rows of K seeded re-splits")
    ap.add_argument("--no-votes", action="store_true", help="cascades only (plurality votes are the slow part)")
    ap.add_argument("--choose-on-train", action="store_true", help="only the cascades on the train rows' hull")
    ap.add_argument("--patterns", action="store_true", help="add verifiers ranking three checkers' agreement patterns")
    args = ap.parse_args()
    ds = load_dataset(args.data)
    answers = {
        r["id"]: {m: normalise(str(t)) for m, t in r.items() if m != "id"}
        for r in map(json.loads, open(args.data.with_name(args.data.stem + "_responses.jsonl")))
    }
    runs = [("official", ds)] + [(f"re-split {s}", resplit(ds, s)) for s in range(1, args.resplits + 1)]
    pooled_all, gain_all = [], []
    for name, d in runs:
        rows = d.split(args.split)
        print(f"{name}: {len(rows)} {args.split} rows")
        chooser = d.split("train") if args.choose_on_train else None
        votes_too = not args.no_votes and not chooser
        gain, pooled = bound(rows, d.models, answers, args.max_voters, votes_too, chooser, args.patterns)
        gain_all.append(gain)
        pooled_all.append(pooled)
    if len(runs) > 1:
        ps, gs = np.array(pooled_all[1:]), np.array(gain_all[1:])
        print(
            f"over {len(ps)} re-splits: pooled cost to 95% of GPT-4 {ps.mean():.1%} +/- {ps.std(ddof=1):.1%} "
            f"({', '.join(f'{p:.1%}' for p in ps)}); AIQ gain of the hull {gs.mean():+.4f} +/- {gs.std(ddof=1):.4f}"
        )


def bound(
    rows: list[dict],
    models: list[str],
    answers: dict,
    max_voters: int,
    with_votes: bool,
    chooser: list[dict] | None,
    with_patterns: bool = False,
) -> tuple[float, float]:
    """Prints each benchmark's bounds; returns (mean AIQ gain of the hull over the zero router, pooled
    cost share to 95% of GPT-4's accuracy). ``chooser``: rows whose hull picks the cascades kept."""
    gains, hulls = [], {}
    for bench in sorted({r["benchmark"] for r in rows}):
        rs = [r for r in rows if r["benchmark"] == bench]
        score = {m: np.array([r[f"{m}|score"] for r in rs], dtype=float) for m in models}
        cost = {m: np.array([r[f"{m}|cost_usd"] for r in rs]) for m in models}
        said = {m: [answers[r["id"]][m] for r in rs] for m in models}
        singles = [(float(cost[m].mean()), float(score[m].mean())) for m in models]
        found = cascades(said, score, cost, max_voters)
        if chooser is not None:
            found = {
                k: found[k]
                for k in train_hull([r for r in chooser if r["benchmark"] == bench], models, answers, max_voters)
            }
        points = singles + list(found.values())
        c_max = max(c for c, _ in singles)
        zero, hull_aiq = aiq(singles, c_max), aiq(points, c_max)
        line = (
            f"  {bench:<14} rows {len(rs):>4}  zero router AIQ {zero:.3f}  hull of singles and cascades {hull_aiq:.3f}"
        )
        if with_votes:
            points += votes(said, score, cost, len(rs))
            hull_aiq = aiq(points, c_max)
            line += f"  with plurality votes {hull_aiq:.3f}"
        if with_patterns:
            points += patterns(said, score, cost, len(rs))
            hull_aiq = aiq(points, c_max)
            line += f"  with agreement-pattern verifiers {hull_aiq:.3f}"
        print(line)
        gains.append(hull_aiq - zero)
        hulls[bench] = [(c * len(rs), q * len(rs)) for c, q in ndch(points)]  # totals, so benchmarks add
    strong_cost = sum(r[f"{STRONG}|cost_usd"] for r in rows)
    target = 0.95 * sum(r[f"{STRONG}|score"] for r in rows)
    share = pooled_cost(list(hulls.values()), target) / strong_cost
    print(f"  mean AIQ gain of the hull {np.mean(gains):+.4f}; pooled cost to 95% of GPT-4's accuracy {share:.1%}")
    return float(np.mean(gains)), share


def train_hull(rows: list[dict], models: list[str], answers: dict, max_voters: int) -> list[tuple]:
    """The cascades on the hull of ``rows`` (a benchmark's train rows), by name."""
    score = {m: np.array([r[f"{m}|score"] for r in rows], dtype=float) for m in models}
    cost = {m: np.array([r[f"{m}|cost_usd"] for r in rows]) for m in models}
    said = {m: [answers[r["id"]][m] for r in rows] for m in models}
    found = cascades(said, score, cost, max_voters)
    singles = [(float(cost[m].mean()), float(score[m].mean())) for m in models]
    hull = set(ndch(singles + list(found.values())))
    return [k for k, p in found.items() if p in hull]


def cascades(said: dict, score: dict, cost: dict, max_voters: int) -> dict[tuple, tuple[float, float]]:
    """(cost, quality) of every agreement cascade of one answering model and up to ``max_voters``
    checkers, by (answering model, checkers, agreeing needed, final model)."""
    points = {}
    for first in CHEAP:
        for k in range(1, max_voters + 1):
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
                        points[(first, voters, need, last)] = (float(c), float(q))
    return points


def pooled_cost(hulls: list[list[tuple[float, float]]], target: float) -> float:
    """The least total cost at which one point per hull (two neighbours mixed on one of them) reaches
    ``target`` summed quality: start at each hull's cheapest point and take segments by their slope.
    Hulls are concave, so the slopes along each one fall and the greedy order is optimal."""
    c = sum(h[0][0] for h in hulls)
    q = sum(h[0][1] for h in hulls)
    segments = sorted(
        ((q2 - q1) / (c2 - c1), c2 - c1, q2 - q1) for h in hulls for (c1, q1), (c2, q2) in zip(h, h[1:]) if c2 > c1
    )
    for _, dc, dq in reversed(segments):
        if q >= target:
            break
        take = min(1.0, (target - q) / dq)
        c, q = c + take * dc, q + take * dq
    return c if q >= target - 1e-9 else float("inf")


def patterns(said: dict, score: dict, cost: dict, n: int) -> list[tuple[float, float]]:
    """(cost, quality) of each cut of every agreement-pattern verifier (see the module's docstring)."""
    points = []
    for first in sorted(CHEAP, key=lambda m: -score[m].mean())[:3]:
        for voters in itertools.combinations([m for m in CHEAP if m != first], 3):
            pattern = np.zeros(n, dtype=int)
            for j, v in enumerate(voters):
                pattern += np.array([bool(a) and said[v][i] == a for i, a in enumerate(said[first])], dtype=int) << j
            base = cost[first] + sum(cost[v] for v in voters)
            right = {k: score[first][pattern == k].mean() for k in range(8) if (pattern == k).any()}
            ranked = sorted(right, key=lambda k: -right[k])
            for cut in range(len(ranked) + 1):
                keep = np.isin(pattern, ranked[:cut])
                q = np.where(keep, score[first], score[STRONG]).mean()
                points.append((float((base + np.where(keep, 0.0, cost[STRONG])).mean()), float(q)))
    return points


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
