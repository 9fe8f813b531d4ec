"""What a routing decision draws its random numbers from, and a seeded source built only when drawn from.

A decision draws only when its policy learns or splits: the bandit (on unless a policy's `quality.bandit`
turns it off) draws once to choose whether to sample, and again for each sample; a split with no sticky
unit draws its arm. A policy with neither draws nothing (the shipped RouteLLM and RouterBench
policies, for example). The gateway seeds each decision from its request id, so a decision can be
replayed, and seeding ``random.Random`` from a string (SHA-512 of it, then a 624-word state) costs
about 6 us: ``SeededDraws`` seeds on the first draw instead, with the same numbers in the same order
as ``random.Random(seed)``.
"""

from __future__ import annotations

import random
from typing import Protocol


class Draws(Protocol):
    """The two draws a decision takes (``random.Random`` has both)."""

    def random(self) -> float: ...

    def betavariate(self, alpha: float, beta: float) -> float: ...


class SeededDraws:
    """``random.Random(seed)``, made on the first draw."""

    __slots__ = ("seed", "_rng")

    def __init__(self, seed: str | int) -> None:
        self.seed = seed
        self._rng: random.Random | None = None

    @property
    def seeded(self) -> bool:
        """Whether anything was drawn (the generator exists)."""
        return self._rng is not None

    def _source(self) -> random.Random:
        if self._rng is None:
            self._rng = random.Random(self.seed)
        return self._rng

    def random(self) -> float:
        return self._source().random()

    def betavariate(self, alpha: float, beta: float) -> float:
        return self._source().betavariate(alpha, beta)
