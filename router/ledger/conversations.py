"""Stored Responses-API answers in the ledger database: written when an answer with ``store: true``
is complete, read by ``previous_response_id`` and ``GET /v1/responses/{id}``, deleted by ``DELETE``
or when their retention ends. Every read and delete is scoped to the tenant that stored it."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from sqlalchemy import and_, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from router.ledger.schema import responses
from router.ledger.store import LedgerStore


_COLUMNS = ("id", "tenant", "created_at", "expires_at", "response", "conversation")


class ResponseStore:
    """Writes commit in groups: a write waits for the transaction that carries it (so a client that
    continues from an answer finds it stored), and the writes that arrive while one transaction runs
    share the next; one request alone is never held back."""

    def __init__(self, ledger: LedgerStore, retention_s: float, *, via_driver: bool = True):
        self.ledger, self.retention_s, self.via_driver = ledger, retention_s, via_driver
        self._pending: list[tuple[tuple[Any, ...], asyncio.Future[None]]] = []
        self._insert_sql = f"INSERT INTO responses ({', '.join(_COLUMNS)}) VALUES ({ledger._params(len(_COLUMNS))})"
        self._writer: asyncio.Task[None] | None = None
        # ``via_driver``: the writes' own connection, kept open between groups, used through its
        # driver. SQLAlchemy's pool checkout, parameter processing and transaction bookkeeping cost
        # several times the insert (benchmarks/response_store.py: 0.83 ms of CPU a write through
        # engine.begin() on SQLite, 0.73 on PostgreSQL; 0.18 and 0.11 this way), and every stored
        # Responses answer pays it. ``via_driver=False`` is SQLAlchemy's path, kept working beside it.
        self._conn: AsyncConnection | None = None
        self._driver: Any = None

    @property
    def enabled(self) -> bool:
        return self.retention_s > 0

    async def put(
        self, rid: str, tenant: str, response: dict[str, Any], conversation: list[dict[str, Any]], now: float
    ) -> None:
        row = (
            rid,
            tenant,
            now,
            now + self.retention_s,
            orjson.dumps(response).decode(),
            orjson.dumps(conversation).decode(),
        )
        done = asyncio.get_running_loop().create_future()
        self._pending.append((row, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name="responses-write")
        await done

    async def _write(self) -> None:
        while self._pending:
            group, self._pending = self._pending, []
            try:
                rows = [row for row, _ in group]
                if self.via_driver:
                    await self._insert_via_driver(rows)
                else:
                    async with self.ledger.engine.begin() as conn:
                        await conn.execute(insert(responses), [dict(zip(_COLUMNS, row)) for row in rows])
            except Exception as exc:  # noqa: BLE001 - each waiting write gets the failure
                await self._drop()
                for _, done in group:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for _, done in group:
                    if not done.done():
                        done.set_result(None)

    async def _insert_via_driver(self, rows: list[tuple[Any, ...]]) -> None:
        """The rows through the kept connection; once more on a fresh one when the kept one has gone
        bad meanwhile (a database restart, an idle timeout)."""
        for fresh in (self._conn is None, True):
            if self._conn is None:
                self._conn = await self.ledger.engine.connect()
                self._driver = (await self._conn.get_raw_connection()).driver_connection
            try:
                await self._driver.executemany(self._insert_sql, rows)
                if (
                    self.ledger.dialect == "sqlite"
                ):  # aiosqlite holds a transaction open; asyncpg commits each statement
                    await self._driver.commit()
                return
            except Exception:
                await self._drop()
                if fresh:
                    raise

    async def _drop(self) -> None:
        """Forget the writes' connection (it failed, or the store closes); the next group opens another."""
        conn, self._conn, self._driver = self._conn, None, None
        if conn is not None:
            try:
                await conn.close()
            except Exception:  # noqa: BLE001 - a broken connection may fail to close; it is gone either way
                pass

    async def close(self) -> None:
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        await self._drop()

    async def get(self, rid: str, tenant: str, now: float) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """(the response, the conversation it continues) or None: unknown, another tenant's, or expired."""
        q = select(responses.c.response, responses.c.conversation).where(
            and_(responses.c.id == rid, responses.c.tenant == tenant, responses.c.expires_at > now)
        )
        async with self.ledger.engine.connect() as conn:
            row = (await conn.execute(q)).first()
        return None if row is None else (orjson.loads(row[0]), orjson.loads(row[1]))

    async def delete(self, rid: str, tenant: str) -> bool:
        async with self.ledger.engine.begin() as conn:
            res = await conn.execute(delete(responses).where(and_(responses.c.id == rid, responses.c.tenant == tenant)))
        return bool(res.rowcount)

    async def prune(self, now: float) -> int:
        """Delete what outlived its retention; how many."""
        async with self.ledger.engine.begin() as conn:
            res = await conn.execute(delete(responses).where(responses.c.expires_at <= now))
        return int(res.rowcount or 0)
