"""``best_under``: the best predicted quality among candidates expected to cost at most a cap."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from policies.objectives.base import Choice, Context, ObjectiveKind


class BestUnder(ObjectiveKind):
    type: Literal["best_under"]
    max_cost_usd: float = Field(gt=0, description="expected cost cap per request")

    def choose(self, ctx: Context) -> Choice:
        ok = [n for n in ctx.by_quality if ctx.cost[n] <= self.max_cost_usd]
        order = ok + [n for n in ctx.by_cost if n not in ok]
        rule = f"best_under(${self.max_cost_usd:g})"
        if not ok:
            return Choice(order, rule, f"none under the cap; cheapest: {ctx.fmt(order[0])}")
        return Choice(order, rule, f"{ctx.fmt(order[0])}; best of {len(ok)} under the cap")
