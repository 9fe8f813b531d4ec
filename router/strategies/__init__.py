"""Execution strategies: how one planned, admitted request is served. Each is one class in its own
module (registered here by name); each adds its upstream calls to the request's exchange and never
settles money or writes the ledger itself (the exchange's close does, once)."""

from __future__ import annotations

from router.strategies.base import Strategy
from router.strategies.cascade import Cascade
from router.strategies.single import Single
from router.strategies.stream import Streamed

STRATEGIES: dict[str, type[Strategy]] = {s.name: s for s in (Single, Cascade, Streamed)}

__all__ = ["STRATEGIES", "Strategy", "Single", "Cascade", "Streamed"]
