"""Quality estimates per candidate: priors, a learned predictor, and online feedback (a bandit).

The estimate for (model, request) starts from the learned predictor when it knows the model,
else the policy's per-category prior, else its per-model prior, else the deployment's default.
Feedback (scores in [0, 1]) updates a Beta posterior per (model, category) whose prior is that
estimate with ``prior_strength`` pseudo-observations: the decision uses the posterior mean (plus
``optimism`` posterior standard deviations: Bayes-UCB), and a bounded share of decisions
(``exploration``) uses a Thompson sample instead.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass, field

from policies.predictor import QualityPredictor
from policies.schema import Quality


@dataclass
class BanditState:
    """Feedback totals per (model, category): count and summed score. Owned by the caller; with a
    shared store (Redis), replicas write feedback there and replace these totals from it."""

    stats: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, model: str, category: str, score: float, replaces: float | None = None) -> None:
        """One more observation; or, with ``replaces``, a request scored again: its earlier score
        is swapped for this one and the count stays."""
        with self._lock:
            s = self.stats.setdefault((model, category), [0.0, 0.0])
            if replaces is None:
                s[0] += 1.0
                s[1] += score
            else:
                s[1] += score - replaces

    def get(self, model: str, category: str) -> tuple[float, float]:
        s = self.stats.get((model, category))
        return (s[0], s[1]) if s else (0.0, 0.0)

    def replace(self, totals: dict[tuple[str, str], tuple[float, float]]) -> None:
        """Take these totals as the whole state (the shared store's, which every replica writes)."""
        with self._lock:
            self.stats = {k: [float(n), float(s)] for k, (n, s) in totals.items()}


class QualityModel:
    def __init__(
        self,
        cfg: Quality,
        defaults: dict[str, float],
        predictor: QualityPredictor | None = None,
        bandit: BanditState | None = None,
    ):
        self.cfg = cfg
        self.defaults = defaults
        self.predictor = predictor
        self.bandit = bandit or BanditState()

    def prior(self, names: list[str], prompt: str, category: str) -> dict[str, float]:
        predicted = self.predictor.predict(prompt) if self.predictor is not None and prompt else {}
        by_cat = self.cfg.by_category.get(category, {})
        out = {}
        for n in names:
            if n in predicted:
                out[n] = predicted[n]
            elif n in by_cat:
                out[n] = by_cat[n]
            elif n in self.cfg.priors:
                out[n] = self.cfg.priors[n]
            else:
                out[n] = self.defaults.get(n, 0.5)
        return out

    def estimate(
        self, names: list[str], prompt: str, category: str, rng: random.Random
    ) -> tuple[dict[str, float], bool]:
        """Quality per candidate, and whether this decision explored (Thompson sample)."""
        prior = self.prior(names, prompt, category)
        b = self.cfg.bandit
        if not b.enabled:
            return prior, False
        explore = rng.random() < b.exploration
        out = {}
        for n, q0 in prior.items():
            count, total = self.bandit.get(n, category)
            a = q0 * b.prior_strength + total
            bb = (1.0 - q0) * b.prior_strength + (count - total)
            if explore:
                out[n] = rng.betavariate(max(a, 1e-6), max(bb, 1e-6))
            else:
                n_ = a + bb
                out[n] = a / n_ + (b.optimism * math.sqrt(a * bb / (n_ * n_ * (n_ + 1.0))) if b.optimism else 0.0)
        return out, explore
