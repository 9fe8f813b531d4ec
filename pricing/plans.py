"""Tenant plans: what a tenant is charged for a request.

- pass-through plus a markup: the API cost times (1 + markup);
- a fixed price per 1M tokens for an alias (e.g. ``auto``): the tenant pays the same whatever
  model routing picked, so routing savings become the operator's margin ("own the rails").
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from pricing.usage import Usage


class FixedPrice(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = "pass-through"
    markup: float = Field(default=0.0, ge=-1.0, description="0.2 = API cost + 20%")
    fixed: dict[str, FixedPrice] = Field(default_factory=dict, description="alias or model -> fixed price")

    def charge(self, requested: str, usage: Usage, api_cost: float | None) -> float | None:
        """The tenant's charge; None when it depends on an unknown (unpriced) API cost."""
        return self.charge_tokens(requested, usage.prompt_tokens, usage.completion_tokens, api_cost)

    def charge_tokens(self, requested: str, prompt: int, completion: int, api_cost: float | None) -> float | None:
        """``charge`` for a request of ``prompt`` and ``completion`` tokens (reasoning included)."""
        fixed = self.fixed.get(requested)
        if fixed is not None:
            return (prompt * fixed.input_per_mtok + completion * fixed.output_per_mtok) / 1e6
        if api_cost is None:
            return None
        return api_cost * (1.0 + self.markup)
