"""Rate limits and budgets: which rules apply to a request, admission and settlement.

Budgets reserve the request's worst-case charge before the upstream call (prompt tokens times a
safety factor plus the output bound, at the most expensive candidate's price) and settle to the
actual charge afterwards, so concurrent requests can never spend past a hard limit: overshoot is
zero as long as the upstream counts at most ``prompt_safety`` times our prompt estimate and
honours the output bound. Rate limits are fixed one-minute windows, global through Redis.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from router.auth import Principal
from router.config import BudgetRule, LimitsConfig, RateLimitRule
from router.errors import APIError, invalid_request
from router.metrics import Metrics
from router.state import NANO, BudgetReq, CounterReq, MemoryState, Settlement, StateStore

log = logging.getLogger("switchyard.limits")


@dataclass
class Ticket:
    """What one admission reserved, to be settled once the request ends."""

    store: StateStore
    budgets: list[tuple[BudgetRule, str, int]]  # rule, key, spent before (nano)
    reserve_nano: int
    token_keys: list[str]
    tokens_reserved: int
    headers: dict[str, str] = field(default_factory=dict)
    settled: bool = False


def _matches(rule_id: str, value: str | None) -> bool:
    return value is not None and (rule_id == "*" or rule_id == value)


def _duration(seconds: float) -> str:
    return f"{max(0.0, seconds):.3f}s".replace(".000s", "s")


class Limiter:
    def __init__(self, cfg: LimitsConfig, state: StateStore, metrics: Metrics):
        self.cfg = cfg
        self.state = state
        self.local = state if isinstance(state, MemoryState) else MemoryState()
        self.metrics = metrics
        self._pending: set[asyncio.Task[None]] = set()
        self._failing_open = False

    @property
    def active(self) -> bool:
        return bool(self.cfg.rate_limits or self.cfg.budgets or self.cfg.max_request_usd)

    @property
    def counts_tokens(self) -> bool:
        return bool(self.cfg.budgets or self.cfg.max_request_usd or any(r.tpm is not None for r in self.cfg.rate_limits))

    def _rules(self, who: Principal, requested: str) -> tuple[list[RateLimitRule], list[BudgetRule]]:
        ids = {"key": who.key_id, "tenant": who.tenant, "alias": requested}
        rates = [r for r in self.cfg.rate_limits if _matches(r.id, ids[r.scope])]
        budgets = [b for b in self.cfg.budgets if _matches(b.id, ids[b.scope])]
        return rates, budgets

    async def admit(self, who: Principal, requested: str, tokens: int, max_charge_usd: float | None) -> Ticket:
        """Admit or raise 429 (rate or budget) / 400 (per-request cap) / 503 (state down, fail closed)."""
        if self.cfg.max_request_usd is not None and max_charge_usd is not None and max_charge_usd > self.cfg.max_request_usd:
            raise invalid_request(
                f"This request could cost up to ${max_charge_usd:.4f}, above the per-request cap of "
                f"${self.cfg.max_request_usd:.4f}. Lower max_tokens or shorten the prompt.", param="max_tokens",
                code="request_cost_cap")
        rates, budget_rules = self._rules(who, requested)
        now = time.time()
        minute = int(now // 60)
        reset = (minute + 1) * 60 - now
        ids = {"key": who.key_id, "tenant": who.tenant}
        counters: list[CounterReq] = []
        kinds: list[tuple[str, int]] = []
        for r in rates:
            base = f"rl:{r.scope}:{ids[r.scope]}"
            if r.rpm is not None:
                counters.append(CounterReq(f"{base}:req:{minute}", r.rpm, 1, 70))
                kinds.append(("requests", r.rpm))
            if r.tpm is not None:
                counters.append(CounterReq(f"{base}:tok:{minute}", r.tpm, tokens, 70))
                kinds.append(("tokens", r.tpm))
        reserve = math.ceil((max_charge_usd or 0.0) * NANO)
        day = datetime.now(timezone.utc)
        budgets: list[BudgetReq] = []
        for b in budget_rules:
            period = f"{day.year:04d}-{day.month:02d}-{day.day:02d}" if b.period == "day" else f"{day.year:04d}-{day.month:02d}"
            scope_id = {"key": who.key_id, "tenant": who.tenant, "alias": requested}[b.scope]
            budgets.append(BudgetReq(f"bud:{b.scope}:{scope_id}:{period}", int(b.usd * NANO),
                                     reserve if not b.soft else 0, 2 * 86400 if b.period == "day" else 40 * 86400,
                                     hard=not b.soft))
        store = self.state
        try:
            result = await store.admit(counters, budgets)
        except Exception as exc:  # Redis unreachable or timing out
            self.metrics.state_errors.inc()
            if self.cfg.fail_mode == "closed":
                raise APIError(503, "Rate-limit and budget state is unavailable; try again shortly.",
                               type="api_error", code="state_unavailable") from None
            if not self._failing_open:  # once per outage, not once per request
                self._failing_open = True
                log.warning("shared state unavailable (%s); failing open with local limits until it answers",
                            type(exc).__name__)
            store = self.local
            result = await store.admit(counters, budgets)
        else:
            if self._failing_open:
                self._failing_open = False
                log.warning("shared state reachable again; limits and budgets are shared once more")
        if not result.ok:
            if result.failed_kind == "budget":
                b = budget_rules[result.failed_index or 0]
                self.metrics.budget_rejections.labels(b.scope, b.period).inc()
                raise APIError(429, f"Budget exhausted: the {b.period}ly {b.scope} budget of ${b.usd:.2f} has no room "
                               "for this request.", type="insufficient_quota", code="insufficient_quota")
            what, limit = kinds[result.failed_index or 0]
            self.metrics.rate_rejections.labels(what).inc()
            raise APIError(429, f"Rate limit reached: {limit} {what} per minute. Retry after {math.ceil(reset)}s.",
                           type="requests" if what == "requests" else "tokens", code="rate_limit_exceeded",
                           headers={"retry-after": str(math.ceil(reset)), **self._headers(kinds, [limit + 1] * len(kinds), reset)})
        headers = self._headers(kinds, result.counters, reset)
        token_keys = [c.key for c, (what, _) in zip(counters, kinds) if what == "tokens"]
        return Ticket(store, [(b, req.key, spent) for b, req, spent in zip(budget_rules, budgets, result.spent_nano)],
                      reserve, token_keys, tokens, headers)

    @staticmethod
    def _headers(kinds: list[tuple[str, int]], values: list[int], reset: float) -> dict[str, str]:
        out: dict[str, str] = {}
        for what in ("requests", "tokens"):
            pairs = [(limit, limit - v) for (w, limit), v in zip(kinds, values) if w == what]
            if pairs:
                limit, remaining = min(pairs, key=lambda p: p[1])
                out[f"x-ratelimit-limit-{what}"] = str(limit)
                out[f"x-ratelimit-remaining-{what}"] = str(max(0, remaining))
                out[f"x-ratelimit-reset-{what}"] = _duration(reset)
        return out

    def settle(self, ticket: Ticket, charge_usd: float | None, tokens: int) -> None:
        """Settle in the background (off the response path); ``drain`` waits for all of them."""
        if ticket.settled:
            return
        ticket.settled = True
        actual = math.ceil((charge_usd or 0.0) * NANO)
        refund = max(0, ticket.tokens_reserved - tokens)
        for rule, _, spent in ticket.budgets:
            if spent + actual > rule.usd * NANO >= spent:
                self.metrics.budget_alerts.labels(rule.scope, rule.period, "soft" if rule.soft else "hard").inc()
                log.warning("budget reached: %s %s %s budget of $%.2f", rule.scope, rule.id, rule.period, rule.usd)
        refunds = [(k, refund) for k in ticket.token_keys] if refund else []
        if not ticket.budgets and not refunds:
            return
        task = asyncio.get_running_loop().create_task(self._settle(ticket, actual, refunds))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _settle(self, ticket: Ticket, actual: int, refunds: list[tuple[str, int]]) -> None:
        # soft budgets reserved nothing: they settle with a reserve of 0
        hard = [k for (rule, k, _) in ticket.budgets if not rule.soft]
        soft = [k for (rule, k, _) in ticket.budgets if rule.soft]
        for _attempt in range(3):
            try:
                if hard or refunds:
                    await ticket.store.settle(Settlement(hard, ticket.reserve_nano, actual, refunds))
                if soft:
                    await ticket.store.settle(Settlement(soft, 0, actual, []))
                return
            except Exception:  # noqa: BLE001 - Redis blip: retry, then account locally
                await asyncio.sleep(0.2)
        self.metrics.state_errors.inc()
        log.warning("could not settle a budget reservation in shared state; it expires with its period")

    async def drain(self) -> None:
        if self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def aclose(self) -> None:
        await self.drain()
        await self.state.aclose()

    def describe(self) -> dict[str, Any]:
        return {"rate_limits": len(self.cfg.rate_limits), "budgets": len(self.cfg.budgets),
                "fail_mode": self.cfg.fail_mode}
