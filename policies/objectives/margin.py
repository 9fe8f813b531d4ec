"""``margin``: maximise the expected margin (the tenant's fixed price for this request minus each
candidate's expected cost) among candidates predicted to reach ``min_quality``. None reaching it:
the best quality among those that keep ``min_margin``, then the rest by margin."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from policies.objectives.base import Choice, Context, ObjectiveKind


class Margin(ObjectiveKind):
    type: Literal["margin"]
    min_quality: float = Field(ge=0, le=1, description="predicted quality a candidate must reach")
    min_margin: float = Field(
        default=0.0,
        description="when no candidate reaches min_quality: the best quality among "
        "those whose expected margin (USD) is at least this",
    )

    def choose(self, ctx: Context) -> Choice:
        f, q, names = ctx.features, ctx.quality, ctx.names
        rule = f"margin(q>={self.min_quality:.2f})"
        if f.sold_at is None:  # no fixed price: every candidate earns the same, so the margin is the saving
            revenue = {n: 0.0 for n in names}
            why = "no fixed price for this request: cheapest"
        else:
            p_in, p_out = f.sold_at
            default = min(f.max_tokens or 10**9, ctx.default_output_tokens)
            revenue = {n: p_in * f.prompt_tokens + p_out * ctx.outs.get(n, default) for n in names}
            why = "highest expected margin"
        margin = {n: revenue[n] - ctx.cost[n] for n in names}  # an unpriced candidate: -inf
        ok = sorted((n for n in names if q[n] >= self.min_quality), key=lambda n: (-margin[n], -q[n]))
        if ok:
            m = margin[ok[0]]
            shown = f" ${m:.6f}" if f.sold_at is not None and m != float("-inf") else ""
            return Choice(
                ok + self.rest(ctx, ok),
                rule,
                f"{ctx.fmt(ok[0])}; {why}{shown} of {len(ok)} at or above {self.min_quality:.2f}",
            )
        keep = [n for n in ctx.by_quality if f.sold_at is not None and margin[n] >= self.min_margin]
        order = keep + sorted((n for n in names if n not in keep), key=lambda n: (-margin[n], -q[n]))
        if keep:
            return Choice(
                order, rule, f"none reaches {self.min_quality:.2f}; best that keeps the margin: {ctx.fmt(order[0])}"
            )
        return Choice(order, rule, f"none reaches {self.min_quality:.2f}; highest margin: {ctx.fmt(order[0])}")
