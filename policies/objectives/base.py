"""What every objective is: a pydantic model registered under its config ``type`` that orders the
feasible candidates of one request. ``choose`` is pure: predicted quality, expected cost and the
request's features come in through ``Context``; the order, the rule and the reason go out as a
``Choice``. Offline evaluation replays objectives through the same ``PolicyRouter.decide``."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

from pydantic import BaseModel, ConfigDict

from policies.draws import Draws
from policies.kinds import Registry

if TYPE_CHECKING:
    from policies.decide import RequestFeatures

INF = float("inf")


@dataclass
class Context:
    """One request's decision inputs: the candidates left after the constraints (``names``), their
    predicted quality and expected cost (inf: unpriced) and expected output tokens."""

    policy: str
    features: "RequestFeatures"
    names: list[str]
    quality: dict[str, float]
    cost: dict[str, float]
    outs: dict[str, float]
    rng: Draws
    default_output_tokens: int

    @cached_property
    def by_cost(self) -> list[str]:
        return sorted(self.names, key=lambda n: (self.cost[n], -self.quality[n]))

    @cached_property
    def by_quality(self) -> list[str]:
        return sorted(self.names, key=lambda n: (-self.quality[n], self.cost[n]))

    def fmt(self, n: str) -> str:
        c = self.cost[n]
        return f"{n} q={self.quality[n]:.2f} ${c:.6f}" if c != INF else f"{n} q={self.quality[n]:.2f} unpriced"


@dataclass
class Choice:
    """The candidates in the order to try them, the rule that ordered them (``kind(setting)``, the
    ledger's ``rule``), why, and, for a split, the arm drawn; for a cascade, its steps and check."""

    order: list[str]
    rule: str
    reason: str
    arm: str | None = None
    cascade: dict[str, Any] | None = field(default=None)


class ObjectiveKind(BaseModel):
    """Base of every objective. Subclasses declare ``type: Literal[...]``, their settings and ``choose``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str

    # an objective that chooses among the policy's candidates (named cascades among them); one that
    # names its own models (split, fixed, cascade, gain) takes its candidates from them
    chooses: ClassVar[bool] = True
    # an objective whose choice rests on each candidate's predicted quality (a fixed model, a split by
    # share and a cascade's steps do not; they read it only to order fallbacks)
    reads_quality: ClassVar[bool] = True

    @property
    def models(self) -> list[str]:
        """The models the objective names itself (none for those that choose among the candidates)."""
        return []

    def choose(self, ctx: Context) -> Choice:
        raise NotImplementedError

    def rest(self, ctx: Context, first: Sequence[str]) -> list[str]:
        """The other candidates, best predicted quality first (what fallbacks try after ``first``)."""
        return [n for n in ctx.by_quality if n not in first]


OBJECTIVES: Registry[ObjectiveKind] = Registry("objective")
