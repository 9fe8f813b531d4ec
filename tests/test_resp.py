"""The lean Redis client of the request path (router/accounting/resp.py), against real Redis servers:
replies reach their own callers however many are in flight, an error answer leaves the connection
usable, a script Redis lost runs once, a silent Redis fails the calls within the timeout and the
next call gets a new connection, a broken connection fails its calls without sending them again, a
restart between calls costs none of them, and a caller that leaves takes only its own reply."""

from __future__ import annotations

import asyncio
import signal

import hiredis
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from router.accounting.redis_state import RedisState
from router.accounting.resp import LeanRedis, ReplyError, Script, pack, supported
from router.accounting.state import BudgetReq, CounterReq, Settlement
from tests.servers import PrivateRedis, flushable_redis_url


@pytest.fixture
def url() -> str:
    u = flushable_redis_url()
    redis.Redis.from_url(u).flushdb()
    return u


@pytest.fixture
def private():
    rds = PrivateRedis()
    rds.start()
    yield rds
    if rds.proc is not None and rds.proc.poll() is None:
        rds.proc.send_signal(signal.SIGCONT)
    rds.stop()


@given(st.lists(st.one_of(st.text(), st.binary(), st.integers(), st.floats(allow_nan=False)), min_size=1))
@settings(max_examples=200, deadline=None)
def test_a_packed_command_is_the_resp_array_of_its_arguments(args) -> None:
    reader = hiredis.Reader()
    reader.feed(pack(args))
    want = [
        a.encode() if isinstance(a, str) else a if isinstance(a, bytes) else repr(a).encode() if isinstance(a, float)
        else str(a).encode()
        for a in args
    ]  # fmt: skip
    assert reader.gets() == want
    assert reader.gets() is False


def test_what_the_lean_client_takes() -> None:
    assert supported("redis://127.0.0.1:6379/0") and supported("redis://h") and supported("rediss://u:p@h:6380/2")
    assert not supported("redis://h:6379/0?ssl_cert_reqs=none")  # query options: redis-py
    assert not supported("unix:///tmp/redis.sock") and not supported("redis://h/notadb")
    with pytest.raises(TypeError):
        pack([object()])


def test_many_calls_in_flight_each_get_their_own_reply(url) -> None:
    async def main() -> None:
        c = LeanRedis(url, timeout=5)
        values = [f"value-{i}-" + "x" * (i % 7) * 1000 for i in range(500)]  # some replies span reads
        got = await asyncio.gather(*(c.call("ECHO", v) for v in values))
        assert got == [v.encode() for v in values]
        incr = await asyncio.gather(*(c.call("INCR", "n") for _ in range(300)))
        assert sorted(incr) == list(range(1, 301))
        await c.aclose()

    asyncio.run(main())


def test_an_error_answer_raises_and_the_connection_stays_usable(url) -> None:
    async def main() -> None:
        c = LeanRedis(url, timeout=5)
        await c.call("SET", "s", "text")
        first = c._conn
        with pytest.raises(ReplyError, match="WRONGTYPE"):
            await c.call("LPUSH", "s", "x")
        assert await c.call("GET", "s") == b"text"
        assert c._conn is first
        await c.aclose()

    asyncio.run(main())


def test_a_script_redis_lost_is_sent_in_full_and_runs_once(private) -> None:
    async def main() -> None:  # (a private server: SCRIPT FLUSH empties a server's scripts for every client)
        c = LeanRedis(private.url, timeout=5)
        s = Script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
        assert await c.script(s, ["k"], [5]) == 5
        await c.call("SCRIPT", "FLUSH")  # as a restart without persistence leaves it
        assert await c.script(s, ["k"], [5]) == 10  # NOSCRIPT: it did not run; EVAL ran it once
        assert await c.script(s, ["k"], [1]) == 11  # and Redis holds it again
        await c.aclose()

    asyncio.run(main())


def test_a_database_number_in_the_url_is_selected(url) -> None:
    base = url.rsplit("/", 1)[0]

    async def main() -> None:
        c = LeanRedis(url, timeout=5)
        await c.call("SET", "where", "here")
        await c.aclose()

    asyncio.run(main())
    assert redis.Redis.from_url(url).get("where") == b"here"
    assert redis.Redis.from_url(base + "/0").get("where") != b"here" or url.endswith("/0")


def test_a_silent_redis_fails_the_calls_within_the_timeout_and_a_new_connection_follows(private) -> None:
    async def main() -> None:
        c = LeanRedis(private.url, timeout=0.3)
        assert await c.call("PING") == b"PONG"
        old = c._conn
        private.proc.send_signal(signal.SIGSTOP)
        calls = [asyncio.ensure_future(c.call("INCR", "n")) for _ in range(5)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(r, TimeoutError) for r in results), results
        assert not old.usable  # closed: a late reply can no longer be taken for another call's
        private.proc.send_signal(signal.SIGCONT)
        assert await c.call("PING") == b"PONG"
        assert c._conn is not old
        await c.aclose()

    asyncio.run(main())


def test_a_broken_connection_fails_its_calls_and_sends_none_again(private) -> None:
    admin = redis.Redis.from_url(private.url)

    async def main() -> None:
        c = LeanRedis(private.url, timeout=10)
        await c.call("CLIENT", "SETNAME", "lean")
        blocked = asyncio.ensure_future(c.call("BLPOP", "never", 5))
        behind = asyncio.ensure_future(c.call("INCR", "after"))  # queued behind it on the connection
        while not any(cl.get("cmd") == "blpop" for cl in admin.client_list()):
            await asyncio.sleep(0.01)
        admin.client_kill_filter(_type="normal", skipme=True)
        for fut in (blocked, behind):
            with pytest.raises(ConnectionError):
                await fut
        assert await c.call("PING") == b"PONG"  # the next call opens a new connection
        assert admin.get("after") is None, "a call on the broken connection was sent again"
        await c.aclose()

    asyncio.run(main())


def test_a_redis_restarted_between_calls_costs_none_of_them(private) -> None:
    async def main() -> None:
        c = LeanRedis(private.url, timeout=2)
        assert await c.call("INCR", "n") == 1
        conn = c._conn
        private.proc.kill()
        private.proc.wait(10)
        while conn.usable:  # the server's end of the connection reaches the client
            await asyncio.sleep(0.01)
        private.start()
        assert await c.call("INCR", "n") == 1  # a new server, a new connection: the call went through
        await c.aclose()

    asyncio.run(main())


def test_a_caller_that_leaves_takes_only_its_own_reply(url) -> None:
    admin = redis.Redis.from_url(url)

    async def main() -> None:
        c = LeanRedis(url, timeout=10)
        await c.call("CLIENT", "SETNAME", "lean-cancel")
        left = asyncio.ensure_future(c.call("BLPOP", "q", 5))
        while not any(cl.get("cmd") == "blpop" and cl.get("name") == "lean-cancel" for cl in admin.client_list()):
            await asyncio.sleep(0.01)
        left.cancel()
        nxt = asyncio.ensure_future(c.call("ECHO", "mine"))
        admin.rpush("q", "released")  # BLPOP answers now; its caller is gone
        assert await nxt == b"mine"
        assert await c.call("ECHO", "again") == b"again"
        await c.aclose()

    asyncio.run(main())


def test_redis_state_answers_the_same_through_either_client(url) -> None:
    """Admission, refusal, settlement, affinity, the answer cache, the cardinality bound and feedback:
    the lean client and redis-py give the same answers."""

    async def run(client: str) -> list:
        st_ = RedisState(url, prefix=f"same-{client}:", client=client)
        assert (st_._lean is not None) == (client == "lean")
        out: list = []
        counters = [CounterReq("c", 2, 1, 60)]
        budgets = [BudgetReq("b", 10_000, 4_000, 86400, hard=True)]
        await st_.budget_apply("b", 0, [], 86400, 1000.0)  # the budget key exists (as a rebuild leaves it)
        for i in range(3):  # the third is over the rate limit of 2
            out.append(await st_.admit(f"r{i}", counters, budgets, 1000.0 + i, 60))
        await st_.settle(Settlement("r0", ["b"], 1_500, [], ttl=86400), 1003.0)
        out.append(await st_.budget_view("b"))
        out.append(await st_.admit("r3", [], budgets, 1004.0, 60))  # room: 10,000 - 1,500 - 4,000 held
        out.append(await st_.admit("r4", [], budgets, 1005.0, 60))  # no room for another 4,000
        await st_.affinity_set("conv", "dep-1", 60)
        out.append(await st_.affinity_get(["conv", "other"]))
        await st_.cache_set("answer", b"\x00{}\xff", 60.0)
        out.append((await st_.cache_get("answer"), await st_.cache_get("missing")))
        out.append([await st_.distinct_add("card", v, 2, 60) for v in ("u1", "u2", "u1", "u3")])
        out.append(await st_.bandit_add("pol", "m", "chat", 0.75, "fb-1", 0.5))
        out.append(await st_.bandit_add("pol", "m", "chat", 0.25, "fb-1", 0.5))  # a re-score: the previous one back
        out.append(await st_.bandit_totals("pol"))
        await st_.aclose()
        return out

    lean, library = asyncio.run(run("lean")), asyncio.run(run("redis-py"))
    assert lean == library
    assert lean[0].ok and lean[1].ok and not lean[2].ok and lean[4].ok and not lean[5].ok
    assert lean[5].failed_kind == "budget" and lean[5].failed_value == 1_500 + 4_000 + 4_000
    assert lean[6] == ["dep-1", None] and lean[7] == (b"\x00{}\xff", None)
    assert lean[8] == [True, True, True, False] and lean[9] is None and lean[10] == 0.75
    assert lean[11] == {("m", "chat"): (1.0, 0.25, 0.5)}


def test_a_password_in_the_url_authenticates_and_a_wrong_one_is_refused_without_echoing_it(private) -> None:
    redis.Redis.from_url(private.url).config_set("requirepass", "s3cret-pw")
    base = f"127.0.0.1:{private.port}"

    async def main() -> None:
        good = LeanRedis(f"redis://:s3cret-pw@{base}/0", timeout=5)
        assert await good.call("PING") == b"PONG"
        await good.aclose()
        bad = LeanRedis(f"redis://:wrong-pw@{base}/0", timeout=5)
        with pytest.raises(ReplyError) as info:
            await bad.call("PING")
        assert "wrong-pw" not in str(info.value) and "s3cret" not in str(info.value)
        await bad.aclose()

    asyncio.run(main())


def test_a_client_used_from_a_new_event_loop_opens_a_connection_of_its_own(url) -> None:
    c = LeanRedis(url, timeout=5)

    async def once(value: str) -> bytes:
        return await c.call("ECHO", value)

    assert asyncio.run(once("first")) == b"first"
    first = c._conn
    assert asyncio.run(once("second")) == b"second"  # the first loop is closed: its connection is not reused
    assert c._conn is not first and not first.usable
    asyncio.run(c.aclose())
