"""``split``: arms drawn in proportion to their weights; a unit (user, key, tenant) keeps its arm."""

from __future__ import annotations

from itertools import accumulate
from typing import Literal
from zlib import crc32

from pydantic import BaseModel, ConfigDict, Field

from policies.objectives.base import Choice, Context, ObjectiveKind


class Arm(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    weight: float = Field(gt=0)


class Split(ObjectiveKind):
    type: Literal["split"]
    arms: list[Arm] = Field(min_length=1)
    assign_by: Literal["user", "key", "tenant", "request"] = Field(
        default="user",
        description="what keeps its arm: the request's user field (else its API key), the API key, "
        "the tenant, or nothing (each request drawn anew)",
    )

    chooses = False
    reads_quality = False

    @property
    def models(self) -> list[str]:
        return [a.model for a in self.arms]

    def choose(self, ctx: Context) -> Choice:
        arms = [a for a in self.arms if a.model in ctx.names]
        if not arms:
            return Choice(ctx.by_quality, "split", "no arm available; best remaining")
        unit_of = ctx.features.unit
        unit = (
            None
            if self.assign_by == "request"
            else (unit_of.get(self.assign_by) or (unit_of.get("key") if self.assign_by == "user" else None))
        )
        # a unit keeps its arm: a stable hash of it picks the arm in proportion to the weights
        draw = crc32(f"{ctx.policy}\x1f{unit}".encode()) / 2**32 if unit else ctx.rng.random()
        total = sum(a.weight for a in arms)
        pick = next(
            (a.model for a, edge in zip(arms, accumulate(a.weight / total for a in arms)) if draw < edge),
            arms[-1].model,
        )
        by = f" (by {self.assign_by})" if unit else ""
        return Choice([pick] + self.rest(ctx, [pick]), "split", f"arm {pick}{by}", arm=pick)
