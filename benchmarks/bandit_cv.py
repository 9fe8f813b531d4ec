"""Which online-learning rule learns fastest from uninformed priors? A probe for issue 22 on the
train split (the test split is never read).

    switchyard policies train --data ../shared/data/routing/routerbench_subset.jsonl --split train \
        --policy policies/examples/routerbench-subset.yaml --solver batch --l2 1 --epochs 100 --lr 0.1 \
        --out policies/examples/routerbench-predictor.npz      # the offline policy's predictor
    python benchmarks/bandit_cv.py [--seeds 10] [--variants fixed:1:0.05:0,log:0.5:0.05:0,...]

Each variant streams the train rows in seeded orders through `policies simulate` (the live decision
code, feedback after every row, from uninformed priors) and reports, after 500 feedback events, the
running utility over the last 250 rows and the utility of what it had learned (frozen, greedy, on
every row) against the offline-trained policy's, as `policies simulate` does. On train the offline
policy is scored in-sample, so every gap here is wider than on test; the variants are compared with
each other. A variant is ``rule:c:exploration:pool``:

- ``fixed:c``: decisions that do not sample use the posterior mean plus ``c`` posterior standard
  deviations (the shipped Bayes-UCB, ``bandit.optimism``);
- ``log:c``: ``c * sqrt(ln(1 + n))`` standard deviations, ``n`` the feedback events of the prompt's
  category so far (UCB1's schedule: the bonus grows with time, so an arm written off early is
  retried, at a price);
- ``exploration``: the share of decisions that take a Thompson sample (``bandit.exploration``);
- ``pool``: with ``pool`` > 0, a (model, category) posterior starts from the model's record over
  every category (at ``pool`` pseudo-observations) instead of from 0.5, so what a model shows on one
  category informs the others.

The shipped rule is ``fixed:1:0.05:0``; its row equals ``switchyard policies simulate --split train
--seeds 10``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import policies.quality as quality  # noqa: E402
from policies.simulate import simulate, utility_gap  # noqa: E402
from router.cli.policies import replay_inputs  # noqa: E402

shipped = quality.QualityModel.estimate


def rule(kind: str, pool: float) -> Any:
    """``QualityModel.estimate`` with the variant's optimism schedule (its scale: the policy's
    ``bandit.optimism``, 0 for the frozen greedy replay) and pooling, for a policy without a
    predictor (every posterior a Beta of the (model, category)'s counts)."""

    def estimate(self: Any, names: list[str], prompt: str, category: str, rng: Any) -> Any:
        b = self.cfg.bandit
        if not b.enabled or self.predictor is not None:  # the offline policy: as shipped
            return shipped(self, names, prompt, category, rng)
        prior = self._prior(names, prompt, category)[0]
        explore = rng.random() < b.exploration
        stats = self.bandit.stats
        n_cat = sum(v[0] for (_, cat), v in stats.items() if cat == category)
        z = b.optimism * math.sqrt(math.log(1.0 + n_cat)) if kind == "log" else b.optimism
        out = {}
        for n, q0 in prior.items():
            count, total, _ = self.bandit.get(n, category)
            strength = b.prior_strength
            if pool:
                seen = [v for (m, _), v in stats.items() if m == n]
                q0 = (q0 * strength + sum(v[1] for v in seen)) / (strength + sum(v[0] for v in seen))
                strength = pool
            a, bb = q0 * strength + total, (1.0 - q0) * strength + (count - total)
            if explore:
                out[n] = rng.betavariate(max(a, 1e-6), max(bb, 1e-6))
            else:
                s = a + bb
                out[n] = a / s + z * math.sqrt(a * bb / (s * s * (s + 1.0)))
        return out, explore, prior

    return estimate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/routing/routerbench_subset.jsonl")
    ap.add_argument("--policy", type=Path, default=ROOT / "policies/examples/routerbench-subset.yaml")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument(
        "--variants",
        default="fixed:1:0.05:0,fixed:0:0.05:0,fixed:0.75:0.05:0,fixed:1.25:0.05:0,fixed:1.5:0.05:0,"
        "fixed:2:0.05:0,log:0.5:0.05:0,log:0.75:0.05:0,log:1:0.05:0,fixed:1:0.05:2,fixed:1:0.05:5,"
        "log:0.75:0.05:2,fixed:1:0:0",
    )
    args = ap.parse_args()
    pol, pred, verifiers, ds, prices, responses = replay_inputs(args.policy, args.data, None, None, None)
    for variant in args.variants.split(","):
        kind, c, exploration, pool = variant.split(":")
        # the shipped rule with the variant's optimism as it is; the others patched in
        patched = kind != "fixed" or float(pool) > 0
        quality.QualityModel.estimate = rule(kind, float(pool)) if patched else shipped  # type: ignore[method-assign]
        bandit = pol.quality.bandit.model_copy(update={"exploration": float(exploration), "optimism": float(c)})
        p = pol.model_copy(update={"quality": pol.quality.model_copy(update={"bandit": bandit})})
        gaps = [
            utility_gap(
                simulate(
                    p, ds, prices=prices, predictor=pred, split="train", seed=s, responses=responses,
                    verifiers=verifiers, checkpoints=(0, 100, 250, 500),
                ),
                500,
            )
            for s in range(args.seeds)
        ]  # fmt: skip
        window = [g["window_gap"] for g in gaps]
        learned = [g["learned_gap"] for g in gaps]
        print(
            f"{variant:20} running {100 * statistics.mean(window):6.1f}% (worst {100 * min(window):6.1f}%)  "
            f"learned {100 * statistics.mean(learned):6.1f}% (worst {100 * min(learned):6.1f}%)",
            flush=True,
        )
    quality.QualityModel.estimate = shipped  # type: ignore[method-assign]


if __name__ == "__main__":
    main()
