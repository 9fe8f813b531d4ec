"""The operator's margin: what a plan charges for some traffic, less what serving it cost.

One definition, used wherever a margin is shown (router.analytics.insights for the Savings view and
``/v1/insights/savings``; tests recompute the usage API's, the report's and FOCUS's figures from the
ledger's lines with it):

- ``booked``: the margin the ledger recorded, each request charged under its tenant's own plan.
- ``under_plan``: the margin had ``plan`` priced the same traffic. A plan prices from the API list
  cost (for a self-hosted model, its catalog price), while the operator's cost of a self-hosted
  model is its GPU time, so a traffic group carries both figures.

Unpriced traffic (no list price known) is counted, never folded in as $0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

from pricing.plans import Plan
from pricing.usage import Usage


@dataclass(frozen=True)
class Traffic:
    """Some requests' calls to one model under one alias (one cost line, or a group of them)."""

    alias: str  # what the client asked for (plans may fix a price per alias)
    usage: Usage
    list_cost: float | None  # at the API's list price: what a plan marks up; None: unpriced
    cost: float | None  # what serving it cost the operator (self-hosted: GPU time); None: unpriced
    charge: float | None = None  # what the ledger charged (its tenant's own plan); None: unpriced
    requests: int = 1


@dataclass
class Margin:
    requests: int = 0  # priced requests the figures cover
    unpriced: int = 0  # requests left out: their charge or cost is unknown
    charges: list[float] = field(default_factory=list, repr=False)
    costs: list[float] = field(default_factory=list, repr=False)

    @property
    def charge_usd(self) -> float:
        return math.fsum(self.charges)

    @property
    def cost_usd(self) -> float:
        return math.fsum(self.costs)

    @property
    def margin_usd(self) -> float:
        return math.fsum(self.charges) - math.fsum(self.costs)

    def add(self, charge: float | None, cost: float | None, requests: int) -> None:
        if charge is None or cost is None:
            self.unpriced += requests
            return
        self.requests += requests
        self.charges.append(charge)
        self.costs.append(cost)


def booked(traffic: Iterable[Traffic]) -> Margin:
    """The margin the ledger recorded: its charges less its costs."""
    m = Margin()
    for t in traffic:
        m.add(t.charge, t.cost, t.requests)
    return m


def under_plan(plan: Plan, traffic: Iterable[Traffic]) -> Margin:
    """The margin had ``plan`` charged for this traffic."""
    m = Margin()
    for t in traffic:
        m.add(plan.charge(t.alias, t.usage, t.list_cost) if t.cost is not None else None, t.cost, t.requests)
    return m
