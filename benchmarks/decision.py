"""Routing decision cost: PolicyRouter.decide, quality prediction included, per decision.

    python benchmarks/decision.py [--n 5000]
    python benchmarks/decision.py --policy policies/examples/routerbench-subset.yaml \
        --predictor /tmp/rb-pred.npz --data ../shared/data/routing/routerbench_subset.jsonl

Default: the shipped RouteLLM policy and predictor on real prompts from ../shared/data/routing
when present (else synthetic ones). With --policy, every model the policy may call is a
candidate at a list price. The prompts are decided ``--rounds`` times; the figure is the median of
the rounds' medians. Target (issue 4): median under 200 microseconds on this machine.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from policies.decide import CandidateInfo, PolicyRouter, RequestFeatures  # noqa: E402
from policies.features import categorize  # noqa: E402
from policies.quality import QualityModel  # noqa: E402
from policies.loaders import load_policy, load_predictor  # noqa: E402
from pricing import ModelPrice  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--policy", type=Path, default=ROOT / "policies/examples/routellm-gpt4-mixtral.yaml")
    ap.add_argument("--predictor", type=Path, default=ROOT / "policies/data/routellm-gpt4-mixtral.npz")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/routing/routellm_gpt4_mixtral.jsonl")
    args = ap.parse_args()
    policy = load_policy(args.policy)
    pred = load_predictor(args.predictor)
    router = PolicyRouter(policy, QualityModel(policy.quality, {}, pred))
    data = args.data
    if data.exists():
        prompts = [json.loads(line)["prompt"] for _, line in zip(range(args.n), open(data))]
    else:
        prompts = [f"Question {i}: explain the difference between a mutex and a semaphore." for i in range(args.n)]
    infos = [
        CandidateInfo(m, "p", ModelPrice(10e-6, 30e-6) if "gpt-4" in m else ModelPrice(0.6e-6, 0.6e-6))
        for m in policy.models
    ]
    rng = random.Random(0)
    rounds = []
    for _ in range(args.rounds):  # the host's speed drifts: several passes, their medians compared
        times = []
        for p in prompts:
            t0 = time.perf_counter()
            f = RequestFeatures(prompt=p, prompt_tokens=len(p) // 4, category=categorize(p))
            router.decide(f, infos, rng)
            times.append(time.perf_counter() - t0)
        times.sort()
        rounds.append([t * 1e6 for t in times])
    medians = sorted(statistics.median(us) for us in rounds)
    us = sorted(t for r in rounds for t in r)
    print(
        f"{policy.name} ({len(policy.pool)} candidates)  decisions: {len(prompts)} x {args.rounds}  "
        f"median {statistics.median(medians):.1f} us (rounds {medians[0]:.1f}-{medians[-1]:.1f})  "
        f"p90 {us[int(len(us) * 0.9)]:.1f} us  p99 {us[int(len(us) * 0.99)]:.1f} us  "
        f"(prompt chars: median {statistics.median(len(p) for p in prompts):.0f})"
    )


if __name__ == "__main__":
    main()
