"""A topic head for the quality predictor: what the prompt is about, and how each model does on that.

A softmax regression over the predictor's own (TF-IDF-weighted) prompt features learns which topic
a prompt belongs to from a topic label of the training rows (``--topic-field``; on RouteLLM's data
the MMLU subject). The label is a training target only: a routed prompt's topic is read from its
text. Each topic keeps each model's mean score on the training rows of that topic; a prompt's
topic quality is those means weighed by its predicted topic probabilities. The predictor blends it
with its own per-prompt quality. Word weights fit one prompt; the topic is shared by hundreds of
training rows, so its estimate is steadier (on MMLU it carries the subject's difficulty, which the
word model sees only through the words one question happens to use).

Only features seen in at least ``MIN_ROWS`` training prompts have weights, stored as a sorted key
array beside a [features, topics] table (float16 on disk), not topics x 2^18 floats.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from policies.adam import adam
from policies.features import DIM

if TYPE_CHECKING:
    import numpy as np

# how many training rows a topic's mean counts as, toward the mean over all rows (a topic seen
# a few times is not trusted to be as easy or as hard as those few rows say)
PRIOR_ROWS = 2.0
# a feature of fewer training prompts has no weight: one prompt's words say nothing about a topic
# beyond that prompt (and the head's table is a third of the size)
MIN_ROWS = 2


@dataclass
class TopicHead:
    topics: list[str]
    keys: np.ndarray  # [n_seen] sorted feature indices that have weights
    weights: np.ndarray  # [n_seen, n_topics]
    bias: np.ndarray  # [n_topics]
    quality: np.ndarray  # [n_topics, n_models]: each model's mean score on the topic's training rows
    blend: float  # the share of the topic quality in the predictor's quality

    # by feature index, its row of ``table``: the weights and one row of zeros for unseen features
    # (a 1 MB map: a lookup is one take, not a binary search per feature)
    row_of: np.ndarray = field(init=False, repr=False)
    table: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        import numpy as np

        self.row_of = np.full(DIM, len(self.keys), dtype=np.int32)
        self.row_of[self.keys] = np.arange(len(self.keys), dtype=np.int32)
        self.table = np.vstack([self.weights, np.zeros((1, self.weights.shape[1]), dtype=self.weights.dtype)])
        self.weights = self.table[:-1]  # a view: the weights are held once

    def probabilities(self, idx: np.ndarray, val: np.ndarray) -> np.ndarray:
        import numpy as np

        z = val @ self.table.take(self.row_of.take(idx), axis=0) + self.bias
        z = np.exp(z - z.max())
        probs: np.ndarray = z / z.sum()
        return probs

    def quality_of(self, idx: np.ndarray, val: np.ndarray) -> np.ndarray:
        """[n_models]: each model's expected score on the prompt's topic."""
        quality: np.ndarray = self.probabilities(idx, val) @ self.quality
        return quality

    @classmethod
    def train(
        cls,
        rows: np.ndarray,
        cols: np.ndarray,
        vals: np.ndarray,
        labels: Sequence[str],
        scores: np.ndarray,
        *,
        steps: int,
        lr: float,
        l2: float,
        blend: float,
    ) -> "TopicHead":
        """``rows``/``cols``/``vals``: the training prompts' feature vectors (COO, sorted by row,
        every row non-empty); ``scores``: [n_prompts, n_models], NaN where a model has no outcome.
        Full-batch Adam on the mean softmax log-loss plus ``l2`` / n x |w|^2 / 2."""
        import numpy as np

        n = len(labels)
        topics = sorted(set(labels))
        y = np.searchsorted(topics, labels)
        k = len(topics)
        df = np.bincount(cols)
        keep = (df.take(cols) >= MIN_ROWS) | (cols == 0)  # every row keeps its bias feature (index 0)
        rows, cols, vals = rows[keep], cols[keep], vals[keep]
        keys, ccols = np.unique(cols, return_inverse=True)
        vals32 = vals.astype(np.float32)
        row_starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        by_col = np.argsort(ccols, kind="stable")
        col_starts = np.flatnonzero(np.r_[True, ccols[by_col][1:] != ccols[by_col][:-1]])
        rows_by_col, vals_by_col = rows[by_col], vals32[by_col]
        counts = np.bincount(y, minlength=k)
        bias = np.log((counts + 1.0) / (n + k)).astype(np.float32)
        w = np.zeros((len(keys), k), dtype=np.float32)
        onehot = np.zeros((n, k), dtype=np.float32)
        onehot[np.arange(n), y] = 1.0
        mom, sq = np.zeros_like(w), np.zeros_like(w)
        for t in range(1, steps + 1):
            z = _gather_sum(vals32, ccols, row_starts, w) + bias
            z = np.exp(z - z.max(axis=1, keepdims=True))
            d = (z / z.sum(axis=1, keepdims=True) - onehot) / n
            g = _gather_sum(vals_by_col, rows_by_col, col_starts, d) + (l2 / n) * w
            step, mom, sq = adam(g, mom, sq, t, lr)
            w -= step
            bias -= lr * d.sum(axis=0)  # plain steps: the intercepts start at the topic shares
        known = ~np.isnan(scores)
        overall = np.nanmean(scores, axis=0)
        quality = np.empty((k, scores.shape[1]), dtype=np.float32)
        for j in range(k):
            sel = y == j
            total = np.where(known[sel], scores[sel], 0.0).sum(axis=0)
            quality[j] = (total + PRIOR_ROWS * overall) / (known[sel].sum(axis=0) + PRIOR_ROWS)
        return cls(topics, keys.astype(np.int64), w, bias, quality, blend)

    def to_arrays(self) -> dict[str, Any]:
        import numpy as np

        return {
            "topic_names": np.array(self.topics),
            "topic_keys": self.keys.astype(np.int32),
            "topic_weights": self.weights.astype(np.float16),
            "topic_bias": self.bias.astype(np.float32),
            "topic_quality": self.quality.astype(np.float32),
            "topic_blend": np.array(self.blend),
        }

    @classmethod
    def from_arrays(cls, f: Mapping[str, Any]) -> "TopicHead | None":
        import numpy as np

        if "topic_names" not in f:
            return None
        return cls(
            [str(t) for t in f["topic_names"]],
            f["topic_keys"].astype(np.int64),
            f["topic_weights"].astype(np.float32),
            f["topic_bias"].astype(np.float32),
            f["topic_quality"].astype(np.float32),
            float(f["topic_blend"]),
        )


def _gather_sum(vals: np.ndarray, gather: np.ndarray, starts: np.ndarray, table: np.ndarray) -> np.ndarray:
    """A sparse matrix (COO entries grouped at ``starts``, ``gather`` their other index) times a
    dense ``table``: per group, the sum of vals x table[gather]. In blocks of about 32k entries, so
    the gathered rows stay in cache (9x faster than one pass on the full training set)."""
    import numpy as np

    out = np.empty((len(starts), table.shape[1]), dtype=table.dtype)
    ends = np.r_[starts[1:], len(vals)]
    block = max(1, int(len(starts) * 32768 / max(len(vals), 1)))
    for a in range(0, len(starts), block):
        lo, hi = starts[a], ends[min(a + block, len(starts)) - 1]
        part = vals[lo:hi, None] * table.take(gather[lo:hi], axis=0)
        out[a : a + block] = np.add.reduceat(part, starts[a : a + block] - lo)
    return out
