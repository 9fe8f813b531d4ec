"""A learned quality predictor: for each model, P(good answer | prompt).

One logistic regression per model over hashed prompt features (policies.features), trained
jointly with AdaGrad. Tiny and fast: a prediction is one sparse dot product per model, tens of
microseconds. Saved as a compressed .npz with its model names and training metadata.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

from policies.features import DIM, featurize

if TYPE_CHECKING:
    import numpy as np
# numpy is imported where it is used: a gateway whose policies use no predictor never loads it
# (about 15 MB of resident memory per worker).


@dataclass
class QualityPredictor:
    models: list[str]
    weights: np.ndarray  # [n_models, DIM]
    meta: dict = field(default_factory=dict)
    # the same weights by feature, contiguous: a prediction gathers a few hundred rows of n_models
    # floats (one cache line each) instead of n_models scattered reads per feature
    by_feature: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        import numpy as np
        self.by_feature = np.ascontiguousarray(self.weights.T)
        self.weights = self.by_feature.T  # a view: the weights are held once

    @classmethod
    def train(cls, prompts: Sequence[str], scores: np.ndarray, models: Sequence[str], *, epochs: int = 8,
              lr: float = 0.5, l2: float = 1e-6, seed: int = 0, meta: dict | None = None) -> "QualityPredictor":
        """``scores``: [n_prompts, n_models] in [0, 1] (NaN: no outcome for that model)."""
        import numpy as np
        n, m = scores.shape
        w = np.zeros((m, DIM), dtype=np.float32)
        g2 = np.full((m, DIM), 1e-6, dtype=np.float32)
        feats = [featurize(p) for p in prompts]
        rng = np.random.default_rng(seed)
        known = ~np.isnan(scores)
        y_all = np.nan_to_num(scores)
        # start each model's bias at its base rate
        base = np.clip(np.nanmean(scores, axis=0), 1e-3, 1 - 1e-3)
        w[:, 0] = np.log(base / (1 - base))
        for _ in range(epochs):
            for i in rng.permutation(n):
                idx, val = feats[i]
                z = w[:, idx] @ val
                p = 1.0 / (1.0 + np.exp(-z))
                g = (p - y_all[i]) * known[i]
                grad = g[:, None] * val[None, :] + l2 * w[:, idx]
                g2[:, idx] += grad * grad
                w[:, idx] -= lr * grad / np.sqrt(g2[:, idx])
        return cls(list(models), w, dict(meta or {}))

    def predict(self, prompt: str) -> dict[str, float]:
        import numpy as np
        idx, val = featurize(prompt)
        z = val @ self.by_feature.take(idx, axis=0)
        p = 1.0 / (1.0 + np.exp(-z))
        return dict(zip(self.models, p.tolist()))

    def predict_many(self, prompts: Iterable[str]) -> np.ndarray:
        import numpy as np
        return np.array([[p for p in self.predict(t).values()] for t in prompts])

    def save(self, path: str | Path) -> None:
        import numpy as np
        np.savez_compressed(path, weights=self.weights.astype(np.float16),
                            models=np.array(self.models), meta=np.array(json.dumps(self.meta)))

    @classmethod
    def load(cls, path: str | Path) -> "QualityPredictor":
        import numpy as np
        with np.load(path, allow_pickle=False) as f:
            return cls([str(m) for m in f["models"]], f["weights"].astype(np.float32), json.loads(str(f["meta"])))
