"""``utility``: maximise predicted quality minus lambda times expected cost."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from policies.objectives.base import Choice, Context, ObjectiveKind


class Utility(ObjectiveKind):
    type: Literal["utility"]
    lambda_: float = Field(alias="lambda", ge=0, description="quality points given up per USD saved")

    def choose(self, ctx: Context) -> Choice:
        lam = self.lambda_
        score = {n: ctx.quality[n] - lam * ctx.cost[n] for n in ctx.names}
        order = sorted(ctx.names, key=lambda n: -score[n])
        return Choice(order, f"utility(lambda={lam:g})", f"{ctx.fmt(order[0])}; max quality - {lam:g} x cost")
