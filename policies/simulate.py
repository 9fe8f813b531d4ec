"""Online learning, measured: stream outcome rows through the live decision code with feedback.

Each row, in a seeded random order, is decided by the policy as the gateway would (the bandit
on: Thompson exploration at the policy's share, posterior means otherwise); the answering
model's recorded score is then fed back, as a client's ``POST /v1/feedback`` would, to the same
(model, task category) posterior the gateway updates. Beside it, on the same rows in the same
order: the policy trained offline (its predictor, no feedback), every single model, and the
oracle. Reported as running curves of quality, cost and utility (quality - lambda x cost, the
policy's lambda), over all rows so far and over a trailing window.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from policies.replay import Replay
from policies.outcomes import Dataset, cost, score
from policies.predictor import QualityPredictor
from policies.quality import BanditState, decided_prior
from policies.objectives import Utility
from policies.schema import Policy
from policies.verifier import Verifier
from pricing import ModelPrice


def uninformed(policy: Policy) -> Policy:
    """The policy with no prior knowledge of quality: no predictor, no priors, and every (model,
    category) posterior starting from Beta(1, 1), the uniform prior (mean 0.5, strength 2)."""
    bandit = policy.quality.bandit.model_copy(update={"prior_strength": 2.0})
    quality = policy.quality.model_copy(update={"priors": {}, "by_category": {}, "predictor": None, "bandit": bandit})
    return policy.model_copy(update={"quality": quality})


def simulate(
    policy: Policy,
    ds: Dataset,
    *,
    prices: dict[str, ModelPrice],
    predictor: QualityPredictor | None,
    start: str = "uninformed",
    split: str = "test",
    train_split: str = "train",
    seed: int = 0,
    lam: float | None = None,
    window: int = 250,
    every: int = 50,
    responses: dict[str, dict[str, str]] | None = None,
    verifiers: dict[str, Verifier] | None = None,
    checkpoints: tuple[int, ...] = (0, 100, 250, 500),
) -> dict[str, Any]:
    """``start``: ``uninformed`` (every model at 0.5, no predictor) or ``trained`` (the policy's
    predictor as the bandit's prior). ``lam``: the utility's lambda (default: the policy's, if a
    utility objective). Curves are sampled every ``every`` rows."""
    if start not in ("uninformed", "trained"):
        raise ValueError(f"start is 'uninformed' or 'trained', not '{start}'")
    if lam is None:
        lam = float(policy.objective.lambda_) if isinstance(policy.objective, Utility) else 0.0
    rows = list(ds.split(split))
    if not rows:
        raise ValueError(f"no rows in split '{split}'")
    random.Random(seed).shuffle(rows)
    history = ds.split(train_split)
    online_policy = uninformed(policy) if start == "uninformed" else policy
    state = BanditState()
    online = Replay(
        online_policy,
        ds,
        prices,
        None if start == "uninformed" else predictor,
        history,
        responses,
        verifiers,
        bandit=state,
        seed=seed,
    )
    offline = Replay(policy, ds, prices, predictor, history, responses, verifiers)
    models = online.models
    series: dict[str, list[tuple[float, float]]] = {"online": [], "offline": [], "oracle": []}
    single = {m: [(score(r, m), cost(r, m, prices)) for r in rows] for m in models}
    learned: dict[int, float] = {}  # after n feedback events: the learned policy's utility on every row
    checkpoints = tuple(sorted({min(n, len(rows)) for n in checkpoints}))

    def checkpoint(n: int) -> None:
        if n in checkpoints:
            learned[n] = _frozen_utility(
                online_policy,
                ds,
                prices,
                online.router.quality.predictor,
                history,
                responses,
                verifiers,
                state,
                rows,
                lam,
            )

    for i, r in enumerate(rows):
        checkpoint(i)
        m, q, c, _ = online.choose(r)
        series["online"].append((q, c))
        # the answer's score comes back as feedback, to the candidate chosen (as the gateway credits it)
        arm = (online.last.cascade or {}).get("name") if online.last is not None else None
        decided = online.last.candidates if online.last is not None else []
        state.record(arm or m, online.category(r), q, prior=decided_prior(decided, arm or m))
        series["offline"].append(offline.choose(r)[1:3])
        best = max(score(r, x) - lam * cost(r, x, prices) for x in models)
        series["oracle"].append(
            next((score(r, x), cost(r, x, prices)) for x in models if score(r, x) - lam * cost(r, x, prices) == best)
        )
    checkpoint(len(rows))
    best_single = max(models, key=lambda x: float(np.mean([q - lam * c for q, c in single[x]])))
    series["best single model"] = single[best_single]

    def curve(points: list[tuple[float, float]]) -> list[dict[str, float]]:
        q = np.array([p[0] for p in points])
        c = np.array([p[1] for p in points])
        out = []
        for n in list(range(every, len(points) + 1, every)) + ([len(points)] if len(points) % every else []):
            lo = max(0, n - window)
            out.append(
                {
                    "n": n,
                    "quality": float(q[:n].mean()),
                    "cost": float(c[:n].mean()),
                    "utility": float(q[:n].mean() - lam * c[:n].mean()),
                    "window_utility": float(q[lo:n].mean() - lam * c[lo:n].mean()),
                }
            )
        return out

    offline_utility = float(np.mean([q - lam * c for q, c in series["offline"]]))
    return {
        "policy": policy.name,
        "split": split,
        "rows": len(rows),
        "seed": seed,
        "start": start,
        "lambda": lam,
        "window": window,
        "best_single_model": best_single,
        "offline_utility": offline_utility,
        "learned_utility": {str(n): u for n, u in learned.items()},
        "curves": {name: curve(points) for name, points in series.items()},
    }


def _frozen_utility(
    policy: Policy,
    ds: Dataset,
    prices: dict[str, ModelPrice],
    predictor: QualityPredictor | None,
    history: list[dict[str, Any]],
    responses: dict[str, dict[str, str]] | None,
    verifiers: dict[str, Verifier] | None,
    state: BanditState,
    rows: list[dict[str, Any]],
    lam: float,
) -> float:
    greedy = policy.quality.bandit.model_copy(update={"exploration": 0.0, "optimism": 0.0})
    frozen = policy.model_copy(update={"quality": policy.quality.model_copy(update={"bandit": greedy})})
    snapshot = BanditState()
    snapshot.replace(state.stats)
    replay = Replay(frozen, ds, prices, predictor, history, responses, verifiers, bandit=snapshot)
    return float(np.mean([(lambda x: x[1] - lam * x[2])(replay.choose(r)) for r in rows]))


def utility_gap(report: dict[str, Any], at: int) -> dict[str, float]:
    """The online policy's trailing-window and cumulative utility against the offline policy's, at
    the first sample on or after ``at`` rows (the last, if there are fewer): (online - offline) / |offline|."""
    at = min(at, report["rows"])
    on = next(p for p in report["curves"]["online"] if p["n"] >= at)
    off = next(p for p in report["curves"]["offline"] if p["n"] == on["n"])
    return {
        "n": on["n"],
        "online_window": on["window_utility"],
        "offline_window": off["window_utility"],
        "window_gap": (on["window_utility"] - off["window_utility"]) / abs(off["window_utility"]),
        "cumulative_gap": (on["utility"] - off["utility"]) / abs(off["utility"]),
        "learned_gap": (
            (report["learned_utility"][str(at)] - report["offline_utility"]) / abs(report["offline_utility"])
            if str(at) in report["learned_utility"]
            else None
        ),
    }
