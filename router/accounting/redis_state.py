"""The shared state in Redis, for replicas: each admission, settlement and budget rebuild one Lua
script (one round trip, atomic). The interface and the in-process store are in state.py."""

from __future__ import annotations

import uuid
from typing import Any, Mapping, Sequence

from router.accounting.resp import LeanRedis, supported
from router.accounting.state import FEEDBACK_TTL, Admission, BudgetReq, BudgetView, CounterReq, Settlement


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
  redis.call('HINCRBYFLOAT', KEYS[1], ARGV[5], ARGV[6])
end
return previous
"""


class RedisState:
    """Redis-backed state shared by every worker and replica. One round trip per call."""

    shared = True

    def __init__(self, url: str, *, prefix: str = "sy:", timeout: float = 0.5, client: str = "lean"):
        """``client``: "lean" sends the request path's calls (admission, settlement, feedback, the
        cardinality bound, affinity, the answer cache) through `router.accounting.resp` where it takes
        the URL; everything else, and every call with "redis-py", goes through redis-py."""
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
        self._lean = LeanRedis(url, timeout=timeout) if client == "lean" and supported(url) else None

    def _k(self, key: str) -> str:
        return self._prefix + key

    async def _script(self, script: Any, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """A registered Lua script of the request path: through the lean client where it serves, else redis-py."""
        if self._lean is not None:
            return await self._lean.script(script, keys, args)
        return await script(keys=keys, args=args)

    async def admit(
        self, request_id: str, counters: Sequence[CounterReq], budgets: Sequence[BudgetReq], now: float, lease: float
    ) -> Admission:
        keys = [self._k(c.key) for c in counters] + [self._k(b.key) for b in budgets]
        args: list[Any] = [len(counters), len(budgets), repr(now), repr(lease), request_id]
        for c in counters:
            args += [c.limit, c.amount, c.ttl]
        for b in budgets:
            args += [b.limit_nano, b.reserve_nano, b.ttl, 1 if b.hard else 0]
        res = await self._script(self._admit, keys, args)
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
        await self._script(self._settle, keys, args)

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

    # Feedback totals per policy in one hash: "n|model|category" (count), "s|..." (summed score) and
    # "p|..." (summed prior: the estimate each scored request was decided with); each request's own
    # score under "feedback:<request id>", so that scoring it again replaces it (count and prior stay).
    async def bandit_add(
        self, policy: str, model: str, category: str, score: float, request_id: str, prior: float
    ) -> float | None:
        field = f"{model}\x1f{category}"
        keys = [self._k("bandit:" + policy), self._k("feedback:" + request_id)]
        args = ["n\x1f" + field, "s\x1f" + field, repr(score), FEEDBACK_TTL, "p\x1f" + field, repr(prior)]
        previous = await self._script(self._feedback, keys, args)
        return None if previous is None else float(previous)

    async def bandit_totals(self, policy: str) -> dict[tuple[str, str], tuple[float, ...]] | None:
        raw = await self._r.hgetall(self._k("bandit:" + policy))
        out: dict[tuple[str, str], dict[str, float]] = {}
        for f, v in raw.items():
            kind, model, category = (f.decode() if isinstance(f, bytes) else f).split("\x1f", 2)
            out.setdefault((model, category), {})[kind] = float(v)
        # totals written before priors were kept have no "p": BanditState.replace reads them as no surprise
        return {k: tuple(t[kind] for kind in "nsp" if kind in t) for k, t in out.items()}

    # Where a conversation was served: "aff:<prefix hash>" -> deployment id, for its next turn on any replica.
    # (these four are on the request path of routed conversations and cached answers: the lean client's,
    # as are the admission, settlement, feedback and cardinality scripts)
    async def affinity_get(self, keys: Sequence[str]) -> list[str | None]:
        names = [self._k("aff:" + k) for k in keys]
        found = await (self._lean.call("MGET", *names) if self._lean is not None else self._r.mget(names))
        return [v.decode() if isinstance(v, bytes) else v for v in found]

    async def affinity_set(self, key: str, deployment: str, ttl: int) -> None:
        if self._lean is not None:
            await self._lean.call("SET", self._k("aff:" + key), deployment, "EX", ttl)
        else:
            await self._r.set(self._k("aff:" + key), deployment, ex=ttl)

    async def cache_get(self, key: str) -> bytes | None:
        name = self._k("cache:" + key)
        found = await (self._lean.call("GET", name) if self._lean is not None else self._r.get(name))
        return found if isinstance(found, bytes) else None  # a client without decode_responses: bytes

    async def cache_set(self, key: str, value: bytes, ttl: float) -> None:
        if self._lean is not None:
            await self._lean.call("SET", self._k("cache:" + key), value, "PX", max(1, int(ttl * 1000)))
        else:
            await self._r.set(self._k("cache:" + key), value, px=max(1, int(ttl * 1000)))

    async def distinct_add(self, key: str, value: str, limit: int, ttl: int) -> bool:
        return bool(await self._script(self._distinct, [self._k(key)], [value, limit, ttl]))

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
        if self._lean is not None:
            await self._lean.aclose()
        await self._r.aclose()
