"""Shared state for rate limits and budgets, behind one interface.

``admit`` checks every counter and budget of a request and, only if all pass, increments them,
atomically: in one Redis Lua script (one round trip) across replicas, or in one synchronous
step in-process. Budgets hold money in integer nano-dollars, so sums are exact.
``settle`` turns a budget reservation into actual spend and refunds unused tokens.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, Sequence

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
    spent_nano: list[int]  # spent so far (settled), per BudgetReq (when ok)
    failed_kind: str | None = None  # "rate" | "budget" | "rebuild" (a budget key has no ledger base)
    failed_index: int | None = None
    failed_value: int | None = None
    used_nano: list[int] = field(default_factory=list)  # spent + reserved after this admission, per BudgetReq


@dataclass(frozen=True, slots=True)
class Settlement:
    request_id: str
    budget_keys: Sequence[str]
    actual_nano: int
    counter_refunds: Sequence[tuple[str, int]]  # (key, tokens to give back)
    ttl: int = 40 * 86400


@dataclass(frozen=True, slots=True)
class BudgetView:
    """One budget key as the state holds it: ``base`` (from the ledger; None: never built or lost),
    the settlements not yet folded into it (request id -> (nano, settled at)), and what is reserved."""

    base_nano: int | None
    recent: dict[str, tuple[int, float]]
    reserved_nano: int
    reservations: int
    recent_nano: int  # the running sum admission counts (equals the sum of ``recent``)

    @property
    def spent_nano(self) -> int:
        """What admission counts as spent."""
        return (self.base_nano or 0) + self.recent_nano


class StateStore(Protocol):
    shared: bool  # other processes (workers, replicas) read and write the same state

    async def admit(
        self, request_id: str, counters: Sequence[CounterReq], budgets: Sequence[BudgetReq], now: float, lease: float
    ) -> Admission: ...
    async def settle(self, s: Settlement, now: float) -> None: ...
    async def renew(self, leases: Sequence[tuple[str, Sequence[str]]], until: float) -> None: ...
    async def budget_view(self, key: str) -> BudgetView: ...
    async def budget_apply(self, key: str, base_nano: int, prune: Sequence[str], ttl: int, now: float) -> None:
        """Set the base, drop the settlements ``prune`` names, reclaim leases ended by ``now``."""

    async def lock(self, name: str, seconds: float) -> str | None: ...
    async def unlock(self, name: str, token: str) -> None: ...
    async def bandit_add(
        self, policy: str, model: str, category: str, score: float, request_id: str
    ) -> float | None: ...
    async def bandit_totals(self, policy: str) -> dict[tuple[str, str], tuple[float, float]] | None: ...
    async def affinity_get(self, keys: Sequence[str]) -> list[str | None]: ...
    async def affinity_set(self, key: str, deployment: str, ttl: int) -> None: ...
    async def usage_sync(self, window: int, deltas: Mapping[str, tuple[int, int]]) -> dict[str, tuple[int, int]]: ...
    async def distinct_add(self, key: str, value: str, limit: int, ttl: int) -> bool: ...
    async def cache_get(self, key: str) -> bytes | None: ...
    async def cache_set(self, key: str, value: bytes, ttl: float) -> None: ...
    async def ping(self) -> bool: ...
    async def aclose(self) -> None: ...


@dataclass
class _Budget:
    """One budget key in process memory (the same fields the Redis hashes hold)."""

    base: int | None = None
    recent: dict[str, tuple[int, float]] = field(default_factory=dict)  # request id -> (nano, settled at)
    recent_sum: int = 0
    reserved: dict[str, tuple[int, float]] = field(default_factory=dict)  # request id -> (nano, lease end)
    reserved_sum: int = 0
    first_end: float = float("inf")  # no lease ends before this: nothing to reclaim until then

    def reclaim(self, now: float) -> None:
        if now < self.first_end:
            return
        for rid in [r for r, (_, end) in self.reserved.items() if end <= now]:
            self.reserved_sum -= self.reserved.pop(rid)[0]
        self.first_end = min((end for _, end in self.reserved.values()), default=float("inf"))

    def hold(self, rid: str, nano: int, end: float) -> None:
        self.reserved[rid] = (nano, end)
        self.reserved_sum += nano
        self.first_end = min(self.first_end, end)


class MemoryState:
    """In-process state: exact for one process (the embedded default)."""

    shared = False  # no other process sees it: feedback totals and conversation affinity stay local

    def __init__(self) -> None:
        self._sets: dict[str, set[str]] = {}
        self._counters: dict[str, tuple[int, float]] = {}
        self._budgets: dict[str, _Budget] = {}
        self._settled: OrderedDict[str, None] = OrderedDict()  # request ids settled (the most recent ones)
        self._locks: dict[str, float] = {}
        self._scores: OrderedDict[str, float] = OrderedDict()  # request id -> its feedback score

    def _get(self, key: str) -> int:
        v = self._counters.get(key)
        if v is None or v[1] < time.monotonic():
            return 0
        return v[0]

    async def admit(
        self, request_id: str, counters: Sequence[CounterReq], budgets: Sequence[BudgetReq], now: float, lease: float
    ) -> Admission:
        for i, c in enumerate(counters):
            cur = self._get(c.key)
            if c.limit >= 0 and cur + c.amount > c.limit:
                return Admission(False, [], [], "rate", i, cur)
        for i, b in enumerate(budgets):
            h = self._budgets.get(b.key)
            if h is None or h.base is None:
                return Admission(False, [], [], "rebuild", i, 0)
            h.reclaim(now)
            used = h.base + h.recent_sum + h.reserved_sum
            if b.hard and request_id not in h.reserved and used + b.reserve_nano > b.limit_nano:
                return Admission(False, [], [], "budget", i, used)
        values = []
        for c in counters:
            cur = self._get(c.key)
            expiry = self._counters[c.key][1] if cur else time.monotonic() + c.ttl
            self._counters[c.key] = (cur + c.amount, expiry)
            values.append(cur + c.amount)
        spent: list[int] = []
        after: list[int] = []
        for b in budgets:
            h = self._budgets[b.key]
            if b.reserve_nano > 0 and request_id not in h.reserved:
                h.hold(request_id, b.reserve_nano, now + lease)
            spent.append((h.base or 0) + h.recent_sum)  # built above: h.base is set
            after.append(spent[-1] + h.reserved_sum)
        if len(self._counters) > 100_000:
            mono = time.monotonic()
            self._counters = {k: v for k, v in self._counters.items() if v[1] >= mono}
        return Admission(True, values, spent, used_nano=after)

    async def settle(self, s: Settlement, now: float) -> None:
        if s.request_id in self._settled:
            return  # settled already: a retry never counts twice
        self._settled[s.request_id] = None
        if len(self._settled) > FEEDBACK_MEMORY:
            self._settled.popitem(last=False)
        for key in s.budget_keys:
            h = self._budgets.setdefault(key, _Budget())
            held = h.reserved.pop(s.request_id, None)
            if held is not None:
                h.reserved_sum -= held[0]
            if s.request_id not in h.recent:
                h.recent[s.request_id] = (s.actual_nano, now)
                h.recent_sum += s.actual_nano
        for key, refund in s.counter_refunds:
            v = self._counters.get(key)
            if v is not None:
                self._counters[key] = (v[0] - refund, v[1])

    async def renew(self, leases: Sequence[tuple[str, Sequence[str]]], until: float) -> None:
        for rid, keys in leases:
            for key in keys:
                h = self._budgets.get(key)
                if h is not None and rid in h.reserved:
                    h.reserved[rid] = (h.reserved[rid][0], until)

    async def budget_view(self, key: str) -> BudgetView:
        h = self._budgets.get(key) or _Budget()
        return BudgetView(h.base, dict(h.recent), h.reserved_sum, len(h.reserved), h.recent_sum)

    async def budget_apply(self, key: str, base_nano: int, prune: Sequence[str], ttl: int, now: float) -> None:
        h = self._budgets.setdefault(key, _Budget())
        h.reclaim(now)
        for rid in prune:
            got = h.recent.pop(rid, None)
            if got is not None:
                h.recent_sum -= got[0]
        h.base = base_nano

    def forget_budgets(self) -> None:
        """Drop every budget (a fail-open store starts each outage from what the shared one last said)."""
        self._budgets.clear()

    async def lock(self, name: str, seconds: float) -> str | None:
        now = time.monotonic()
        held = self._locks.get(name)
        if held is not None and held > now:
            return None
        self._locks[name] = now + seconds
        return name

    async def unlock(self, name: str, token: str) -> None:
        self._locks.pop(name, None)

    async def spent(self, key: str) -> int:
        return (await self.budget_view(key)).spent_nano

    async def bandit_add(self, policy: str, model: str, category: str, score: float, request_id: str) -> float | None:
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

    async def usage_sync(self, window: int, deltas: Mapping[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
        """One process: the balancer's own counts are the whole state."""
        return {}

    async def cache_get(self, key: str) -> bytes | None:
        return None  # one process: the response cache keeps its own memory (router.cache)

    async def cache_set(self, key: str, value: bytes, ttl: float) -> None:
        return None

    async def distinct_add(self, key: str, value: str, limit: int, ttl: int) -> bool:
        """Whether ``value`` is one of the first ``limit`` distinct values of set ``key`` (adding it)."""
        members = self._sets.setdefault(key, set())
        if value in members:
            return True
        if len(members) >= limit:
            return False
        members.add(value)
        return True

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None


# A budget key K is four Redis structures (all expiring with the period):
#   K      hash  base (nano-dollars settled as of the last reconciliation with the ledger; absent
#                when the key was never built or Redis lost it), recent (sum of K:s), reserved (sum of K:r)
#   K:r    hash  request id -> nano-dollars reserved;  K:l zset request id -> lease end (UNIX s)
#   K:s    hash  request id -> nano-dollars settled since the last reconciliation;  K:t zset -> settled at
# Admission refuses to count against a key without a base ("rebuild"): the gateway rebuilds it from
# the ledger first. Settlement is idempotent by request id (K:s), reservations by request id (K:r).
# Give back the reservations of budget key k whose lease ended by ``now`` (their holder died).
RECLAIM_LUA = """
local function reclaim(k, now)
  local expired = redis.call('ZRANGEBYSCORE', k .. ':l', '-inf', now, 'LIMIT', 0, 1000)
  for _, old in ipairs(expired) do
    local held = tonumber(redis.call('HGET', k .. ':r', old) or '0')
    if held > 0 then redis.call('HINCRBY', k, 'reserved', -held) end
    redis.call('HDEL', k .. ':r', old)
    redis.call('ZREM', k .. ':l', old)
  end
end
"""

ADMIT_LUA = (
    RECLAIM_LUA
    + """
local nr = tonumber(ARGV[1])
local nb = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local lease = tonumber(ARGV[4])
local rid = ARGV[5]
local i = 6
for r = 1, nr do
  local cur = tonumber(redis.call('GET', KEYS[r]) or '0')
  local lim = tonumber(ARGV[i])
  if lim >= 0 and cur + tonumber(ARGV[i + 1]) > lim then return {'rate', r - 1, cur} end
  i = i + 3
end
local bstart = i
for b = 1, nb do
  local k = KEYS[nr + b]
  local base = redis.call('HGET', k, 'base')
  if not base then return {'rebuild', b - 1, 0} end
  reclaim(k, now)
  local used = tonumber(base) + tonumber(redis.call('HGET', k, 'recent') or '0') + tonumber(redis.call('HGET', k, 'reserved') or '0')
  if ARGV[i + 3] == '1' and redis.call('HEXISTS', k .. ':r', rid) == 0 and used + tonumber(ARGV[i + 1]) > tonumber(ARGV[i]) then
    return {'budget', b - 1, used}
  end
  i = i + 4
end
local values = {}
local spents = {}
local useds = {}
i = 6
for r = 1, nr do
  local v = redis.call('INCRBY', KEYS[r], ARGV[i + 1])
  if redis.call('TTL', KEYS[r]) < 0 then redis.call('EXPIRE', KEYS[r], ARGV[i + 2]) end
  values[r] = v
  i = i + 3
end
for b = 1, nb do
  local k = KEYS[nr + b]
  local amount = tonumber(ARGV[i + 1])
  if amount > 0 and redis.call('HEXISTS', k .. ':r', rid) == 0 then
    redis.call('HSET', k .. ':r', rid, ARGV[i + 1])
    redis.call('ZADD', k .. ':l', now + lease, rid)
    redis.call('HINCRBY', k, 'reserved', ARGV[i + 1])
  end
  for _, sub in ipairs({'', ':r', ':l', ':s', ':t'}) do
    if redis.call('EXISTS', k .. sub) == 1 then redis.call('EXPIRE', k .. sub, ARGV[i + 2]) end
  end
  local spent = tonumber(redis.call('HGET', k, 'base')) + tonumber(redis.call('HGET', k, 'recent') or '0')
  spents[b] = spent
  useds[b] = spent + tonumber(redis.call('HGET', k, 'reserved') or '0')
  i = i + 4
end
return {'ok', values, spents, useds}
"""
)

SETTLE_LUA = """
local nb = tonumber(ARGV[1])
local rid = ARGV[2]
local actual = tonumber(ARGV[3])
local now = ARGV[4]
local ttl = ARGV[5]
for b = 1, nb do
  local k = KEYS[b]
  if redis.call('HEXISTS', k .. ':s', rid) == 0 then
    local held = tonumber(redis.call('HGET', k .. ':r', rid) or '0')
    if held > 0 then redis.call('HINCRBY', k, 'reserved', -held) end
    redis.call('HDEL', k .. ':r', rid)
    redis.call('ZREM', k .. ':l', rid)
    redis.call('HSET', k .. ':s', rid, ARGV[3])
    redis.call('ZADD', k .. ':t', now, rid)
    if actual > 0 then redis.call('HINCRBY', k, 'recent', ARGV[3]) end
    for _, sub in ipairs({'', ':s', ':t'}) do redis.call('EXPIRE', k .. sub, ttl) end
  end
end
if #KEYS > nb and redis.call('SET', KEYS[#KEYS], '1', 'NX', 'EX', 3600) then
  local i = 6
  for r = nb + 1, #KEYS - 1 do
    if redis.call('EXISTS', KEYS[r]) == 1 then redis.call('DECRBY', KEYS[r], ARGV[i]) end
    i = i + 1
  end
end
return 1
"""

APPLY_LUA = (
    RECLAIM_LUA
    + """
local k = KEYS[1]
local pruned = 0
reclaim(k, ARGV[3])
for i = 4, #ARGV do
  local v = tonumber(redis.call('HGET', k .. ':s', ARGV[i]) or '-1')
  if v >= 0 then
    redis.call('HDEL', k .. ':s', ARGV[i])
    redis.call('ZREM', k .. ':t', ARGV[i])
    if v > 0 then redis.call('HINCRBY', k, 'recent', -v) end
    pruned = pruned + 1
  end
end
redis.call('HSET', k, 'base', ARGV[1])
for _, sub in ipairs({'', ':r', ':l', ':s', ':t'}) do
  if redis.call('EXISTS', k .. sub) == 1 then redis.call('EXPIRE', k .. sub, ARGV[2]) end
end
return pruned
"""
)

# One of the first ARGV[2] distinct values of set KEYS[1]: 1 (added, or already there), else 0.
DISTINCT_LUA = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 1 end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""
UNLOCK_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
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
        self._r = aioredis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=10,
            retry_on_timeout=False,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )
        self._prefix = prefix
        self._admit = self._r.register_script(ADMIT_LUA)
        self._settle = self._r.register_script(SETTLE_LUA)
        self._apply = self._r.register_script(APPLY_LUA)
        self._unlock = self._r.register_script(UNLOCK_LUA)
        self._feedback = self._r.register_script(FEEDBACK_LUA)
        self._distinct = self._r.register_script(DISTINCT_LUA)

    def _k(self, key: str) -> str:
        return self._prefix + key

    async def admit(
        self, request_id: str, counters: Sequence[CounterReq], budgets: Sequence[BudgetReq], now: float, lease: float
    ) -> Admission:
        keys = [self._k(c.key) for c in counters] + [self._k(b.key) for b in budgets]
        args: list[Any] = [len(counters), len(budgets), repr(now), repr(lease), request_id]
        for c in counters:
            args += [c.limit, c.amount, c.ttl]
        for b in budgets:
            args += [b.limit_nano, b.reserve_nano, b.ttl, 1 if b.hard else 0]
        res = await self._admit(keys=keys, args=args)
        kind = res[0].decode() if isinstance(res[0], bytes) else res[0]
        if kind == "ok":
            return Admission(
                True, [int(v) for v in res[1]], [int(v) for v in res[2]], used_nano=[int(v) for v in res[3]]
            )
        return Admission(False, [], [], kind, int(res[1]), int(res[2]))

    async def settle(self, s: Settlement, now: float) -> None:
        keys = [self._k(k) for k in s.budget_keys]
        args: list[Any] = [len(s.budget_keys), s.request_id, s.actual_nano, repr(now), s.ttl]
        if s.counter_refunds:
            keys += [self._k(k) for k, _ in s.counter_refunds] + [self._k("stl:" + s.request_id)]
            args += [r for _, r in s.counter_refunds]
        await self._settle(keys=keys, args=args)

    async def renew(self, leases: Sequence[tuple[str, Sequence[str]]], until: float) -> None:
        async with self._r.pipeline(transaction=False) as pipe:
            for rid, keys in leases:
                for key in keys:
                    pipe.zadd(self._k(key) + ":l", {rid: until}, xx=True)
            await pipe.execute()

    async def budget_view(self, key: str) -> BudgetView:
        k = self._k(key)
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.hget(k, "base")
            pipe.hget(k, "reserved")
            pipe.hgetall(k + ":s")
            pipe.zrange(k + ":t", 0, -1, withscores=True)
            pipe.hlen(k + ":r")
            pipe.hget(k, "recent")
            base, reserved, amounts, times, n, recent_sum = await pipe.execute()
        at = {(r.decode() if isinstance(r, bytes) else r): t for r, t in times}
        recent = {}
        for r, v in amounts.items():
            rid = r.decode() if isinstance(r, bytes) else r
            recent[rid] = (int(v), at.get(rid, 0.0))
        return BudgetView(None if base is None else int(base), recent, int(reserved or 0), int(n), int(recent_sum or 0))

    async def budget_apply(self, key: str, base_nano: int, prune: Sequence[str], ttl: int, now: float) -> None:
        await self._apply(keys=[self._k(key)], args=[base_nano, ttl, repr(now), *prune])

    async def lock(self, name: str, seconds: float) -> str | None:
        token = uuid.uuid4().hex
        ok = await self._r.set(self._k("lock:" + name), token, nx=True, px=max(1, int(seconds * 1000)))
        return token if ok else None

    async def unlock(self, name: str, token: str) -> None:
        await self._unlock(keys=[self._k("lock:" + name)], args=[token])

    async def spent(self, key: str) -> int:
        return (await self.budget_view(key)).spent_nano

    # Feedback totals per policy in one hash: "n|model|category" (count) and "s|..." (summed score);
    # each request's own score under "feedback:<request id>", so that scoring it again replaces it.
    async def bandit_add(self, policy: str, model: str, category: str, score: float, request_id: str) -> float | None:
        field = f"{model}\x1f{category}"
        previous = await self._feedback(
            keys=[self._k("bandit:" + policy), self._k("feedback:" + request_id)],
            args=["n\x1f" + field, "s\x1f" + field, repr(score), FEEDBACK_TTL],
        )
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

    async def cache_get(self, key: str) -> bytes | None:
        found = await self._r.get(self._k("cache:" + key))
        return found if isinstance(found, bytes) else None  # a client without decode_responses: bytes

    async def cache_set(self, key: str, value: bytes, ttl: float) -> None:
        await self._r.set(self._k("cache:" + key), value, px=max(1, int(ttl * 1000)))

    async def distinct_add(self, key: str, value: str, limit: int, ttl: int) -> bool:
        return bool(await self._distinct(keys=[self._k(key)], args=[value, limit, ttl]))

    # Requests and tokens per deployment in one minute: "use:<minute>" hash, "<id>\x1fr" and "<id>\x1ft".
    async def usage_sync(self, window: int, deltas: Mapping[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
        """Add this replica's ``deltas`` to the minute's totals and read every replica's, in one round trip."""
        key = self._k(f"use:{window}")
        pipe = self._r.pipeline(transaction=True)
        for dep, (requests, tokens) in deltas.items():
            if requests:
                pipe.hincrby(key, dep + "\x1fr", requests)
            if tokens:
                pipe.hincrby(key, dep + "\x1ft", tokens)
        pipe.expire(key, 120)
        pipe.hgetall(key)
        raw = (await pipe.execute())[-1]
        out: dict[str, list[int]] = {}
        for f, v in raw.items():
            dep, kind = (f.decode() if isinstance(f, bytes) else f).rsplit("\x1f", 1)
            out.setdefault(dep, [0, 0])[0 if kind == "r" else 1] = int(v)
        return {k: (r, t) for k, (r, t) in out.items()}

    async def ping(self) -> bool:
        try:
            return bool(await self._r.ping())
        except Exception:  # noqa: BLE001 - any failure means unreachable
            return False

    async def aclose(self) -> None:
        await self._r.aclose()
