"""Budgets' keys (one per rule, scope and period) and their reconciliation with the ledger: a key's
spend rebuilt from the ledger when the shared state lacks it, reconciled on a timer, leases of
open reservations renewed. ``Limiter`` (limits.py) admits and settles against them.

The ledger is the source of truth; the state (Redis, or this process's memory) is a fast copy:
- a reservation is keyed by request id with a lease its replica renews while the request runs;
  a dead replica's reservations are reclaimed when the lease ends;
- a settlement is keyed by request id: a retry never counts twice; a settlement that cannot reach
  the state is retried until it can;
- a budget key the state does not hold (never built, evicted, Redis restarted) is rebuilt from the
  ledger's sum for the period before anything is admitted against it;
- every ``reconcile_interval`` one replica sets each active budget to the ledger's sum plus the
  settlements the ledger does not hold yet (dropping those older than ``settled_horizon``: their
  record was lost), so the state equals the ledger whatever happened in between;
- soft budgets reserve nothing, record spend and alert when crossed;
- with Redis down and ``fail_mode: open`` each replica spends at most ``fail_open_share`` of the
  room each budget had when last seen (at its last admission, or its last room refresh, every
  ``reconcile_interval``), and its settlements reach Redis once it answers. With N replicas and a
  share of at most 1/N, the overshoot is bounded by what other replicas spent in the
  ``reconcile_interval`` before the outage (the staleness of the room each one saw).
"""

from __future__ import annotations

import asyncio
import calendar
import logging
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Protocol, Sequence

from router.config_sections import BudgetRule, LimitsConfig
from router.metrics import Metrics
from router.accounting.state import NANO, MemoryState, StateStore

log = logging.getLogger("switchyard.limits")


class BudgetLedger(Protocol):
    """What budgets need from the ledger (router.ledger.store.LedgerStore)."""

    async def budget_sums(
        self, scope: str, scope_id: str, start: float, end: float, among: Sequence[str], since: float | None = None
    ) -> tuple[int, dict[str, int]]: ...


class Flushable(Protocol):
    async def flush(self, timeout: float = 5.0) -> None: ...


RECENT_SLACK_S = 60.0  # how long before the first settlement since the last reconciliation a reconciliation reads
ADVERB = {"day": "daily", "month": "monthly"}


def period_bounds(period: str, now: float) -> tuple[float, float]:
    """The UTC day or month holding ``now``, as UNIX seconds [start, end)."""
    t = datetime.fromtimestamp(now, timezone.utc)
    if period == "day":
        start = t.replace(hour=0, minute=0, second=0, microsecond=0)
        return start.timestamp(), start.timestamp() + 86400
    start = t.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    days = calendar.monthrange(t.year, t.month)[1]
    return start.timestamp(), start.timestamp() + days * 86400


@dataclass(frozen=True, slots=True)
class BudgetKey:
    """One budget rule applied to one key, tenant or alias for one period."""

    rule: BudgetRule
    scope_id: str
    start: float
    end: float
    key: str  # the state's key: bud:<scope>:<id>:<YYYY-MM-DD or YYYY-MM>
    ttl: int  # seconds the state keeps it: a day past its period, so late settlements land

    @classmethod
    def of(cls, rule: BudgetRule, scope_id: str, now: float) -> "BudgetKey":
        start, end = period_bounds(rule.period, now)
        label = datetime.fromtimestamp(start, timezone.utc).strftime("%Y-%m-%d" if rule.period == "day" else "%Y-%m")
        return cls(rule, scope_id, start, end, f"bud:{rule.scope}:{scope_id}:{label}", int(end - start) + 86400)


class BudgetReconciler:
    """The limiter's budget keys kept equal to the ledger (a part of ``Limiter``)."""

    cfg: LimitsConfig
    state: StateStore
    local: MemoryState
    metrics: Metrics
    ledger: BudgetLedger | None
    writer: Flushable | None
    rebuild_grace: float
    _open: dict[str, Ticket]
    _active: dict[str, BudgetKey]
    _room: dict[str, int]
    _rebuilding: dict[str, asyncio.Lock]
    _failing_open: bool

    async def _seed_local(self, key: BudgetKey) -> None:
        limit = int(key.rule.usd * NANO)
        room = self._room.get(key.key)
        if room is None:  # never seen: the ledger's figure if it answers quickly, else the whole budget
            room = limit
            if self.ledger is not None:
                try:
                    async with asyncio.timeout(1.0):
                        spent, _ = await self.ledger.budget_sums(key.rule.scope, key.scope_id, key.start, key.end, ())
                    room = limit - spent
                except Exception:  # noqa: BLE001 - no ledger either: a share of the whole budget
                    pass
        share = max(0, math.floor(max(0, room) * self.cfg.fail_open_share))
        await self.local.budget_apply(key.key, limit - share, (), key.ttl, time.time())

    async def rebuild(self, key: BudgetKey, store: StateStore | None = None) -> None:
        """Build a budget key the state does not hold, from the ledger, before it admits anything."""
        store = store or self.state
        lock = self._rebuilding.setdefault(key.key, asyncio.Lock())
        async with lock:
            if (await store.budget_view(key.key)).base_nano is not None:
                return  # another request of this process rebuilt it meanwhile
            deadline = time.monotonic() + 10
            while True:
                token = await store.lock("rebuild:" + key.key, 5)
                if token is not None:
                    break
                await asyncio.sleep(0.05)  # another replica is rebuilding it
                if (await store.budget_view(key.key)).base_nano is not None:
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError("budget rebuild by another replica did not finish")
            try:
                if self.rebuild_grace:
                    await asyncio.sleep(self.rebuild_grace)
                if self.writer is not None:
                    await self.writer.flush()
                await self.reconcile(key, store, rebuilding=True)
                log.warning("budget %s rebuilt from the ledger", key.key)
            finally:
                await store.unlock("rebuild:" + key.key, token)

    async def reconcile(self, key: BudgetKey, store: StateStore | None = None, *, rebuilding: bool = False) -> None:
        """Set the budget's base to the ledger's sum for the period, and fold the settlements the ledger
        holds into it (they count once); a settlement the ledger does not hold stays counted on its
        own until the horizon, then is dropped (its record was lost)."""
        store = store or self.state
        view = await store.budget_view(key.key)
        if view.base_nano is None and not rebuilding:
            await self.rebuild(key, store)  # lost (Redis restarted) and not used since: built now
            return
        if self.ledger is None:
            base, prune = view.base_nano or 0, []
        else:
            # (requests settled since the last reconciliation mostly started less than a minute before
            # the first of them settled: a hint for reading them, not a condition)
            since = min((at for _, at in view.recent.values()), default=time.time()) - RECENT_SLACK_S
            total, found = await self.ledger.budget_sums(
                key.rule.scope, key.scope_id, key.start, key.end, list(view.recent), since=since
            )
            # the ledger holds these: their spend moves into the base (which the total already counts);
            # past the horizon, a settlement the ledger never got is dropped (its record was lost)
            horizon = time.time() - self.cfg.settled_horizon
            prune = [rid for rid, (_, at) in view.recent.items() if rid in found or at < horizon]
            base = total
        await store.budget_apply(key.key, base, prune, key.ttl, time.time())

    def _current(self) -> list[BudgetKey]:
        """The budgets this process used whose period (plus a day of late settlements) is not over;
        older ones are forgotten."""
        now = time.time()
        for name in [n for n, k in self._active.items() if k.end <= now - 86400]:
            del self._active[name]
        return list(self._active.values())

    async def reconcile_all(self) -> int:
        """Reconcile every budget this process used in the current period now; the number reconciled."""
        keys = self._current()
        for key in keys:
            await self.reconcile(key)
        return len(keys)

    async def refresh_rooms(self) -> None:
        """Read what each hard budget this process uses has left in the shared state, so a fail-open
        share is taken of a recent figure, not of the room this replica saw at its last admission
        (other replicas may have spent since)."""
        if self._failing_open or self.state is self.local:
            return
        for key in self._current():
            if not key.rule.soft:
                view = await self.state.budget_view(key.key)
                if view.base_nano is not None:
                    self._room[key.key] = int(key.rule.usd * NANO) - view.spent_nano - view.reserved_nano

    async def _reconcile_loop(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.reconcile_interval)
            try:
                await self.refresh_rooms()
            except Exception:  # noqa: BLE001 - state down: the rooms last seen stand
                pass
            for key in self._current():
                try:
                    # one replica per key per interval: the lock is left to expire, not released
                    if await self.state.lock("reconcile:" + key.key, self.cfg.reconcile_interval * 0.8) is None:
                        continue
                    await self.reconcile(key)
                except Exception as exc:  # noqa: BLE001 - state or ledger down: the next round tries again
                    log.info("budget reconciliation of %s skipped: %s", key.key, type(exc).__name__)

    async def _renew_loop(self) -> None:
        lease = self.cfg.reservation_lease
        while True:
            await asyncio.sleep(lease / 3)
            leases = [
                (rid, [k.key for k, _ in t.budgets if not k.rule.soft])
                for rid, t in self._open.items()
                if t.store is self.state
            ]
            if not leases:
                continue
            try:
                await self.state.renew(leases, time.time() + lease)
            except Exception:  # noqa: BLE001 - state down: the leases may lapse; settlements still count
                self.metrics.state_errors.inc()


@dataclass
class Ticket:
    """What one admission reserved, to be settled once the request ends."""

    request_id: str
    store: StateStore  # where it was admitted: the shared state, or the local one while that is down
    budgets: list[tuple[BudgetKey, int]]  # budget, spent before (nano)
    reserve_nano: int
    token_keys: list[str]
    tokens_reserved: int
    headers: dict[str, str] = field(default_factory=dict)
    settled: bool = False
