"""Shared state for rate limits and budgets, behind one interface.

``admit`` checks every counter and budget of a request and, only if all pass, increments them,
atomically: in one Redis Lua script (one round trip) across replicas, or in one synchronous
step in-process. Budgets hold money in integer nano-dollars, so sums are exact.
``settle`` turns a budget reservation into actual spend and refunds unused tokens.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

NANO = 1_000_000_000
FEEDBACK_MEMORY = 50_000  # in-process: how many scored requests are remembered, to replace a repeated score
FEEDBACK_TTL = 30 * 86400  # Redis: how long a request's score is remembered (seconds)


@dataclass(frozen=True, slots=True)
class CounterReq:
    key: str
    limit: int
    amount: int
    ttl: int


@dataclass(frozen=True, slots=True)
class BudgetReq:
    key: str
    limit_nano: int
    reserve_nano: int
    ttl: int
    hard: bool


@dataclass(slots=True)
class Admission:
    ok: bool
    counters: list[int]  # value after increment, per CounterReq (when ok)
    spent_nano: list[int]  # spent so far, per BudgetReq (when ok)
    failed_kind: str | None = None  # "rate" | "budget"
    failed_index: int | None = None
    failed_value: int | None = None


@dataclass(frozen=True, slots=True)
class Settlement:
    budget_keys: Sequence[str]
    reserve_nano: int
    actual_nano: int
    counter_refunds: Sequence[tuple[str, int]]  # (key, tokens to give back)


class StateStore(Protocol):
    shared: bool  # other processes (workers, replicas) read and write the same state

    async def admit(self, counters: Sequence[CounterReq], budgets: Sequence[BudgetReq]) -> Admission: ...
    async def settle(self, s: Settlement) -> None: ...
    async def bandit_add(self, policy: str, model: str, category: str, score: float,
                         request_id: str) -> float | None: ...
    async def bandit_totals(self, policy: str) -> dict[tuple[str, str], tuple[float, float]] | None: ...
    async def affinity_get(self, keys: Sequence[str]) -> list[str | None]: ...
    async def affinity_set(self, key: str, deployment: str, ttl: int) -> None: ...
    async def ping(self) -> bool: ...
    async def aclose(self) -> None: ...


class MemoryState:
    """In-process state: exact for one process (the embedded default)."""

    shared = False  # no other process sees it: feedback totals and conversation affinity stay local

    def __init__(self) -> None:
        self._counters: dict[str, tuple[int, float]] = {}
        self._budgets: dict[str, dict[str, int]] = {}
        self._scores: OrderedDict[str, float] = OrderedDict()  # request id -> its feedback score

    def _get(self, key: str) -> int:
        v = self._counters.get(key)
        if v is None or v[1] < time.monotonic():
            return 0
        return v[0]

    async def admit(self, counters: Sequence[CounterReq], budgets: Sequence[BudgetReq]) -> Admission:
        for i, c in enumerate(counters):
            cur = self._get(c.key)
            if c.limit >= 0 and cur + c.amount > c.limit:
                return Admission(False, [], [], "rate", i, cur)
        for i, b in enumerate(budgets):
            h = self._budgets.get(b.key, {})
            total = h.get("spent", 0) + h.get("reserved", 0)
            if b.hard and total + b.reserve_nano > b.limit_nano:
                return Admission(False, [], [], "budget", i, total)
        values = []
        for c in counters:
            cur = self._get(c.key)
            expiry = self._counters[c.key][1] if cur else time.monotonic() + c.ttl
            self._counters[c.key] = (cur + c.amount, expiry)
            values.append(cur + c.amount)
        spent = []
        for b in budgets:
            h = self._budgets.setdefault(b.key, {"spent": 0, "reserved": 0})
            h["reserved"] += b.reserve_nano
            spent.append(h["spent"])
        if len(self._counters) > 100_000:
            now = time.monotonic()
            self._counters = {k: v for k, v in self._counters.items() if v[1] >= now}
        return Admission(True, values, spent)

    async def settle(self, s: Settlement) -> None:
        for key in s.budget_keys:
            h = self._budgets.setdefault(key, {"spent": 0, "reserved": 0})
            h["reserved"] -= s.reserve_nano
            h["spent"] += s.actual_nano
        for key, refund in s.counter_refunds:
            v = self._counters.get(key)
            if v is not None:
                self._counters[key] = (v[0] - refund, v[1])

    async def spent(self, key: str) -> int:
        return self._budgets.get(key, {}).get("spent", 0)

    async def bandit_add(self, policy: str, model: str, category: str, score: float,
                         request_id: str) -> float | None:
        """One process: its own bandit state is the whole state; this only remembers each request's
        score (the most recent FEEDBACK_MEMORY of them) so that scoring it again replaces the score."""
        previous = self._scores.pop(request_id, None)
        self._scores[request_id] = score
        if len(self._scores) > FEEDBACK_MEMORY:
            self._scores.popitem(last=False)
        return previous

    async def bandit_totals(self, policy: str) -> dict[tuple[str, str], tuple[float, float]] | None:
        return None

    async def affinity_get(self, keys: Sequence[str]) -> list[str | None]:
        return [None] * len(keys)  # one process: the planner's own memory is the whole state

    async def affinity_set(self, key: str, deployment: str, ttl: int) -> None:
        return None

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None


ADMIT_LUA = """
local nr = tonumber(ARGV[1])
local nb = tonumber(ARGV[2])
local i = 3
for r = 1, nr do
  local cur = tonumber(redis.call('GET', KEYS[r]) or '0')
  local lim = tonumber(ARGV[i])
  if lim >= 0 and cur + tonumber(ARGV[i + 1]) > lim then return {'rate', r - 1, cur} end
  i = i + 3
end
for b = 1, nb do
  local k = KEYS[nr + b]
  local spent = tonumber(redis.call('HGET', k, 'spent') or '0')
  local reserved = tonumber(redis.call('HGET', k, 'reserved') or '0')
  if ARGV[i + 3] == '1' and spent + reserved + tonumber(ARGV[i + 1]) > tonumber(ARGV[i]) then
    return {'budget', b - 1, spent + reserved}
  end
  i = i + 4
end
local values = {}
local spents = {}
i = 3
for r = 1, nr do
  local v = redis.call('INCRBY', KEYS[r], ARGV[i + 1])
  if redis.call('TTL', KEYS[r]) < 0 then redis.call('EXPIRE', KEYS[r], ARGV[i + 2]) end
  values[r] = v
  i = i + 3
end
for b = 1, nb do
  local k = KEYS[nr + b]
  redis.call('HINCRBY', k, 'reserved', ARGV[i + 1])
  redis.call('EXPIRE', k, ARGV[i + 2])
  spents[b] = tonumber(redis.call('HGET', k, 'spent') or '0')
  i = i + 4
end
return {'ok', values, spents}
"""

SETTLE_LUA = """
local nb = tonumber(ARGV[1])
for b = 1, nb do
  redis.call('HINCRBY', KEYS[b], 'reserved', -tonumber(ARGV[2]))
  redis.call('HINCRBY', KEYS[b], 'spent', ARGV[3])
end
local i = 4
for r = nb + 1, #KEYS do
  if redis.call('EXISTS', KEYS[r]) == 1 then redis.call('DECRBY', KEYS[r], ARGV[i]) end
  i = i + 1
end
return 1
"""

FEEDBACK_LUA = """
local previous = redis.call('GET', KEYS[2])
redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4])
if previous then
  redis.call('HINCRBYFLOAT', KEYS[1], ARGV[2], tonumber(ARGV[3]) - tonumber(previous))
else
  redis.call('HINCRBYFLOAT', KEYS[1], ARGV[1], 1)
  redis.call('HINCRBYFLOAT', KEYS[1], ARGV[2], ARGV[3])
end
return previous
"""


class RedisState:
    """Redis-backed state shared by every worker and replica. One round trip per call."""

    shared = True

    def __init__(self, url: str, *, prefix: str = "sy:", timeout: float = 0.5):
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import ConnectionError as RedisConnectionError

        # One immediate retry on a broken connection (a pooled connection to a Redis that restarted
        # fails on first use; the command never reached the new server). Never on a timeout: the
        # admission script may have run, and running it twice would count the request twice.
        # (redis-py's default is ten retries with backoff, timeouts included.)
        self._r = aioredis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                    health_check_interval=10, retry_on_timeout=False,
                                    retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)))
        self._prefix = prefix
        self._admit = self._r.register_script(ADMIT_LUA)
        self._settle = self._r.register_script(SETTLE_LUA)
        self._feedback = self._r.register_script(FEEDBACK_LUA)

    def _k(self, key: str) -> str:
        return self._prefix + key

    async def admit(self, counters: Sequence[CounterReq], budgets: Sequence[BudgetReq]) -> Admission:
        keys = [self._k(c.key) for c in counters] + [self._k(b.key) for b in budgets]
        args: list[Any] = [len(counters), len(budgets)]
        for c in counters:
            args += [c.limit, c.amount, c.ttl]
        for b in budgets:
            args += [b.limit_nano, b.reserve_nano, b.ttl, 1 if b.hard else 0]
        res = await self._admit(keys=keys, args=args)
        kind = res[0].decode() if isinstance(res[0], bytes) else res[0]
        if kind == "ok":
            return Admission(True, [int(v) for v in res[1]], [int(v) for v in res[2]])
        return Admission(False, [], [], kind, int(res[1]), int(res[2]))

    async def settle(self, s: Settlement) -> None:
        keys = [self._k(k) for k in s.budget_keys] + [self._k(k) for k, _ in s.counter_refunds]
        args = [len(s.budget_keys), s.reserve_nano, s.actual_nano] + [r for _, r in s.counter_refunds]
        await self._settle(keys=keys, args=args)

    async def spent(self, key: str) -> int:
        return int(await self._r.hget(self._k(key), "spent") or 0)

    # Feedback totals per policy in one hash: "n|model|category" (count) and "s|..." (summed score);
    # each request's own score under "feedback:<request id>", so that scoring it again replaces it.
    async def bandit_add(self, policy: str, model: str, category: str, score: float,
                         request_id: str) -> float | None:
        field = f"{model}\x1f{category}"
        previous = await self._feedback(keys=[self._k("bandit:" + policy), self._k("feedback:" + request_id)],
                                        args=["n\x1f" + field, "s\x1f" + field, repr(score), FEEDBACK_TTL])
        return None if previous is None else float(previous)

    async def bandit_totals(self, policy: str) -> dict[tuple[str, str], tuple[float, float]] | None:
        raw = await self._r.hgetall(self._k("bandit:" + policy))
        out: dict[tuple[str, str], list[float]] = {}
        for f, v in raw.items():
            kind, model, category = (f.decode() if isinstance(f, bytes) else f).split("\x1f", 2)
            out.setdefault((model, category), [0.0, 0.0])[0 if kind == "n" else 1] = float(v)
        return {k: (n, s) for k, (n, s) in out.items()}

    # Where a conversation was served: "aff:<prefix hash>" -> deployment id, for its next turn on any replica.
    async def affinity_get(self, keys: Sequence[str]) -> list[str | None]:
        found = await self._r.mget([self._k("aff:" + k) for k in keys])
        return [v.decode() if isinstance(v, bytes) else v for v in found]

    async def affinity_set(self, key: str, deployment: str, ttl: int) -> None:
        await self._r.set(self._k("aff:" + key), deployment, ex=ttl)

    async def ping(self) -> bool:
        try:
            return bool(await self._r.ping())
        except Exception:  # noqa: BLE001 - any failure means unreachable
            return False

    async def aclose(self) -> None:
        await self._r.aclose()
