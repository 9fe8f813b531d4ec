"""One Adam step (Kingma and Ba, 2015; beta1 0.9, beta2 0.999), shared by the predictor's and the
topic head's full-batch training."""

from __future__ import annotations

from typing import Any


def adam(grad: Any, mom: Any, sq: Any, t: int, lr: float) -> tuple[Any, Any, Any]:
    """(the step to subtract, the new first moment, the new second moment) at step ``t`` (from 1),
    for arrays or numpy scalars alike."""
    import numpy as np

    mom = 0.9 * mom + 0.1 * grad
    sq = 0.999 * sq + 0.001 * grad * grad
    return lr * (mom / (1 - 0.9**t)) / (np.sqrt(sq / (1 - 0.999**t)) + 1e-8), mom, sq
