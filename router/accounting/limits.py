"""Rate limits and budgets: which rules apply to a request, admission, settlement, reconciliation.

Budgets reserve the request's worst-case charge before the upstream call (prompt tokens times a
safety factor plus the output bound and any reasoning allowance, at the dearest candidate's price)
and settle to the actual charge afterwards, so concurrent requests never spend past a hard limit.
The bound that remains: one request's excess beyond its own reservation, when an upstream counts
more than ``prompt_safety`` times our prompt estimate or bills beyond the output bound it was given.

How budgets stay equal to the ledger (leases, idempotent settlement, rebuilds, reconciliation,
failing open): router/accounting/budgets.py.
Rate limits are fixed one-minute windows, global through Redis.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any, Callable

from router.auth import Principal
from router.config_sections import BudgetRule, LimitsConfig
from router.errors import APIError, invalid_request
from router.metrics import Metrics
from router.accounting.budgets import ADVERB, BudgetKey, BudgetLedger, BudgetReconciler, Flushable, Ticket
from router.accounting.rules import Rules
from router.accounting.state import NANO, BudgetReq, CounterReq, MemoryState, Settlement, StateStore

log = logging.getLogger("switchyard.limits")


def _duration(seconds: float) -> str:
    return f"{max(0.0, seconds):.3f}s".replace(".000s", "s")


class Limiter(BudgetReconciler):
    def __init__(
        self,
        cfg: LimitsConfig,
        state: StateStore,
        metrics: Metrics,
        *,
        ledger: BudgetLedger | None = None,
        writer: Flushable | None = None,
        flush_interval: float = 0.2,
    ):
        self.cfg = cfg
        self.state = state
        self.local = state if isinstance(state, MemoryState) else MemoryState()
        self.metrics = metrics
        self.ledger = ledger
        self.writer = writer
        # before rebuilding a shared key, wait for every replica's ledger batch in flight to land
        self.rebuild_grace = 2 * flush_interval + 0.1 if state.shared else 0.0
        self._pending: set[asyncio.Task[None]] = set()
        self._open: dict[str, Ticket] = {}  # admitted, not yet settled in the state: their leases are renewed
        self._active: dict[str, BudgetKey] = {}  # budget keys this process used this period: reconciled
        self._room: dict[str, int] = {}  # nano-dollars each budget key had left when the shared state last said
        self._rebuilding: dict[str, asyncio.Lock] = {}
        self._keys: dict[tuple[int, str, int], BudgetKey] = {}
        self._failing_open = False
        # limits set on keys issued over HTTP (router.ledger.keys): whether any key has them
        self.key_rates = self.key_budgets = self.key_tokens = False
        self._loops: list[asyncio.Task[None]] = []
        self._closing = False
        self.alerter: Any = None  # router.accounting.alerts.Alerter: budget thresholds and forecasts to webhooks
        self.rules = Rules(cfg)

    @property
    def active(self) -> bool:
        return bool(
            self.cfg.rate_limits or self.cfg.budgets or self.cfg.max_request_usd or self.key_rates or self.key_budgets
        )

    @property
    def counts_tokens(self) -> bool:
        return bool(
            self.cfg.budgets
            or self.cfg.max_request_usd
            or self.key_budgets
            or self.key_tokens
            or any(r.tpm is not None for r in self.cfg.rate_limits)
        )

    def key_limits(self, rates: bool, budgets: bool, tokens: bool) -> None:
        """Whether any key issued over HTTP carries its own rate limits, budget, token limit."""
        self.key_rates, self.key_budgets, self.key_tokens = rates, budgets, tokens
        if budgets:
            self.start()

    def start(self) -> None:
        if (self.cfg.budgets or self.key_budgets) and not self._loops:
            self._loops = [
                asyncio.create_task(self._renew_loop(), name="budget-leases"),
                asyncio.create_task(self._reconcile_loop(), name="budget-reconcile"),
            ]

    def budget_keys(
        self,
        who: Principal,
        requested: str,
        now: float,
        attrs: Any = None,
        budgets: list[tuple[BudgetRule, str]] | None = None,
    ) -> list[BudgetKey]:
        """``budgets``: the rules that apply, when the caller has them (``Rules.applying``)."""
        day = int(now // 86400)  # UTC days: a key is built once per rule, id and day, then remembered
        out = []
        for i, (b, scope_id) in enumerate(
            self.rules.applying(who, requested, attrs)[1] if budgets is None else budgets
        ):
            cached = self._keys.get((i, scope_id, day))
            if cached is None or cached.rule is not b:
                if len(self._keys) > 100_000:
                    self._keys.clear()
                cached = self._keys[(i, scope_id, day)] = BudgetKey.of(b, scope_id, now)
            out.append(cached)
        return out

    async def admit(
        self,
        who: Principal,
        requested: str,
        tokens: int,
        max_charge_usd: float | None,
        *,
        request_id: str,
        now: float | None = None,
        attrs: Any = None,
        exact: Callable[[], tuple[int, float]] | None = None,
    ) -> Ticket:
        """Admit or raise 429 (rate or budget) / 400 (per-request cap) / 503 (state down, fail closed).
        ``now``: the request's start (UNIX seconds), which also dates its ledger record. ``exact``: when
        ``tokens`` and ``max_charge_usd`` bound the prompt by its bytes, the figures by its count, asked
        for only when the bound would be refused: nobody is refused for the bound."""
        if exact is not None and self._over_cap(max_charge_usd):
            tokens, max_charge_usd = exact()  # over the cap by the bound: the count decides
            exact = None
        if self._over_cap(max_charge_usd):
            raise invalid_request(
                f"This request could cost up to ${max_charge_usd:.4f}, above the per-request cap of "
                f"${self.cfg.max_request_usd:.4f}. Lower max_tokens or shorten the prompt.",
                param="max_tokens",
                code="request_cost_cap",
            )
        now = time.time() if now is None else now
        plan = self.rules.plan(who, requested, attrs)
        minute = int(now // 60)
        reset = (minute + 1) * 60 - now
        counters, kinds = plan.counters(minute, tokens), plan.kinds
        reserve = math.ceil((max_charge_usd or 0.0) * NANO)
        keys = self.budget_keys(who, requested, now, attrs, plan.budgets)
        budgets = [
            BudgetReq(k.key, int(k.rule.usd * NANO), 0 if k.rule.soft else reserve, k.ttl, hard=not k.rule.soft)
            for k in keys
        ]
        store = self.state
        try:
            result = await self._admit(store, request_id, counters, budgets, keys, now)
        except Exception as exc:  # Redis (or, rebuilding a budget, the ledger) unreachable or timing out
            self.metrics.state_errors.inc()
            if self.cfg.fail_mode == "closed" or store is self.local:
                raise APIError(
                    503,
                    "Rate-limit and budget state is unavailable; try again shortly.",
                    type="api_error",
                    code="state_unavailable",
                ) from None
            if not self._failing_open:  # once per outage, not once per request
                self._failing_open = True
                self.local.forget_budgets()  # this outage starts from what the shared state last said
                log.warning(
                    "shared state unavailable (%s); failing open with local limits (%.0f%% of each budget's "
                    "remaining room) until it answers",
                    type(exc).__name__,
                    100 * self.cfg.fail_open_share,
                )
            store = self.local
            result = await self._admit(store, request_id, counters, budgets, keys, now)
        else:
            if self._failing_open:
                self._failing_open = False
                log.warning("shared state reachable again; limits and budgets are shared once more")
            for k, used in zip(keys, result.used_nano):
                self._room[k.key] = int(k.rule.usd * NANO) - used
        if not result.ok:
            if exact is not None:  # refused by the bound: decide again by the count (a refusal changed nothing)
                tokens, max_charge_usd = exact()
                return await self.admit(
                    who, requested, tokens, max_charge_usd, request_id=request_id, now=now, attrs=attrs
                )
            raise self._refusal(result, keys, kinds, reset, now)
        headers = self._headers(kinds, result.counters, reset)
        token_keys = [c.key for c, (what, _) in zip(counters, kinds) if what == "tokens"]
        ticket = Ticket(request_id, store, list(zip(keys, result.spent_nano)), reserve, token_keys, tokens, headers)
        for k in keys:
            if k.key not in self._active:
                self._active[k.key] = k
        if keys and reserve:
            self._open[request_id] = ticket
        return ticket

    def _over_cap(self, charge_usd: float | None) -> bool:
        cap = self.cfg.max_request_usd
        return cap is not None and charge_usd is not None and charge_usd > cap

    def _refusal(
        self, result: Any, keys: list[BudgetKey], kinds: list[tuple[str, int]], reset: float, now: float
    ) -> APIError:
        """The 429 for an admission the state refused: a budget without room, or a rate limit reached."""
        if result.failed_kind == "budget":
            b = keys[result.failed_index or 0].rule
            self.metrics.budget_rejections.labels(b.scope, b.period).inc()
            if self.alerter is not None:
                self.alerter.exhausted(keys[result.failed_index or 0], now)
            return APIError(
                429,
                f"Budget exhausted: the {ADVERB[b.period]} {b.scope} budget of ${b.usd:.2f} has no room "
                "for this request.",
                type="insufficient_quota",
                code="insufficient_quota",
            )
        what, limit = kinds[result.failed_index or 0]
        self.metrics.rate_rejections.labels(what).inc()
        return APIError(
            429,
            f"Rate limit reached: {limit} {what} per minute. Retry after {math.ceil(reset)}s.",
            type="requests" if what == "requests" else "tokens",
            code="rate_limit_exceeded",
            headers={"retry-after": str(math.ceil(reset)), **self._headers(kinds, [limit + 1] * len(kinds), reset)},
        )

    async def _admit(
        self,
        store: StateStore,
        request_id: str,
        counters: list[CounterReq],
        budgets: list[BudgetReq],
        keys: list[BudgetKey],
        now: float,
    ) -> Any:
        """One admission; a budget key the store does not hold is built first (from the ledger, or for
        the local store during an outage, from the room last seen), then admission runs again."""
        for _ in range(len(budgets) + 2):
            result = await store.admit(request_id, counters, budgets, now, self.cfg.reservation_lease)
            if result.failed_kind != "rebuild":
                return result
            key = keys[result.failed_index or 0]
            if store is self.local and self._failing_open:
                await self._seed_local(key)
            else:
                await self.rebuild(key, store)
        raise RuntimeError("a budget key could not be rebuilt")

    @staticmethod
    def _headers(kinds: list[tuple[str, int]], values: list[int], reset: float) -> dict[str, str]:
        """OpenAI's x-ratelimit-* headers: for requests and for tokens, the counter nearest its limit."""
        tightest: dict[str, tuple[int, int]] = {}
        for (what, limit), v in zip(kinds, values):
            held = tightest.get(what)
            if held is None or limit - v < held[1]:
                tightest[what] = (limit, limit - v)
        out: dict[str, str] = {}
        if tightest:
            resets = _duration(reset)
            for what in ("requests", "tokens"):
                if what in tightest:
                    limit, remaining = tightest[what]
                    out[f"x-ratelimit-limit-{what}"] = str(limit)
                    out[f"x-ratelimit-remaining-{what}"] = str(max(0, remaining))
                    out[f"x-ratelimit-reset-{what}"] = resets
        return out

    def settle(self, ticket: Ticket, charge_usd: float | None, tokens: int) -> None:
        """Settle in the background (off the response path), exactly once; ``drain`` waits for all."""
        if ticket.settled:
            return
        ticket.settled = True
        actual = math.ceil((charge_usd or 0.0) * NANO)
        refund = max(0, ticket.tokens_reserved - tokens)
        for key, spent in ticket.budgets:
            rule = key.rule
            if self.alerter is not None:
                self.alerter.observe(key, spent + actual, time.time())
            if spent + actual > rule.usd * NANO >= spent:
                self.metrics.budget_alerts.labels(rule.scope, rule.period, "soft" if rule.soft else "hard").inc()
                log.warning("budget reached: %s %s %s budget of $%.2f", rule.scope, key.scope_id, rule.period, rule.usd)
        refunds = [(k, refund) for k in ticket.token_keys] if refund else []
        if not ticket.budgets and not refunds:
            self._open.pop(ticket.request_id, None)
            return
        s = Settlement(
            ticket.request_id,
            [k.key for k, _ in ticket.budgets],
            actual,
            refunds,
            ttl=max((k.ttl for k, _ in ticket.budgets), default=86400),
        )
        stores = [ticket.store] if ticket.store is self.state else [ticket.store, self.state]
        for store in stores:  # admitted locally during an outage: the shared state learns of it too
            if isinstance(store, MemoryState):  # in process: settled in place (no task, no retry)
                store.settle_now(s, time.time())
                if store is ticket.store:
                    self._open.pop(ticket.request_id, None)
                continue
            task = asyncio.get_running_loop().create_task(self._settle(ticket, store, s))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _settle(self, ticket: Ticket, store: StateStore, s: Settlement) -> None:
        """Retry until the state takes it: settlement is idempotent by request id."""
        delay, warned = 0.05, False
        while True:
            try:
                await store.settle(s, time.time())
                break
            except Exception:  # noqa: BLE001 - Redis blip or outage: retry with backoff
                self.metrics.state_errors.inc()
                if not warned:
                    warned = True
                    log.warning("could not settle a budget in shared state; retrying until it answers")
                if self._closing:
                    log.warning(
                        "shutting down with a budget settlement undelivered; its reservation lapses "
                        "with its lease and the ledger reconciles its spend"
                    )
                    break
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        if store is ticket.store:
            self._open.pop(ticket.request_id, None)

    async def drain(self, timeout: float | None = None) -> None:
        if self._pending:
            await asyncio.wait(list(self._pending), timeout=timeout)

    async def aclose(self) -> None:
        for task in self._loops:
            task.cancel()
        await self.drain(timeout=5.0)
        self._closing = True
        await self.drain(timeout=2.0)
        await self.state.aclose()

    def describe(self) -> dict[str, Any]:
        return {
            "rate_limits": len(self.cfg.rate_limits),
            "budgets": len(self.cfg.budgets),
            "fail_mode": self.cfg.fail_mode,
        }
