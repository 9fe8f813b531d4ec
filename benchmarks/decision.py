"""Routing decision cost: PolicyRouter.decide, quality prediction included, per decision.

    python benchmarks/decision.py [--n 5000]

Uses the shipped RouteLLM predictor and real prompts from ../shared/data/routing when present
(else synthetic ones). Target (issue 4): median under 200 microseconds on this machine.
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
from policies.predictor import QualityPredictor  # noqa: E402
from policies.quality import QualityModel  # noqa: E402
from policies.schema import load_policy  # noqa: E402
from pricing import ModelPrice  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    args = ap.parse_args()
    policy = load_policy(ROOT / "policies/examples/routellm-gpt4-mixtral.yaml")
    pred = QualityPredictor.load(ROOT / "policies/data/routellm-gpt4-mixtral.npz")
    router = PolicyRouter(policy, QualityModel(policy.quality, {}, pred))
    data = ROOT.parent / "shared/data/routing/routellm_gpt4_mixtral.jsonl"
    if data.exists():
        prompts = [json.loads(line)["prompt"] for _, line in zip(range(args.n), open(data))]
    else:
        prompts = [f"Question {i}: explain the difference between a mutex and a semaphore." for i in range(args.n)]
    infos = [CandidateInfo("gpt-4-1106-preview", "openai", ModelPrice(10e-6, 30e-6)),
             CandidateInfo("mistralai/Mixtral-8x7B-Instruct-v0.1", "together_ai", ModelPrice(0.6e-6, 0.6e-6))]
    rng = random.Random(0)
    times = []
    for p in prompts:
        t0 = time.perf_counter()
        f = RequestFeatures(prompt=p, prompt_tokens=len(p) // 4, category=categorize(p))
        router.decide(f, infos, rng)
        times.append(time.perf_counter() - t0)
    times.sort()
    us = [t * 1e6 for t in times]
    print(f"decisions: {len(us)}  median {statistics.median(us):.1f} us  p90 {us[int(len(us) * 0.9)]:.1f} us  "
          f"p99 {us[int(len(us) * 0.99)]:.1f} us  (prompt chars: median {statistics.median(len(p) for p in prompts):.0f})")


if __name__ == "__main__":
    main()
