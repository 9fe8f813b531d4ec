"""The ledger's database: SQLite (embedded default) or PostgreSQL, one async SQLAlchemy Core path.

Writes are idempotent on request id (insert ... on conflict do nothing), so a replayed batch
lands exactly once. Reads are aggregates over indexed columns.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Iterable, Sequence

import orjson
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Float, Integer, and_, case, cast, event, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from router.ledger.schema import DIMENSIONS, SLICE_COLUMNS, requests

MIGRATIONS = Path(__file__).with_name("migrations")
TOKEN_COLUMNS = ("prompt_tokens", "completion_tokens", "cached_tokens", "cache_write_tokens", "reasoning_tokens")
MONEY_COLUMNS = ("cost_usd", "charge_usd", *SLICE_COLUMNS.values())


def async_url(url: str) -> str:
    """Accept plain URLs (postgresql://, sqlite:///) and pick the async driver."""
    for plain, driver in (("postgresql://", "postgresql+asyncpg://"), ("postgres://", "postgresql+asyncpg://"),
                          ("sqlite://", "sqlite+aiosqlite://")):
        if url.startswith(plain):
            return driver + url[len(plain):]
    return url


def sqlite_url(data_dir: str | Path) -> str:
    path = Path(data_dir).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return f"sqlite+aiosqlite:///{path / 'ledger.db'}"


def redact_url(url: str) -> str:
    """The URL without its password, for logs."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}" if ":" in creds else url


@dataclass(frozen=True)
class UsageQuery:
    start: float
    end: float
    bucket_seconds: int | None = None
    group_by: tuple[str, ...] = ()
    tenant: str | None = None  # None: all tenants (admin only)
    filters: tuple[tuple[str, str], ...] = ()
    limit: int = 1000
    offset: int = 0


class LedgerStore:
    def __init__(self, url: str):
        self.url = async_url(url)
        kw: dict[str, Any] = {}
        if self.url.startswith("postgresql"):
            kw.update(pool_size=5, max_overflow=5, pool_pre_ping=True, pool_timeout=5,
                      connect_args={"timeout": 5, "command_timeout": 10})
        else:
            kw.update(connect_args={"timeout": 10})
        self.engine: AsyncEngine = create_async_engine(self.url, **kw)
        self.dialect = self.engine.dialect.name
        if self.dialect == "sqlite":
            @event.listens_for(self.engine.sync_engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                # WAL with synchronous=NORMAL: durable across process crashes (a hard kill loses
                # nothing committed), one fsync per checkpoint instead of per batch.
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.close()
        self._insert = pg_insert if self.dialect == "postgresql" else sqlite_insert

    async def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))

        def upgrade(conn: Any) -> None:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

        async with self.engine.begin() as conn:
            await conn.run_sync(upgrade)

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(3):
                async with self.engine.connect() as conn:
                    await conn.exec_driver_sql("SELECT 1")
            return True
        except Exception:  # any failure means "not reachable" to a readiness probe
            return False

    async def insert(self, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        stmt = self._insert(requests).on_conflict_do_nothing(index_elements=["request_id"])
        async with self.engine.begin() as conn:
            await conn.execute(stmt, list(rows))

    async def count(self) -> int:
        async with self.engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(requests))).scalar_one())

    def _bucket_expr(self, seconds: int) -> Any:
        # ts is positive, so integer truncation is floor; PostgreSQL rounds casts, so it uses floor().
        if self.dialect == "postgresql":
            return (func.floor(requests.c.ts / seconds) * seconds).label("bucket")
        return (cast(cast(requests.c.ts / seconds, Integer), Float) * seconds).label("bucket")

    def _where(self, q: UsageQuery) -> Any:
        conds = [requests.c.ts >= q.start, requests.c.ts < q.end]
        if q.tenant is not None:
            conds.append(requests.c.tenant == q.tenant)
        for dim, value in q.filters:
            col = DIMENSIONS[dim]
            conds.append(col == (int(value) if dim == "status" else value))
        return and_(*conds)

    async def usage(self, q: UsageQuery) -> tuple[list[dict[str, Any]], bool]:
        """Aggregated usage rows, and whether more rows follow (pagination)."""
        keys = []
        cols: list[Any] = []
        if q.bucket_seconds:
            cols.append(self._bucket_expr(q.bucket_seconds))
            keys.append("bucket")
        for dim in q.group_by:
            cols.append(DIMENSIONS[dim].label(dim))
            keys.append(dim)
        aggs = [
            func.count().label("requests"),
            func.sum(case((requests.c.status >= 400, 1), else_=0)).label("errors"),
            func.sum(case((requests.c.cost_usd.is_(None), 1), else_=0)).label("unpriced"),
            func.sum(case((requests.c.usage_source == "estimated", 1), else_=0)).label("estimated"),
            *[func.coalesce(func.sum(requests.c[c]), 0).label(c) for c in TOKEN_COLUMNS],
            *[func.coalesce(func.sum(requests.c[c]), 0.0).label(c) for c in MONEY_COLUMNS],
            func.coalesce(func.sum(requests.c.gpu_hours), 0.0).label("gpu_hours"),
        ]
        stmt = select(*cols, *aggs).where(self._where(q))
        if keys:
            stmt = stmt.group_by(*cols).order_by(*cols)
        stmt = stmt.limit(q.limit + 1).offset(q.offset)
        async with self.engine.connect() as conn:
            result = (await conn.execute(stmt)).mappings().all()
        rows = [_clean(dict(r)) for r in result[: q.limit]]
        return rows, len(result) > q.limit

    async def get(self, request_id: str, tenant: str | None) -> dict[str, Any] | None:
        conds = [requests.c.request_id == request_id]
        if tenant is not None:
            conds.append(requests.c.tenant == tenant)
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(requests).where(and_(*conds)))).mappings().first()
        return _decode(dict(row)) if row else None

    async def top(self, q: UsageQuery, n: int = 20) -> list[dict[str, Any]]:
        stmt = (select(requests).where(self._where(q)).where(requests.c.charge_usd.is_not(None))
                .order_by(requests.c.charge_usd.desc()).limit(n))
        async with self.engine.connect() as conn:
            return [_decode(dict(r)) for r in (await conn.execute(stmt)).mappings().all()]

    async def rows(self, start: float, end: float, batch: int = 5000) -> AsyncIterator[dict[str, Any]]:
        """Every record in [start, end), in time order, streamed in batches."""
        last_ts, last_id = start, ""
        async with self.engine.connect() as conn:
            while True:
                stmt = (select(requests).where(requests.c.ts < end)
                        .where((requests.c.ts > last_ts) | ((requests.c.ts == last_ts) & (requests.c.request_id > last_id)))
                        .order_by(requests.c.ts, requests.c.request_id).limit(batch))
                chunk = (await conn.execute(stmt)).mappings().all()
                if not chunk:
                    return
                for r in chunk:
                    yield {str(k): v for k, v in r.items()}
                last_ts, last_id = chunk[-1]["ts"], chunk[-1]["request_id"]

    async def dispose(self) -> None:
        await self.engine.dispose()


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    row = {str(k): v for k, v in row.items()}  # plain str keys (SQLAlchemy may hand back str subclasses)
    for k, v in row.items():
        if k in TOKEN_COLUMNS or k in ("requests", "errors", "unpriced", "estimated", "status"):
            row[k] = int(v or 0)
        elif k in MONEY_COLUMNS or k in ("bucket", "gpu_hours"):
            row[k] = float(v or 0.0)
    return row


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    row = {str(k): v for k, v in row.items()}
    for key in ("decision", "attempts"):
        if isinstance(row.get(key), str):
            row[key] = orjson.loads(row[key])
    return row


def iter_batches(items: Iterable[Any], size: int) -> Iterable[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
