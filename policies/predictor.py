"""A learned quality predictor: for each model, P(good answer | prompt).

One logistic regression per model over hashed prompt features (policies.features). Two ways to
train it: ``adagrad`` (stochastic, a few epochs; the original) and ``batch`` (full-batch Adam on
an L2-regularised loss over TF-IDF-weighted features: each feature weighed by its inverse
document frequency on the training prompts, the vector normalised again). The difference of two
models' predictions is the predicted gain a two-model router thresholds. Tiny and fast: a
prediction is one sparse dot product per model, tens of microseconds. Saved as a compressed .npz
with its model names, its feature weights (if any) and training metadata (which holds the
settings it was trained with, so it can be retrained on another split alike). A batch-trained
predictor may carry a topic head (policies.topics) whose per-topic record it blends in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

from policies.adam import adam
from policies.features import DIM, feature_set
from policies.topics import TopicHead

if TYPE_CHECKING:
    import numpy as np
# numpy is imported where it is used: a gateway whose policies use no predictor never loads it
# (about 15 MB of resident memory per worker).


@dataclass
class QualityPredictor:
    models: list[str]
    weights: np.ndarray  # [n_models, DIM]
    meta: dict[str, Any] = field(default_factory=dict)
    idf: np.ndarray | None = None  # [DIM] feature weights (TF-IDF); None: features as they come
    bias: np.ndarray | None = None  # [n_models] intercepts beside the features (batch-trained)
    topics: TopicHead | None = None  # what the prompt is about, blended in (batch-trained, policies.topics)
    # the same weights by feature, contiguous: a prediction gathers a few hundred rows of n_models
    # floats (one cache line each) instead of n_models scattered reads per feature
    by_feature: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        import numpy as np

        self.featurize = feature_set(self.meta.get("features", "words"))
        self.by_feature = np.ascontiguousarray(self.weights.T)
        self.weights = self.by_feature.T  # a view: the weights are held once

    @classmethod
    def train(
        cls,
        prompts: Sequence[str],
        scores: np.ndarray,
        models: Sequence[str],
        *,
        epochs: int = 8,
        lr: float = 0.5,
        l2: float = 1e-6,
        seed: int = 0,
        meta: dict[str, Any] | None = None,
        solver: str = "adagrad",
        topics: Sequence[str] | None = None,
        topic_l2: float = 0.1,
        topic_blend: float = 0.5,
        offset: np.ndarray | None = None,
        features: str = "words",
    ) -> "QualityPredictor":
        """``scores``: [n_prompts, n_models] in [0, 1] (NaN: no outcome for that model). ``solver``
        ``batch``: ``epochs`` full-batch Adam steps of size ``lr`` on the mean log-loss plus
        ``l2`` / n_prompts x |w|^2 / 2, over TF-IDF-weighted features; with ``topics`` (a label per
        prompt), also a topic head (``topic_l2``), its quality weighed ``topic_blend`` in a prediction.
        ``offset`` (batch only): [n_prompts, n_models] logits added to each prompt's in training, a
        prior the word weights then correct (benchmarks/gain_residual_cv.py); the saved predictor
        knows nothing of it, so its predictions are the corrections alone. ``features``: the feature set
        (``policies.features.FEATURES``), recorded in the metadata."""
        featurize = feature_set(features)
        meta = {**(meta or {}), **({"features": features} if features != "words" else {})}
        if solver == "batch":
            head = (topics, topic_l2, topic_blend) if topics is not None else None
            return cls._train_batch(
                prompts, scores, models, featurize, steps=epochs, lr=lr, l2=l2, meta=meta, topics=head, offset=offset
            )
        if solver != "adagrad":
            raise ValueError(f"unknown solver '{solver}' (adagrad, batch)")
        if topics is not None or offset is not None:
            raise ValueError("a topic head or an offset needs the batch solver")
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

    @classmethod
    def _train_batch(
        cls,
        prompts: Sequence[str],
        scores: np.ndarray,
        models: Sequence[str],
        featurize: Callable[[str], tuple[np.ndarray, np.ndarray]],
        *,
        steps: int,
        lr: float,
        l2: float,
        meta: dict[str, Any] | None,
        topics: tuple[Sequence[str], float, float] | None = None,
        offset: np.ndarray | None = None,
    ) -> "QualityPredictor":
        import numpy as np

        n, m = scores.shape
        feats = [featurize(p) for p in prompts]
        rows = np.repeat(np.arange(n), [len(i) for i, _ in feats])
        cols = np.concatenate([i for i, _ in feats]) if feats else np.zeros(0, dtype=np.int64)
        vals = np.concatenate([v for _, v in feats]).astype(np.float64) if feats else np.zeros(0)
        df = np.bincount(cols, minlength=DIM)
        idf = (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)
        vals = vals * idf[cols]
        vals /= np.sqrt(np.bincount(rows, weights=vals * vals, minlength=n))[rows]
        known = ~np.isnan(scores)
        y = np.nan_to_num(scores)
        w = np.zeros((m, DIM))
        base = np.clip(np.nanmean(scores, axis=0), 1e-3, 1 - 1e-3)
        bias = np.log(base / (1 - base)) if offset is None else np.zeros(m)  # an intercept, not regularised
        mom, sq = np.zeros_like(w), np.zeros_like(w)
        mb, sb = np.zeros(m), np.zeros(m)
        counts = np.maximum(known.sum(axis=0), 1)
        for t in range(1, steps + 1):
            for j in range(m):
                z = np.bincount(rows, weights=vals * w[j, cols], minlength=n) + bias[j]
                if offset is not None:
                    z += offset[:, j]
                g = (1.0 / (1.0 + np.exp(-z)) - y[:, j]) * known[:, j] / counts[j]
                gw = np.bincount(cols, weights=vals * g[rows], minlength=DIM) + l2 / counts[j] * w[j]
                gb = g.sum()
                step, mom[j], sq[j] = adam(gw, mom[j], sq[j], t, lr)
                w[j] -= step
                step, mb[j], sb[j] = adam(gb, mb[j], sb[j], t, lr)
                bias[j] -= step
        head = None
        if topics is not None:
            labels, topic_l2, blend = topics
            head = TopicHead.train(rows, cols, vals, labels, scores, steps=steps, lr=lr, l2=topic_l2, blend=blend)
        return cls(
            list(models), w.astype(np.float32), dict(meta or {}), idf=idf, bias=bias.astype(np.float32), topics=head
        )

    def _features(self, prompt: str) -> tuple[np.ndarray, np.ndarray]:
        import numpy as np

        idx, val = self.featurize(prompt)
        if self.idf is not None:
            val = val * self.idf.take(idx)
            val /= np.sqrt((val * val).sum())
        return idx, val

    def parts(self, prompt: str) -> tuple[np.ndarray, np.ndarray | None]:
        """[n_models] each: the word model's predicted quality, and the topic head's (None: no head)."""
        import numpy as np

        idx, val = self._features(prompt)
        z = val @ self.by_feature.take(idx, axis=0)
        if self.bias is not None:
            z += self.bias
        return 1.0 / (1.0 + np.exp(-z)), None if self.topics is None else self.topics.quality_of(idx, val)

    def predict(self, prompt: str) -> dict[str, float]:
        p, topic = self.parts(prompt)
        if topic is not None and self.topics is not None:
            p = (1.0 - self.topics.blend) * p + self.topics.blend * topic
        return dict(zip(self.models, p.tolist()))

    def predict_many(self, prompts: Iterable[str]) -> np.ndarray:
        import numpy as np

        return np.array([[p for p in self.predict(t).values()] for t in prompts])

    def to_arrays(self) -> dict[str, Any]:
        """The predictor as named arrays (``policies.loaders.save_predictor`` writes them as .npz)."""
        import numpy as np

        out = {
            "weights": self.weights.astype(np.float16),
            "models": np.array(self.models),
            "meta": np.array(json.dumps(self.meta)),
        }
        if self.idf is not None:
            out["idf"] = self.idf.astype(np.float16)
        if self.bias is not None:
            out["bias"] = self.bias.astype(np.float32)
        if self.topics is not None:
            out.update(self.topics.to_arrays())
        return out

    @classmethod
    def from_arrays(cls, f: Mapping[str, Any]) -> "QualityPredictor":
        import numpy as np

        idf = f["idf"].astype(np.float32) if "idf" in f else None
        bias = f["bias"].astype(np.float32) if "bias" in f else None
        return cls(
            [str(m) for m in f["models"]],
            f["weights"].astype(np.float32),
            json.loads(str(f["meta"])),
            idf=idf,
            bias=bias,
            topics=TopicHead.from_arrays(f),
        )
