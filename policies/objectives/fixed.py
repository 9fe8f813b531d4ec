"""``fixed``: one model (the best remaining when it is unavailable)."""

from __future__ import annotations

from typing import Literal

from policies.objectives.base import Choice, Context, ObjectiveKind


class Fixed(ObjectiveKind):
    type: Literal["fixed"]
    model: str

    chooses = False
    reads_quality = False

    @property
    def models(self) -> list[str]:
        return [self.model]

    def choose(self, ctx: Context) -> Choice:
        first = self.model if self.model in ctx.names else ctx.by_quality[0]
        return Choice([first] + self.rest(ctx, [first]), "fixed", f"fixed {first}")
