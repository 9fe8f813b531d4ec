"""``cheapest_above``: the cheapest candidate predicted to reach the quality target."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from policies.objectives.base import Choice, Context, ObjectiveKind


class CheapestAbove(ObjectiveKind):
    type: Literal["cheapest_above"]
    target: float = Field(ge=0, le=1, description="predicted quality the answer must reach")

    def choose(self, ctx: Context) -> Choice:
        ok = [n for n in ctx.by_cost if ctx.quality[n] >= self.target]
        order = ok + self.rest(ctx, ok)
        rule = f"cheapest_above({self.target:.2f})"
        if not ok:
            return Choice(order, rule, f"none reaches {self.target:.2f}; best: {ctx.fmt(order[0])}")
        return Choice(order, rule, f"{ctx.fmt(order[0])}; cheapest of {len(ok)} at or above target")
