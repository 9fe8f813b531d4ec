"""The ledger's read side: usage aggregates (from the raw lines or the rollups), a request's record,
the top requests, record pages, budget sums and cache savings. ``LedgerStore`` (store.py) is the
engine, migrations and writes these run over."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, AsyncIterator, Sequence

from sqlalchemy import JSON, BigInteger, Float, Integer, and_, case, cast, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from router.ledger.schema import (
    DIMENSIONS,
    ROLLUP_COUNTS,
    ROLLUP_DIMS,
    ROLLUP_MONEY,
    ROLLUP_TOKENS,
    ROLLUPS,
    TOKEN_COLUMNS,
    MONEY_COLUMNS,
    clean_row,
    decode_row,
    calls,
    requests,
)

RANGE_READ_MIN = 1000  # ids of a tenant's budget from which budget_sums reads its recent rows in one range


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


async def _lines_of(conn: Any, ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """The cost lines of those of ``ids`` that have several, by request id, in call order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for i in range(0, len(ids), 500):
        stmt = select(calls).where(calls.c.request_id.in_(ids[i : i + 500])).order_by(calls.c.request_id, calls.c.seq)
        for c in (await conn.execute(stmt)).mappings().all():
            out.setdefault(c["request_id"], []).append({str(k): v for k, v in c.items()})
    return out


def _after(ts: float, request_id: str) -> Any:
    """Rows after (ts, request_id) in (ts, request_id) order. The ``ts >=`` conjunct lets the database
    seek the ts index instead of scanning and sorting the whole table for every page."""
    return and_(requests.c.ts >= ts, (requests.c.ts > ts) | (requests.c.request_id > request_id))


class LedgerQueries:
    """Queries over the ledger's tables, on the store's engine (``LedgerStore`` is one)."""

    engine: AsyncEngine
    dialect: str

    def _bucket_expr(self, ts: Any, seconds: int) -> Any:
        # ts is positive, so integer truncation is floor; PostgreSQL rounds casts, so it uses floor().
        if self.dialect == "postgresql":
            return (func.floor(ts / seconds) * seconds).label("bucket")
        return (cast(cast(ts / seconds, Integer), Float) * seconds).label("bucket")

    def dimension(self, name: str) -> Any:
        """A usage dimension's SQL expression: a column, or for ``tag:<key>`` the tag's value."""
        if name.startswith("tag:"):
            key = name[4:]
            if self.dialect == "postgresql":
                return func.json_extract_path_text(cast(requests.c.tags, JSON), key)
            return func.json_extract(requests.c.tags, '$."' + key.replace('"', "") + '"')
        return DIMENSIONS[name]

    def _where(self, q: UsageQuery) -> Any:
        conds = [requests.c.ts >= q.start, requests.c.ts < q.end]
        if q.tenant is not None:
            conds.append(requests.c.tenant == q.tenant)
        for dim, value in q.filters:
            col = self.dimension(dim)
            conds.append(col == (int(value) if dim == "status" else value))
        return and_(*conds)

    async def usage(self, q: UsageQuery) -> tuple[list[dict[str, Any]], bool]:
        """Aggregated usage rows, and whether more rows follow (pagination).

        Whole UTC days come from the daily roll-up, whole hours at the edges from the hourly one,
        the partial hours at the very edges from the ledger itself; minute buckets read the ledger.
        """
        keys = (["bucket"] if q.bucket_seconds else []) + list(q.group_by)
        parts = await self._parts(q, q.start, q.end, 0)
        merged: dict[tuple[Any, ...], dict[str, Any]] = {}
        for part in parts:
            for r in part:
                k = tuple(r[c] for c in keys)
                acc = merged.get(k)
                if acc is None:
                    merged[k] = r
                    continue
                for c, v in r.items():
                    if c == "latency_s_max":
                        acc[c] = max(acc[c], v)
                    elif c not in keys:
                        acc[c] += v
        if {"model", "provider"} & {*q.group_by, *(d for d, _ in q.filters)}:
            await self._book_to_lines(q, keys, merged)
        ordered = [merged[k] for k in sorted(merged, key=lambda k: tuple((v is not None, v) for v in k))]
        page = ordered[q.offset : q.offset + q.limit]
        return page, len(ordered) > q.offset + q.limit

    async def _book_to_lines(
        self, q: UsageQuery, keys: list[str], merged: dict[tuple[Any, ...], dict[str, Any]]
    ) -> None:
        """Grouped by model or provider, each cost line counts at its own model: a request with several
        lines (router.ledger.schema.calls) moves its tokens and money from the answering model's group
        to its lines' groups. Request counts, errors and latency stay with the answering model. Such
        requests are few (cascades), so this reads only them; the roll-ups stay per request."""
        on_line = {"model", "provider"}
        req_filters = tuple((d, v) for d, v in q.filters if d not in on_line)
        line_filters = [(d, v) for d, v in q.filters if d in on_line]
        cols: list[Any] = []
        if q.bucket_seconds:
            cols.append(self._bucket_expr(requests.c.ts, q.bucket_seconds))
        cols += [self.dimension(d).label(d) for d in q.group_by]
        split = select(calls.c.request_id).where(calls.c.ts >= q.start, calls.c.ts < q.end)
        # an unpriced request (some line has no price) stays whole under its answering model, counted
        # there as unpriced: moving its lines would show a priced-looking group with no money
        measures = (*TOKEN_COLUMNS, *MONEY_COLUMNS, "gpu_hours")
        stmt = (
            select(requests.c.request_id, *cols, *[requests.c[c].label(f"_{c}") for c in (*measures, *on_line)])
            .where(self._where(replace(q, filters=req_filters)))
            .where(requests.c.request_id.in_(split))
            .where(requests.c.cost_usd.is_not(None))
            .where(requests.c.charge_usd.is_not(None))
        )
        async with self.engine.connect() as conn:
            found = [dict(r) for r in (await conn.execute(stmt)).mappings().all()]
            if not found:
                return
            lines = await _lines_of(conn, [r["request_id"] for r in found])
        template = next(iter(merged.values()), None)

        def group(k: tuple[Any, ...]) -> dict[str, Any]:
            acc = merged.get(k)
            if acc is None:
                base = template or {
                    c: 0
                    for c in (
                        *ROLLUP_COUNTS,
                        *TOKEN_COLUMNS,
                        *MONEY_COLUMNS,
                        "gpu_hours",
                        "latency_s_sum",
                        "latency_s_max",
                    )
                }
                acc = merged[k] = {
                    **{c: (0.0 if isinstance(v, float) else 0) for c, v in base.items()},
                    **dict(zip(keys, k)),
                }
            return acc

        for r in found:
            if all(str(r[f"_{d}"]) == str(v) for d, v in line_filters):
                acc = group(tuple(r[c] for c in keys))
                for c in measures:
                    acc[c] -= r[f"_{c}"] or 0
            for line in lines.get(r["request_id"], ()):
                if any(str(line[d]) != str(v) for d, v in line_filters):
                    continue
                acc = group(tuple(line[c] if c in on_line else r[c] for c in keys))
                for c in measures:
                    acc[c] += line[c] or 0

    async def _parts(self, q: UsageQuery, start: float, end: float, level: int) -> list[list[dict[str, Any]]]:
        if start >= end:
            return []
        if any(d not in ROLLUP_DIMS for d in (*q.group_by, *(f for f, _ in q.filters))):
            return [await self._raw_usage(q, start, end)]  # by user or tag: the ledger's own rows
        for i in range(level, len(ROLLUPS)):
            period, table = ROLLUPS[i]
            if q.bucket_seconds and q.bucket_seconds % period:
                continue
            a, b = math.ceil(start / period) * period, math.floor(end / period) * period
            if b <= a:
                continue
            return [
                await self._rollup_usage(q, table, a, b),
                *await self._parts(q, start, a, i + 1),
                *await self._parts(q, b, end, i + 1),
            ]
        return [await self._raw_usage(q, start, end)]

    async def _raw_usage(self, q: UsageQuery, start: float, end: float) -> list[dict[str, Any]]:
        cols: list[Any] = []
        if q.bucket_seconds:
            cols.append(self._bucket_expr(requests.c.ts, q.bucket_seconds))
        for dim in q.group_by:
            cols.append(self.dimension(dim).label(dim))
        aggs = [
            func.count().label("requests"),
            func.sum(case((requests.c.status >= 400, 1), else_=0)).label("errors"),
            func.sum(case((requests.c.cost_usd.is_(None), 1), else_=0)).label("unpriced"),
            func.coalesce(
                func.sum(
                    case(
                        (
                            requests.c.cost_usd.is_(None),
                            func.coalesce(requests.c.prompt_tokens, 0) + func.coalesce(requests.c.completion_tokens, 0),
                        ),
                        else_=0,
                    )
                ),
                0,
            ).label("unpriced_tokens"),
            func.sum(case((requests.c.usage_source == "estimated", 1), else_=0)).label("estimated"),
            *[func.coalesce(func.sum(requests.c[c]), 0).label(c) for c in TOKEN_COLUMNS],
            *[func.coalesce(func.sum(requests.c[c]), 0.0).label(c) for c in MONEY_COLUMNS],
            func.coalesce(func.sum(requests.c.gpu_hours), 0.0).label("gpu_hours"),
            func.coalesce(func.sum(requests.c.latency_s), 0.0).label("latency_s_sum"),
            func.coalesce(func.max(requests.c.latency_s), 0.0).label("latency_s_max"),
            func.coalesce(func.sum(requests.c.fallbacks), 0).label("fallbacks"),
        ]
        stmt = select(*cols, *aggs).where(self._where(replace(q, start=start, end=end)))
        if cols:
            stmt = stmt.group_by(*cols)
        async with self.engine.connect() as conn:
            return [clean_row(dict(r)) for r in (await conn.execute(stmt)).mappings().all()]

    async def _rollup_usage(self, q: UsageQuery, table: Any, start: float, end: float) -> list[dict[str, Any]]:
        t = table.c
        cols: list[Any] = []
        if q.bucket_seconds:
            cols.append(self._bucket_expr(t.t, q.bucket_seconds))
        for dim in q.group_by:
            col = t[ROLLUP_DIMS[dim]]
            cols.append((col if dim in ("status", "prompt_size") else func.nullif(col, "")).label(dim))
        conds = [t.t >= start, t.t < end]
        if q.tenant is not None:
            conds.append(t.tenant == q.tenant)
        for dim, value in q.filters:
            conds.append(t[ROLLUP_DIMS[dim]] == (int(value) if dim == "status" else value))
        aggs = [
            *[func.coalesce(func.sum(t[c]), 0).label(c) for c in (*ROLLUP_COUNTS, *ROLLUP_TOKENS, *ROLLUP_MONEY)],
            func.coalesce(func.max(t.latency_s_max), 0.0).label("latency_s_max"),
        ]
        stmt = select(*cols, *aggs).where(and_(*conds))
        if cols:
            stmt = stmt.group_by(*cols)
        async with self.engine.connect() as conn:
            return [clean_row(dict(r)) for r in (await conn.execute(stmt)).mappings().all()]

    async def get(self, request_id: str, tenant: str | None) -> dict[str, Any] | None:
        conds = [requests.c.request_id == request_id]
        if tenant is not None:
            conds.append(requests.c.tenant == tenant)
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(requests).where(and_(*conds)))).mappings().first()
            if row is None:
                return None
            found = await _lines_of(conn, [request_id])
        out = decode_row(dict(row))
        out["lines"] = found.get(request_id)
        return out

    async def top(self, q: UsageQuery, n: int = 20) -> list[dict[str, Any]]:
        # The ids first, from a covering index; then only those rows.
        ids = (
            select(requests.c.request_id)
            .where(self._where(q))
            .where(requests.c.charge_usd.is_not(None))
            .order_by(requests.c.charge_usd.desc())
            .limit(n)
        )
        stmt = select(requests).where(requests.c.request_id.in_(ids)).order_by(requests.c.charge_usd.desc())
        async with self.engine.connect() as conn:
            return [decode_row(dict(r)) for r in (await conn.execute(stmt)).mappings().all()]

    async def lines(self, start: float, end: float, batch: int = 5000) -> AsyncIterator[dict[str, Any]]:
        """Every cost line of the requests in [start, end), in time order: a request with several priced
        calls as its lines (``calls``), any other as its own row. ``request_share`` is 1 on a request's
        last line and 0 on the others, so summing it counts requests."""
        async for chunk in self.records(UsageQuery(start=start, end=end), batch=batch):
            for r in chunk:
                own = r.pop("lines")
                if own is None:
                    yield {**r, "role": "answer", "request_share": 1.0}
                    continue
                for j, c in enumerate(own):
                    yield {
                        **c,
                        "status": r["status"],
                        "end_user": r.get("end_user"),
                        "tags": r.get("tags"),
                        "request_share": 1.0 if j == len(own) - 1 else 0.0,
                    }

    async def records(
        self, q: UsageQuery, after: tuple[float, str] | None = None, limit: int | None = None, batch: int = 2000
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The ledger's records matching ``q`` (range, tenant, filters), in (ts, request id) order after
        ``after``, in chunks, each record with its cost lines (``lines``: None for a single-call request).
        At most ``limit`` records (None: all), read ``batch`` at a time: memory stays bounded."""
        last_ts, last_id = after if after is not None else (q.start, "")
        left = limit
        async with self.engine.connect() as conn:
            while left is None or left > 0:
                n = batch if left is None else min(batch, left)
                stmt = (
                    select(requests)
                    .where(self._where(q))
                    .where(_after(last_ts, last_id))
                    .order_by(requests.c.ts, requests.c.request_id)
                    .limit(n)
                )
                chunk = [decode_row(dict(r)) for r in (await conn.execute(stmt)).mappings().all()]
                if not chunk:
                    return
                split = await _lines_of(conn, [r["request_id"] for r in chunk])
                for r in chunk:
                    r["lines"] = split.get(r["request_id"])
                yield chunk
                last_ts, last_id = chunk[-1]["ts"], chunk[-1]["request_id"]
                if left is not None:
                    left -= len(chunk)
                if len(chunk) < n:
                    return

    async def budget_sums(
        self, scope: str, scope_id: str, start: float, end: float, among: Sequence[str], since: float | None = None
    ) -> tuple[int, dict[str, int]]:
        """What a budget's requests were charged in [start, end), in nano-dollars (each request's
        charge rounded up, as a settlement counts it), and the charges of those of ``among`` (request
        ids) that are in the ledger. ``since``: most of ``among`` started after it (a hint: the
        answer is the same without it). ``among`` is read before the total, so a row landing in
        between is counted in the total (an overcount the next reconciliation removes), never left
        out of both."""
        if scope == "tag":  # scope_id "key=value"
            tag, _, scope_id = scope_id.partition("=")
            col = self.dimension("tag:" + tag)
        else:
            col = {
                "key": requests.c.key_id,
                "tenant": requests.c.tenant,
                "alias": requests.c.alias,
                "user": requests.c.end_user,
            }[scope]
        nano = requests.c.charge_usd * 1e9
        if self.dialect == "postgresql":
            ceil_nano: Any = cast(func.ceil(nano), BigInteger)
        else:  # SQLite may lack ceil(): truncate, then add one where a fraction was cut (charges are >= 0)
            ceil_nano = cast(nano, Integer) + case((nano > cast(nano, Integer), 1), else_=0)
        where = and_(col == scope_id, requests.c.ts >= start, requests.c.ts < end, requests.c.charge_usd.is_not(None))
        async with self.engine.connect() as conn:
            if self.dialect == "postgresql":  # both statements read one snapshot
                await conn.execution_options(isolation_level="REPEATABLE READ")
            found: dict[str, int] = {}
            ids = list(among)
            if scope == "tenant" and since is not None and len(ids) >= RANGE_READ_MIN:
                # Many ids of a tenant's budget: one read of its rows since ``since`` on the (tenant, ts,
                # charge, request_id) index, which holds all it needs, costs a tenth of a lookup per id;
                # the ids it does not find (longer requests, records not yet written) are looked up.
                wanted = set(ids)
                recent = select(requests.c.request_id, ceil_nano).where(where).where(requests.c.ts >= since)
                found = {r[0]: int(r[1]) for r in (await conn.execute(recent)).all() if r[0] in wanted}
                ids = [i for i in ids if i not in found]
            # By primary key alone, the budget's conditions read from each row: given them in the WHERE
            # clause, SQLite's planner (no statistics) scanned the whole period's index per 500 ids.
            inside = case((where, 1), else_=0)
            for i in range(0, len(ids), 500):
                part = ids[i : i + 500]
                stmt = select(requests.c.request_id, ceil_nano, inside).where(requests.c.request_id.in_(part))
                found.update({r[0]: int(r[1]) for r in (await conn.execute(stmt)).all() if r[2]})
            total = (await conn.execute(select(func.coalesce(func.sum(ceil_nano), 0)).where(where))).scalar_one()
            await conn.rollback()
        return int(total), found

    async def cache_savings(self, q: UsageQuery) -> tuple[int, float | None]:
        """Requests answered from the response cache in ``q``'s range and filters, and the API cost
        their replayed answers had (None when one of them was unpriced: unknown, not $0)."""
        stmt = (
            select(
                func.count(),
                func.sum(requests.c.saved_usd),
                func.sum(case((requests.c.saved_usd.is_(None), 1), else_=0)),
            )
            .where(self._where(q))
            .where(requests.c.cache == "hit")
        )
        async with self.engine.connect() as conn:
            n, saved, unpriced = (await conn.execute(stmt)).one()
        return int(n), (None if unpriced else float(saved or 0.0))
