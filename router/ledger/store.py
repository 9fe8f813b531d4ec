"""The ledger's database: SQLite (embedded default) or PostgreSQL, one async SQLAlchemy Core path.

Writes are idempotent on request id (insert ... on conflict do nothing), so a replayed batch
lands exactly once. Reads are aggregates over indexed columns.
"""

from __future__ import annotations

import asyncio
import operator
from pathlib import Path
from typing import Any, Iterable, Sequence

import orjson
from sqlalchemy import event, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from router.ledger.queries import LedgerQueries
from router.ledger.schema import (
    alerts,
    calls,
    requests,
)

MIGRATIONS = Path(__file__).with_name("migrations")


def head_revision() -> str:
    """The newest migration's revision id: migrations are numbered files (0001_..., 0002_...)."""
    return max(p.name.split("_", 1)[0] for p in (MIGRATIONS / "versions").glob("[0-9]*_*.py"))


def async_url(url: str) -> str:
    """Accept plain URLs (postgresql://, sqlite:///) and pick the async driver."""
    for plain, driver in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
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


MIGRATION_LOCK_ID = 0x5377_7964  # PostgreSQL advisory lock key held while migrating ("Swyd")
_ROW_LADDER = (8, 32, 128, 512)  # rows per multi-row SQLite insert; 512 x 48 columns < SQLite's 32,766 parameters


class LedgerStore(LedgerQueries):
    """The ledger's engine (SQLite or PostgreSQL), its migrations and its writes; the reads are
    ``LedgerQueries`` (queries.py)."""

    def __init__(self, url: str):
        self.url = async_url(url)
        kw: dict[str, Any] = {}
        if self.url.startswith("postgresql"):
            kw.update(
                pool_size=5,
                max_overflow=5,
                pool_pre_ping=True,
                pool_timeout=5,
                connect_args={"timeout": 5, "command_timeout": 10},
            )
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
        self._raw_sql()

    async def migrate(self, revision: str = "head") -> None:
        """Bring the schema to the newest (or the given) Alembic revision.

        Alembic is imported only when there is something to do: it costs a worker about 10 MB and
        0.3 s of start-up, and a schema already at head (every start but the first) needs neither.
        """
        if revision == "head" and await self._revision() == head_revision():
            return
        path = self.engine.url.database if self.dialect == "sqlite" else None
        if not path or path == ":memory:":
            return await self._migrate(revision)
        # Workers starting together on a new SQLite file: one migrates, the others wait on this lock
        # and then find the schema at head (two CREATE TABLEs at once would fail one worker's start).
        import fcntl

        with open(f"{path}.migrate-lock", "a") as lock:
            await asyncio.to_thread(fcntl.flock, lock.fileno(), fcntl.LOCK_EX)
            try:
                if revision == "head" and await self._revision() == head_revision():
                    return
                await self._migrate(revision)
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    async def _migrate(self, revision: str) -> None:
        from alembic import command
        from alembic.config import Config as AlembicConfig

        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))

        def upgrade(conn: Any) -> None:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)

        async with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                # Replicas starting together on a new database: one migrates, the others wait here
                # and then find the schema at head (the lock ends with this transaction).
                await conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})")
                if (
                    revision == "head"
                    and (await conn.exec_driver_sql("SELECT to_regclass('alembic_version')")).scalar()
                ):
                    done = (await conn.exec_driver_sql("SELECT version_num FROM alembic_version")).scalar()
                    if done == head_revision():
                        return
            await conn.run_sync(upgrade)

    async def _revision(self) -> str | None:
        try:
            async with self.engine.connect() as conn:
                return (await conn.exec_driver_sql("SELECT version_num FROM alembic_version")).scalar()
        except Exception:  # no table yet (a new database): let Alembic create it
            return None

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(3):
                async with self.engine.connect() as conn:
                    await conn.exec_driver_sql("SELECT 1")
            return True
        except Exception:  # any failure means "not reachable" to a readiness probe
            return False

    async def insert(self, rows: Sequence[dict[str, Any]], *, fresh: bool = False) -> None:
        """Insert rows; a row whose request id is already in the ledger (a replay) is skipped.

        The roll-ups follow inside the same statement: an insert trigger (migration 0004) adds
        each inserted row to its hour and day, and skipped rows fire nothing, so a replay never
        counts a request twice. ``fresh``: the live writer's batches (new request ids) go to the
        driver as plain parameters (one multi-row statement on SQLite, one ``executemany`` on
        PostgreSQL), a fraction of the cost of SQLAlchemy's per-column parameter processing.
        """
        if not rows:
            return
        lines = [c for r in rows if "_calls" in r for c in r["_calls"]]
        async with self.engine.begin() as conn:
            if lines:  # a request's lines land with its row, in one transaction (a replay skips both)
                await conn.execute(
                    self._insert(calls).on_conflict_do_nothing(index_elements=["request_id", "seq"]), lines
                )
            if fresh and self.dialect == "sqlite":
                # One multi-row statement per batch. Python's sqlite3 releases and retakes the GIL
                # around every statement it steps (executemany: every row), and with a busy event
                # loop each retake waits for a thread switch; every await on the driver also waits
                # a full turn of a saturated loop. A batch is padded up to a size from a fixed
                # ladder by repeating its last row (the repeat conflicts on request_id and is
                # skipped, firing no trigger), so only a handful of statements are ever prepared.
                cols = self._columns
                for i in range(0, len(rows), _ROW_LADDER[-1]):
                    part = rows[i : i + _ROW_LADDER[-1]]
                    n = next(k for k in _ROW_LADDER if k >= len(part))
                    params: list[Any] = []
                    for r in part:
                        params.extend(self._values(r))
                    if n > len(part):
                        last = params[-len(cols) :]
                        params += last * (n - len(part))
                    await conn.exec_driver_sql(self._multi_insert(n), tuple(params))
            elif fresh:
                await conn.exec_driver_sql(self._raw_insert, [self._values(r) for r in rows])
            else:
                await conn.execute(
                    self._insert(requests).on_conflict_do_nothing(index_elements=["request_id"]),
                    [{k: v for k, v in r.items() if k != "_calls"} if "_calls" in r else r for r in rows],
                )

    def _values(self, row: dict[str, Any]) -> tuple[Any, ...]:
        """A row's values in the table's column order (None for a column it lacks, as a spilled row of
        an older schema may): one C call for the rows the writer builds, which carry every column."""
        try:
            return self._getter(row)
        except KeyError:
            return tuple(row.get(c) for c in self._columns)

    def _params(self, n: int) -> str:
        style = self.engine.dialect.paramstyle
        if style == "qmark":
            return ", ".join("?" * n)
        if style in ("numeric_dollar", "numeric"):
            mark = "$" if style == "numeric_dollar" else ":"
            return ", ".join(f"{mark}{i}" for i in range(1, n + 1))
        return ", ".join(["%s"] * n)  # format / pyformat

    def _multi_insert(self, n: int) -> str:
        sql = self._multi.get(n)
        if sql is None:
            one = f"({self._params(len(self._columns))})"
            sql = self._multi[n] = (
                f"INSERT INTO requests ({', '.join(self._columns)}) VALUES {', '.join([one] * n)} "
                "ON CONFLICT (request_id) DO NOTHING"
            )
        return sql

    def _raw_sql(self) -> None:
        self._columns = [c.name for c in requests.columns]
        self._getter = operator.itemgetter(*self._columns)
        self._multi: dict[int, str] = {}
        self._raw_insert = (
            f"INSERT INTO requests ({', '.join(self._columns)}) VALUES ({self._params(len(self._columns))}) "
            "ON CONFLICT (request_id) DO NOTHING"
        )

    async def count(self) -> int:
        async with self.engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(requests))).scalar_one())

    async def put_alert(self, row: dict[str, Any]) -> None:
        """Insert or update one alert of the history (router/accounting/alerts.py)."""
        stmt = self._insert(alerts).values(**row)
        stmt = stmt.on_conflict_do_update(
            index_elements=["id"], set_={k: row[k] for k in ("status", "attempts", "last_error", "updated_at")}
        )
        async with self.engine.begin() as conn:
            await conn.execute(stmt)

    async def alerts(self, limit: int = 100, before: float | None = None) -> list[dict[str, Any]]:
        """The most recent alerts first, each with its payload."""
        stmt = select(alerts).order_by(alerts.c.ts.desc()).limit(limit)
        if before is not None:
            stmt = stmt.where(alerts.c.ts < before)
        async with self.engine.connect() as conn:
            rows = [{str(k): v for k, v in r.items()} for r in (await conn.execute(stmt)).mappings().all()]
        for r in rows:
            r["payload"] = orjson.loads(r["payload"])
        return rows

    async def dispose(self) -> None:
        await self.engine.dispose()


def iter_batches(items: Iterable[Any], size: int) -> Iterable[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
