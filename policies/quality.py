"""Quality estimates per candidate: priors, a learned predictor, and online feedback (a bandit).

The estimate for (model, request) starts from the learned predictor when it knows the model,
else the policy's per-category prior, else its per-model prior, else the deployment's default.
Feedback (scores in [0, 1]) updates a Beta posterior per (model, category) whose prior is that
estimate with ``prior_strength`` pseudo-observations: the decision uses the posterior mean (plus
``optimism`` posterior standard deviations: Bayes-UCB), and a bounded share of decisions
(``exploration``) uses a Thompson sample instead.

A fixed prior (per model or per category) and the feedback's mean make the posterior mean, as
Beta counts do. A learned predictor's prior is per prompt: there feedback corrects the predictor,
not replaces it. Each feedback event carries the prior its request was decided with, and the
posterior mean is that prompt's prediction plus the (model, category)'s mean residual (score minus
prior) over ``prior_strength`` + n: a predictor that is right on average keeps its per-prompt
estimates, one that is off for a model on a category is moved by what the feedback says. (Pooling
the scores themselves instead would pull every prompt of a category to the same estimate: a trained
policy with feedback on did worse than with it off.)
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from policies.draws import Draws
from policies.predictor import QualityPredictor
from policies.schema import Quality


@dataclass
class BanditState:
    """Feedback totals per (model, category): count, summed score and summed prior (the quality
    estimate each scored request was decided with, before feedback). Owned by the caller; with a
    shared store (Redis), replicas write feedback there and replace these totals from it."""

    stats: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(
        self, model: str, category: str, score: float, replaces: float | None = None, prior: float | None = None
    ) -> None:
        """One more observation, decided with quality estimate ``prior`` (None: unknown, counted as
        no surprise); or, with ``replaces``, a request scored again: its earlier score is swapped for
        this one and the count and prior stay."""
        with self._lock:
            s = self.stats.setdefault((model, category), [0.0, 0.0, 0.0])
            if replaces is None:
                s[0] += 1.0
                s[1] += score
                s[2] += score if prior is None else prior
            else:
                s[1] += score - replaces

    def get(self, model: str, category: str) -> tuple[float, float, float]:
        """Count, summed score and summed prior."""
        s = self.stats.get((model, category))
        return (s[0], s[1], s[2]) if s else (0.0, 0.0, 0.0)

    def replace(self, totals: Mapping[tuple[str, str], Sequence[float]]) -> None:
        """Take these totals (count, summed score[, summed prior]) as the whole state (the shared
        store's, which every replica writes); without a summed prior, the scores stand for it."""
        with self._lock:
            self.stats = {k: [float(v[0]), float(v[1]), float(v[2] if len(v) > 2 else v[1])] for k, v in totals.items()}


def decided_prior(candidates: Iterable[Mapping[str, Any]], arm: str) -> float | None:
    """The estimate a decision had for ``arm`` before feedback, from its candidate rows (the
    ledger's decision, or a live ``Decision.candidates``): its ``prior``, else (a record from before
    priors were kept) the ``quality`` it used; None when the arm is not among them."""
    row = next((c for c in candidates if c.get("model") == arm), None)
    if row is None:
        return None
    value = row.get("prior", row.get("quality"))
    return None if value is None else float(value)


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
        return self._prior(names, prompt, category)[0]

    def _prior(self, names: list[str], prompt: str, category: str) -> tuple[dict[str, float], dict[str, float]]:
        """The estimate per candidate, and which of them the predictor made (per prompt)."""
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
        return out, predicted

    def estimate(
        self, names: list[str], prompt: str, category: str, rng: Draws
    ) -> tuple[dict[str, float], bool, dict[str, float]]:
        """Quality per candidate, whether this decision explored (Thompson sample), and the prior
        estimates before feedback (what feedback on this request is measured against)."""
        prior, predicted = self._prior(names, prompt, category)
        b = self.cfg.bandit
        if not b.enabled:
            return prior, False, prior
        explore = rng.random() < b.exploration
        out = {}
        for n, q0 in prior.items():
            count, total, priors = self.bandit.get(n, category)
            if n in predicted:  # per prompt: the prediction, corrected by the mean residual
                strength = b.prior_strength + count
                mean = min(max(q0 + (total - priors) / strength, 1e-6), 1.0 - 1e-6)
                a, bb = mean * strength, (1.0 - mean) * strength
            else:
                a = q0 * b.prior_strength + total
                bb = (1.0 - q0) * b.prior_strength + (count - total)
            if explore:
                out[n] = rng.betavariate(max(a, 1e-6), max(bb, 1e-6))
            else:
                n_ = a + bb
                out[n] = a / n_ + (b.optimism * math.sqrt(a * bb / (n_ * n_ * (n_ + 1.0))) if b.optimism else 0.0)
        return out, explore, prior
