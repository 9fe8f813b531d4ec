"""``cascade``: the steps answer in turn, cheapest first; the check decides whether an answer stands
or the next step is asked. ``CascadeSpec`` is also the shape of a policy's named cascades (a
candidate of an objective that chooses among candidates). The gateway runs it
(``router.strategies.cascade``); the evaluator replays it on recorded answers."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from policies.checks import CHECKS, CheckKind
from policies.objectives.base import Choice, Context, ObjectiveKind


@CHECKS.holds
class CascadeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: list[str] = Field(min_length=2, description="cheapest first; the last step is never checked")
    check: Annotated[CheckKind, CHECKS.field]

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys([*self.steps, *self.check.models]))

    def plan(self, steps: list[str] | None = None, name: str | None = None) -> dict[str, Any]:
        """What a decision that runs this cascade carries: its steps, its check (a ``CheckKind``) and,
        for a named cascade, its name."""
        return {**({"name": name} if name else {}), "steps": list(steps or self.steps), "check": self.check}


@CHECKS.holds
class Cascade(CascadeSpec, ObjectiveKind):
    type: Literal["cascade"]

    chooses = False
    reads_quality = False

    def choose(self, ctx: Context) -> Choice:
        steps = [s for s in self.steps if s in ctx.names]
        if ctx.features.stream or len(steps) < 2:  # a stream cannot be checked before it is sent: the last step
            last = steps[-1] if steps else ctx.by_quality[0]
            return Choice([last] + self.rest(ctx, [last]), "cascade", f"{last}; streams skip the cascade")
        check: CheckKind = self.check
        return Choice(
            steps, "cascade", f"start {steps[0]}, escalate on a failed {check.type} check", cascade=self.plan(steps)
        )
