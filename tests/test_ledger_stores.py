"""The ledger's two stores against real servers: the same totals from SQLite and PostgreSQL, and
spill-and-replay through a PostgreSQL outage landing each record exactly once."""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import random
import signal
import time
import uuid

import pytest
from sqlalchemy import inspect as sa_inspect

from router.ledger.schema import requests, to_row
from router.ledger.queries import UsageQuery
from router.ledger.store import LedgerStore, sqlite_url
from router.ledger.writer import LedgerWriter
from router.metrics import Metrics
from tests.servers import PrivatePostgres, fresh_database, shared_database_url


def synthetic_records(n: int, seed: int = 1) -> list[dict]:
    rng = random.Random(seed)
    base = time.time() - 3 * 86400
    out = []
    for _ in range(n):
        p, c = rng.randint(1, 5000), rng.randint(0, 2000)
        cost = p * 2.5e-6 + c * 1e-5 if rng.random() > 0.05 else None
        charge = None if cost is None else cost * 1.25
        slices = (
            None
            if charge is None
            else {
                "application_margin": charge - cost,
                "paas_margin": cost * 0.5,
                "model_lab": cost * 0.15,
                "iaas_margin": cost * 0.1,
                "electricity": cost * 0.05,
                "colocation": cost * 0.05,
                "other_capex": cost * 0.05,
                "chip_vendor_cost": cost * 0.025,
                "chip_vendor_margin": cost * 0.075,
            }
        )
        out.append(
            {
                "request_id": "req_" + uuid.UUID(int=rng.getrandbits(128)).hex,
                "ts": base + rng.random() * 3 * 86400,
                "tenant": rng.choice(["acme", "globex", "initech"]),
                "key_id": rng.choice(["k1", "k2", "k3"]),
                "endpoint": "chat",
                "requested_model": rng.choice(["auto", "cheap", "gpt-4o"]),
                "model": rng.choice(["gpt-4o", "gpt-4o-mini", "llama"]),
                "deployment": "d",
                "provider": rng.choice(["openai", "groq"]),
                "stream": rng.random() < 0.3,
                "status": rng.choice([200] * 9 + [502]),
                "error": None,
                "attempts": [{}],
                "usage": {
                    "prompt_tokens": p,
                    "completion_tokens": c,
                    "cached_tokens": rng.randint(0, p),
                    "cache_write_tokens": 0,
                    "reasoning_tokens": 0,
                },
                "usage_source": rng.choice(["upstream", "estimated"]),
                "cost_usd": cost,
                "charge_usd": charge,
                "price_version": "v",
                "latency_s": 0.5,
                "ttft_s": 0.1,
                "upstream_s": 0.49,
                "stack": None
                if slices is None
                else {"slices": slices, "serving": "api", "model_class": "mid", "gpu_hours": 1e-6},
                "cost_lines": None if cost is None else {"input": p * 2.5e-6, "output": c * 1e-5},
            }
        )
    return out


def assert_same_rows(got: list[dict], want: list[dict], abs_tol: float) -> None:
    """Same usage rows: same keys, equal integers and labels, floats equal to 1e-9 relative."""
    assert len(got) == len(want) > 0
    for a, b in zip(got, want):
        assert set(a) == set(b)
        for k in a:
            if isinstance(a[k], float):
                assert a[k] == pytest.approx(b[k], rel=1e-9, abs=abs_tol), k
            else:
                assert a[k] == b[k], k


def queries() -> list[UsageQuery]:
    end = time.time() + 10
    return [
        UsageQuery(start=0, end=end),
        UsageQuery(start=0, end=end, bucket_seconds=86400, group_by=("tenant",)),
        UsageQuery(start=0, end=end, bucket_seconds=3600, group_by=("model", "alias"), limit=50, offset=10),
        UsageQuery(start=end - 86400, end=end, group_by=("provider", "status"), tenant="acme"),
        UsageQuery(start=0, end=end, group_by=("key",), filters=(("model", "gpt-4o"),)),
    ]


async def _load(store: LedgerStore, records: list[dict], fresh: bool = False) -> None:
    """Batches of uneven sizes: the live path pads SQLite batches up to a fixed ladder of statement sizes."""
    await store.migrate()
    rows = [to_row(r) for r in records]
    i, sizes = 0, itertools.cycle([500, 1, 7, 33, 129, 513, 64])
    while i < len(rows):
        n = next(sizes)
        await store.insert(rows[i : i + n], fresh=fresh)
        i += n


def test_same_totals_from_sqlite_and_postgresql(tmp_path) -> None:
    pg_url, drop = fresh_database(shared_database_url())
    records = synthetic_records(3000)

    async def run() -> list[tuple[list[dict], list[dict]]]:
        lite, pg = LedgerStore(sqlite_url(tmp_path)), LedgerStore(pg_url)
        try:
            await _load(lite, records)
            await _load(pg, records)
            await _load(pg, records[:100])  # idempotent: re-inserting changes nothing
            assert await lite.count() == await pg.count() == 3000
            return [((await lite.usage(q))[0], (await pg.usage(q))[0]) for q in queries()]
        finally:
            await lite.dispose()
            await pg.dispose()

    try:
        results = asyncio.run(run())
    finally:
        drop()
    for a_rows, b_rows in results:
        assert_same_rows(a_rows, b_rows, abs_tol=1e-9)
    total = results[0][0][0]
    assert total["requests"] == 3000
    assert total["charge_usd"] == pytest.approx(sum(r["charge_usd"] or 0 for r in records), rel=1e-9)


def test_postgres_outage_spills_and_replays_exactly_once(tmp_path) -> None:
    pg = PrivatePostgres()
    pg.start()
    records = synthetic_records(1500, seed=2)

    async def run() -> tuple[int, LedgerWriter]:
        store = LedgerStore(pg.url)
        await store.migrate()
        writer = LedgerWriter(store, tmp_path / "spill", Metrics(), flush_interval=0.02, replay_interval=0.3)
        await writer.start()
        for r in records[:500]:
            writer.submit(r)
        await asyncio.sleep(0.5)
        await asyncio.to_thread(pg.stop)
        for r in records[500:1000]:
            writer.submit(r)
            await asyncio.sleep(0)
        await asyncio.sleep(1.0)
        assert writer.spilled > 0, "records written while the database was down went to the spill file"
        await asyncio.to_thread(pg.start)
        for r in records[1000:]:
            writer.submit(r)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if await store.count() == 1500:
                    break
            except Exception:
                pass
            await asyncio.sleep(0.2)
        await writer.close()
        # replaying the same rows again must not duplicate them
        await store.insert([to_row(r) for r in records[400:600]])
        n = await store.count()
        await store.dispose()
        return n, writer

    try:
        n, writer = asyncio.run(run())
    finally:
        pg.cleanup()
    assert n == 1500
    assert not list((tmp_path / "spill").glob("ledger-spill-*")), "nothing left behind in the spill directory"
    print(f"\nspilled during the outage: {writer.spilled}, written: {writer.written}")


async def _raw_equivalent(store: LedgerStore, q: UsageQuery) -> list[dict]:
    """The same query answered from the ledger rows alone, ordered like ``usage``."""
    rows = await store._raw_usage(q, q.start, q.end)
    keys = (["bucket"] if q.bucket_seconds else []) + list(q.group_by)
    return sorted(rows, key=lambda r: tuple((r[k] is not None, r[k]) for k in keys))


def rollup_queries() -> list[UsageQuery]:
    now = time.time()
    start, end = now - 2.37 * 86400, now - 0.41 * 86400  # edges mid-hour: roll-up plus raw edges
    return [
        UsageQuery(start=start, end=end),
        UsageQuery(start=start, end=end, bucket_seconds=3600, group_by=("model",), limit=10000),
        UsageQuery(start=start, end=end, bucket_seconds=86400, group_by=("tenant", "status"), limit=10000),
        UsageQuery(start=start, end=end, group_by=("alias", "prompt_size", "key"), tenant="acme", limit=10000),
        UsageQuery(start=start, end=end, group_by=("provider",), filters=(("model", "gpt-4o"), ("status", "200"))),
        UsageQuery(start=now - 1800, end=now + 60, bucket_seconds=60),  # minute buckets: the ledger only
        UsageQuery(start=start, end=end, bucket_seconds=3600, limit=7, offset=5),
    ]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_hourly_rollup_answers_exactly_like_the_ledger(tmp_path, backend: str) -> None:
    """Written through ``insert`` (replays included) and backfilled by the 0004 migration alike."""
    drop = None
    if backend == "postgresql":
        url, drop = fresh_database(shared_database_url())
        url2, drop2 = fresh_database(shared_database_url())
    else:
        url, url2 = sqlite_url(tmp_path / "a"), sqlite_url(tmp_path / "b")
    records = synthetic_records(4000, seed=5)

    async def run() -> list[tuple[list[dict], list[dict]]]:
        written, backfilled = LedgerStore(url), LedgerStore(url2)
        try:
            await _load(written, records, fresh=True)  # the live writer's path: plain driver statements
            await written.insert([to_row(r) for r in records[1000:1600]])  # a replay adds nothing
            async with written.engine.connect() as conn:  # every record once: no padding row, no replay counted
                assert (
                    await conn.exec_driver_sql("SELECT COUNT(*), COUNT(DISTINCT request_id) FROM requests")
                ).one() == (len(records), len(records))
            await backfilled.migrate("0003")
            async with backfilled.engine.begin() as conn:  # the columns there at 0003 (later ones are added after)
                have = await conn.run_sync(lambda c: {col["name"] for col in sa_inspect(c).get_columns("requests")})
                await conn.execute(
                    requests.insert(), [{k: v for k, v in to_row(r).items() if k in have} for r in records]
                )
            await backfilled.migrate()
            out = []
            for q in rollup_queries():
                want = await _raw_equivalent(written, q)
                want = want[q.offset : q.offset + q.limit]
                out.append(((await written.usage(q))[0], want))
                out.append(((await backfilled.usage(q))[0], want))
            # the costliest requests, tenant-scoped and not, from the covering indexes
            for tenant in (None, "globex"):
                top = await written.top(UsageQuery(start=0, end=time.time() + 60, tenant=tenant), 20)
                expect = sorted(
                    (r for r in records if r["charge_usd"] is not None and tenant in (None, r["tenant"])),
                    key=lambda r: -r["charge_usd"],
                )[:20]
                assert [r["charge_usd"] for r in top] == pytest.approx(
                    [r["charge_usd"] for r in expect]
                )  # ties: any order
                assert all(tenant in (None, r["tenant"]) for r in top)
            return out
        finally:
            await written.dispose()
            await backfilled.dispose()

    try:
        results = asyncio.run(run())
    finally:
        if drop is not None:
            drop()
            drop2()
    for got, want in results:
        assert_same_rows(got, want, abs_tol=1e-12)


def test_ten_replicas_started_together_on_an_empty_database_all_become_ready(tmp_path) -> None:
    """Each replica migrates on start-up; an advisory lock lets one migrate while the others wait,
    so none dies in a race on the new tables (UniqueViolationError on pg_type before)."""
    import subprocess

    import httpx

    from tests.conftest import GATEWAY_ENV, SWITCHYARD, free_port

    url, drop = fresh_database(shared_database_url())
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(
        "model_list:\n  - {model_name: sim, litellm_params: {model: simulated/mid, speed: 50}}\n"
        "storage: {database_url: os.environ/SY_PG}\n"
        "auth: {admin_key: os.environ/TEST_ADMIN_KEY, keys: [{id: k, tenant: t, key: os.environ/TEST_KEY_A}]}\n"
    )
    env = {**os.environ, **GATEWAY_ENV, "SY_PG": url}
    ports = [free_port() for _ in range(10)]
    procs = []
    try:
        for i, port in enumerate(ports):
            log = open(tmp_path / f"gw{i}.log", "w")
            procs.append(
                subprocess.Popen(
                    [SWITCHYARD, "serve", "--config", str(cfg), "--port", str(port)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=tmp_path,
                    start_new_session=True,
                )
            )
        ready: set[int] = set()
        deadline = time.monotonic() + 120
        while len(ready) < len(ports) and time.monotonic() < deadline:
            for i, (port, p) in enumerate(zip(ports, procs)):
                assert p.poll() is None, f"replica {i} exited:\n{(tmp_path / f'gw{i}.log').read_text()[-2000:]}"
                if i not in ready:
                    try:
                        if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                            ready.add(i)
                    except httpx.HTTPError:
                        pass
            time.sleep(0.2)
        assert len(ready) == len(ports), f"ready: {sorted(ready)}"
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        drop()


def test_workers_migrating_one_new_sqlite_file_together_all_succeed(tmp_path) -> None:
    """`serve --workers N` on a new SQLite ledger: every worker migrates on start-up. A file lock
    lets one create the tables while the others wait (one worker failed its start with "table
    requests already exists" before, which stopped the whole server)."""
    import subprocess
    import sys

    db, go = tmp_path / "data", tmp_path / "go"  # sqlite_url(db) is data/ledger.db
    script = (
        "import asyncio, os, sys, time\n"
        "from router.ledger.store import LedgerStore, sqlite_url\n"
        "while not os.path.exists(sys.argv[2]): time.sleep(0.005)\n"
        "asyncio.run(LedgerStore(sqlite_url(sys.argv[1])).migrate())\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(db), str(go)], stderr=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    time.sleep(1.0)  # let every process import and reach the barrier (a late one only waits on the lock)
    go.touch()
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, "\n".join(e[-600:] for e in errors if e)

    async def revision() -> str | None:
        return await LedgerStore(sqlite_url(str(db)))._revision()

    from router.ledger.store import head_revision

    assert asyncio.run(revision()) == head_revision()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_budget_sums_read_recent_rows_in_one_range_and_answer_the_same(tmp_path, backend: str) -> None:
    """A tenant's budget reconciled with many settled ids reads the rows since ``since`` in one range
    (a lookup per id scanned the whole period on SQLite); the answer is the same as without the hint,
    for ids inside and outside the range, of other tenants, unpriced, and not in the ledger at all,
    and equals a recomputation from the records."""
    from router.ledger.queries import RANGE_READ_MIN

    drop = None
    if backend == "postgresql":
        url, drop = fresh_database(shared_database_url())
    else:
        url = sqlite_url(tmp_path)
    records = synthetic_records(4 * RANGE_READ_MIN, seed=9)
    start, end = min(r["ts"] for r in records), max(r["ts"] for r in records) + 1
    since = sorted(r["ts"] for r in records)[len(records) // 2]
    missing = [f"req_missing_{i}" for i in range(50)]
    among = [r["request_id"] for r in records[: 3 * RANGE_READ_MIN]] + missing

    def nano(charge: float) -> int:
        return math.ceil(charge * 1e9 - 1e-6)  # the stores round up each request's charge

    want_found = {
        r["request_id"]: nano(r["charge_usd"])
        for r in records[: 3 * RANGE_READ_MIN]
        if r["tenant"] == "acme" and r["charge_usd"] is not None
    }
    want_total = sum(nano(r["charge_usd"]) for r in records if r["tenant"] == "acme" and r["charge_usd"] is not None)

    async def run() -> None:
        store = LedgerStore(url)
        try:
            await _load(store, records, fresh=True)
            hinted = await store.budget_sums("tenant", "acme", start, end, among, since=since)
            plain = await store.budget_sums("tenant", "acme", start, end, among)
            assert hinted == plain
            total, found = hinted
            assert found.keys() == want_found.keys()
            assert all(abs(found[k] - v) <= 1 for k, v in want_found.items())  # float rounding at the nano
            assert abs(total - want_total) <= len(want_found) + len(records)
            assert any(r["ts"] < since for r in records[: 3 * RANGE_READ_MIN] if r["request_id"] in found)
        finally:
            await store.dispose()

    try:
        asyncio.run(run())
    finally:
        if drop is not None:
            drop()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_row_lacking_columns_is_written_with_them_empty(tmp_path, backend: str) -> None:
    """The live writer's rows carry every column (taken in one C call); a row that lacks some, as a
    spilled row of an older schema may, is written with those columns NULL and the rest intact."""
    drop = None
    if backend == "postgresql":
        url, drop = fresh_database(shared_database_url())
    else:
        url = sqlite_url(tmp_path / "a")
    records = synthetic_records(40, seed=9)
    rows = [to_row(r) for r in records]
    for row in rows[::3]:
        del row["gpu_hours"], row["model"]

    async def run() -> list[tuple]:
        store = LedgerStore(url)
        try:
            await store.migrate()
            await store.insert(rows[:7], fresh=True)
            await store.insert(rows[7:], fresh=True)
            async with store.engine.connect() as conn:
                got = await conn.exec_driver_sql("SELECT request_id, model, gpu_hours, tenant, cost_usd FROM requests")
                return [tuple(r) for r in got]
        finally:
            await store.dispose()

    try:
        got = {r[0]: r[1:] for r in asyncio.run(run())}
    finally:
        if drop is not None:
            drop()
    assert len(got) == len(rows)
    for row in rows:
        model, gpu_hours, tenant, cost = got[row["request_id"]]
        assert (model, gpu_hours) == (row.get("model"), row.get("gpu_hours"))
        assert (tenant, cost) == (row["tenant"], row["cost_usd"])
    assert sum(1 for v in got.values() if v[0] is None) == len(rows[::3])
