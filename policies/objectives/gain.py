"""``gain``: a two-model router: the strong model when its predicted quality gain over the weak one
is large enough, else the weak one."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from policies.objectives.base import Choice, Context, ObjectiveKind


class Gain(ObjectiveKind):
    type: Literal["gain"]
    strong: str = Field(description="the model called when its predicted quality gain is large enough")
    weak: str = Field(description="the model called otherwise")
    min_gain: float = Field(
        ge=-1,
        le=1,
        description="call the strong model when its predicted quality exceeds the weak one's by at least this",
    )

    chooses = False

    @property
    def models(self) -> list[str]:
        return [self.weak, self.strong]

    def choose(self, ctx: Context) -> Choice:
        if self.strong not in ctx.names or self.weak not in ctx.names:
            gone = self.strong if self.strong not in ctx.names else self.weak
            best = ctx.by_quality
            return Choice(best, "gain", f"{gone} unavailable; best remaining: {ctx.fmt(best[0])}")
        gain = ctx.quality[self.strong] - ctx.quality[self.weak]
        first, second = (self.strong, self.weak) if gain >= self.min_gain else (self.weak, self.strong)
        return Choice(
            [first, second] + self.rest(ctx, (first, second)),
            f"gain({self.min_gain:g})",
            f"{ctx.fmt(first)}; predicted gain of {self.strong} {gain:+.3f} "
            f"{'>=' if first == self.strong else '<'} {self.min_gain:g}",
        )
