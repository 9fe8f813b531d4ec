"""Stored Responses-API answers in the ledger database (router/ledger/conversations.py), on SQLite
and PostgreSQL, through the driver and through SQLAlchemy: tenant scoping, retention, grouped
writes, and a database that goes away and comes back."""

from __future__ import annotations

import asyncio

import pytest

from router.ledger.conversations import ResponseStore
from router.ledger.store import LedgerStore, sqlite_url
from tests.servers import PrivatePostgres, fresh_database, shared_database_url

DAY = 86400.0


def _url(backend: str, tmp_path) -> tuple[str, object]:
    if backend == "postgresql":
        return fresh_database(shared_database_url())
    return sqlite_url(tmp_path), None


@pytest.mark.parametrize("via_driver", [True, False], ids=["driver", "sqlalchemy"])
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_put_get_delete_prune(tmp_path, backend: str, via_driver: bool) -> None:
    url, drop = _url(backend, tmp_path)

    async def run() -> None:
        ledger = LedgerStore(url)
        await ledger.migrate()
        store = ResponseStore(ledger, DAY, via_driver=via_driver)
        try:
            now = 1_000_000.0
            conv = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
            await store.put("resp_a", "t1", {"id": "resp_a", "n": 1}, conv, now)
            await store.put("resp_old", "t1", {"id": "resp_old"}, [], now - 2 * DAY)
            # many at once: grouped into shared transactions, each caller told once its row is stored
            await asyncio.gather(*(store.put(f"resp_{i}", "t2", {"id": i}, [], now) for i in range(200)))
            assert await store.get("resp_a", "t1", now) == ({"id": "resp_a", "n": 1}, conv)
            assert await store.get("resp_a", "t2", now) is None  # another tenant's
            assert await store.get("resp_old", "t1", now) is None  # past its retention
            assert all([await store.get(f"resp_{i}", "t2", now) for i in (0, 99, 199)])
            with pytest.raises(Exception):  # an id is stored once
                await store.put("resp_a", "t1", {}, [], now)
            assert await store.put("resp_b", "t1", {"id": "resp_b"}, [], now) is None  # the store still writes
            assert not await store.delete("resp_a", "t2")
            assert await store.delete("resp_a", "t1") and await store.get("resp_a", "t1", now) is None
            assert await store.prune(now) == 1  # resp_old
            assert await store.prune(now + 2 * DAY) == 201  # the 200 and resp_b
        finally:
            await store.close()
            await ledger.dispose()

    try:
        asyncio.run(run())
    finally:
        if drop:
            drop()


def test_a_database_that_goes_away_fails_the_write_and_the_next_one_reconnects(tmp_path) -> None:
    pg = PrivatePostgres()
    pg.start()

    async def run() -> None:
        ledger = LedgerStore(pg.url)
        await ledger.migrate()
        store = ResponseStore(ledger, DAY)
        try:
            await store.put("resp_1", "t", {"id": 1}, [], 1e6)
            await asyncio.to_thread(pg.stop)
            with pytest.raises(Exception):
                await store.put("resp_2", "t", {"id": 2}, [], 1e6)
            await asyncio.to_thread(pg.start)
            await store.put("resp_3", "t", {"id": 3}, [], 1e6)  # a new connection
            # a restart while idle: the kept connection is stale, the write goes through a fresh one
            await asyncio.to_thread(pg.stop)
            await asyncio.to_thread(pg.start)
            await store.put("resp_4", "t", {"id": 4}, [], 1e6)
            got = [await store.get(f"resp_{i}", "t", 1e6) for i in (1, 2, 3, 4)]
            assert [g[0]["id"] if g else None for g in got] == [1, None, 3, 4]
        finally:
            await store.close()
            await ledger.dispose()

    try:
        asyncio.run(run())
    finally:
        pg.stop()
        pg.cleanup()
