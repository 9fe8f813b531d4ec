"""Every upstream call is a cost line: a cascade's step, its checks and its answer are each priced at
their own model's SKU; the request's record is the sum of its lines; FOCUS reads the lines."""

from __future__ import annotations

from datetime import datetime, timezone

import asyncio
import math
import time

import httpx
import pytest

from pricing.loaders import load_catalog
from router.ledger.schema import to_row
from router.ledger.store import LedgerStore, sqlite_url
from tests.conftest import ADMIN_KEY, KEY_A, start_gateway
from tests.test_focus import export
from tests.test_ledger import record

A = {"authorization": f"Bearer {KEY_A}"}
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
MONEY = ("cost_usd", "charge_usd", "app_margin_usd", "cost_input_usd", "cost_output_usd")
TOKENS = ("prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens")
# what each simulated tier stands in for (router/defaults/simulated.yaml): its SKU's list price
STANDS_IN_FOR = {"small": "gpt-4.1-nano", "frontier": "gpt-4o", "checker": "gpt-4o-mini"}

CONFIG = """
model_list:
  - {model_name: small, litellm_params: {model: simulated/small, speed: 100}}
  - {model_name: frontier, litellm_params: {model: simulated/frontier, speed: 100}}
  - {model_name: checker, litellm_params: {model: simulated/mid, speed: 100}}
policies: {dirs: ['%s']}
auth:
  admin_key: os.environ/TEST_ADMIN_KEY
  keys: [{id: tenant-a, tenant: a, key: os.environ/TEST_KEY_A}]
"""
POLICY = """
name: cascade
bind: {aliases: [auto-cascade]}
objective: {type: cascade, steps: [small, frontier], check: {type: agreement, with: [checker]}}
"""


@pytest.fixture(scope="module")
def cgw(tmp_path_factory):
    d = tmp_path_factory.mktemp("lines")
    (d / "policies").mkdir()
    (d / "policies" / "cascade.yaml").write_text(POLICY)
    gw = start_gateway(d / "gw", CONFIG % (d / "policies"))
    yield gw
    gw.stop()


def chat(gw, model: str, seed: int) -> httpx.Response:
    r = httpx.post(
        gw.base + "/v1/chat/completions",
        headers=A,
        timeout=30,
        json={
            "model": model,
            "seed": seed,
            "max_tokens": 20,
            "messages": [{"role": "user", "content": "Tell me something about routers."}],
        },
    )
    assert r.status_code == 200, r.text
    return r


def test_a_cascade_records_each_call_as_a_line_that_sums_to_the_request(cgw) -> None:
    r = chat(cgw, "auto-cascade", seed=5)
    assert r.headers["x-switchyard-model"] == "frontier", "small and checker disagree: the cascade escalates"
    rec = record(cgw, r.headers["x-request-id"])
    lines = rec["lines"]
    assert [(x["model"], x["role"]) for x in lines] == [
        ("small", "cascade_step"),
        ("checker", "check"),
        ("frontier", "answer"),
    ], "in the order the calls were made"
    assert rec["model"] == "frontier" and rec["fallbacks"] == 0
    for col in TOKENS:
        assert rec[col] == sum(x[col] for x in lines)
    for col in MONEY:
        assert rec[col] == pytest.approx(math.fsum(x[col] for x in lines), rel=1e-12, abs=1e-15)
    assert rec["charge_usd"] == pytest.approx(float(r.headers["x-switchyard-charge-usd"]), rel=1e-9)
    catalog = load_catalog()
    for x in lines:  # each line at its own model's price, not the answering model's
        price = catalog.price(STANDS_IN_FOR[x["model"]], datetime.fromtimestamp(rec["ts"], timezone.utc))
        assert x["cost_input_usd"] == pytest.approx(x["prompt_tokens"] * price.input, rel=1e-9)
        assert x["price_version"] == price.version
    # a request served by one call is its own line: nothing more is stored for it
    one = record(cgw, chat(cgw, "small", seed=1).headers["x-request-id"])
    assert one["lines"] is None and one["model"] == "small"


def test_focus_prices_each_cascade_call_at_its_own_sku(cgw, tmp_path) -> None:
    ids = [chat(cgw, "auto-cascade", seed=5).headers["x-request-id"] for _ in range(3)]
    ids.append(chat(cgw, "small", seed=2).headers["x-request-id"])
    for rid in ids:
        record(cgw, rid)
    until = time.time() + 1
    rows = export(cgw, until, tmp_path / "focus.csv")
    catalog = load_catalog()
    per_mtok = {"Input Tokens": "input", "Output Tokens": "output"}
    seen = set()
    for row in rows:
        price = catalog.price(STANDS_IN_FOR[row["ResourceId"]], datetime.now(timezone.utc))
        seen.add(row["ResourceId"])
        assert row["SkuPriceId"] == f"{row['ResourceId']}|{per_mtok[row['SkuMeter']]}|{price.version}"
        # the unit price is the SKU's own list price (gpt-4o's $10/Mtok output stays $10, not blended)
        want = getattr(price, per_mtok[row["SkuMeter"]]) * 1e6
        assert float(row["ListUnitPrice"]) == pytest.approx(want, rel=1e-9), row["ResourceId"]
    assert seen == {"small", "checker", "frontier"}
    usage = httpx.get(cgw.base + f"/admin/usage?bucket=none&start=0&end={until}", headers=ADMIN).json()["data"][0]
    assert math.fsum(float(r["BilledCost"]) for r in rows) == pytest.approx(usage["charge_usd"], rel=1e-9)
    assert math.fsum(float(r["ListCost"]) for r in rows) == pytest.approx(usage["cost_usd"], rel=1e-9)
    # x_Requests counts requests once, however many lines each has
    assert math.fsum(float(r["x_Requests"]) for r in rows) == pytest.approx(usage["requests"], rel=1e-9)


def test_lines_land_with_their_request_exactly_once(tmp_path) -> None:
    """A replayed batch (the spill file after an outage) inserts neither the request nor its lines twice;
    a record and its lines are written in one transaction."""

    def line(model: str, role: str, cost: float) -> dict:
        return {
            "role": role,
            "model": model,
            "deployment": model,
            "provider": "simulated",
            "usage": {"prompt_tokens": 10, "completion_tokens": 5},
            "usage_source": "upstream",
            "cost_usd": cost,
            "charge_usd": cost,
            "cost_lines": {"input": cost / 2, "output": cost / 2},
        }

    rec = {
        "request_id": "r1",
        "ts": time.time(),
        "endpoint": "chat",
        "status": 200,
        "tenant": "t",
        "usage": {"prompt_tokens": 20, "completion_tokens": 10},
        "cost_usd": 0.3,
        "charge_usd": 0.3,
        "lines": [line("small", "cascade_step", 0.1), line("big", "answer", 0.2)],
    }

    async def run() -> tuple[int, list]:
        store = LedgerStore(sqlite_url(tmp_path))
        await store.migrate()
        row = to_row(rec)
        await store.insert([row], fresh=True)
        await store.insert([row])  # the replay
        await store.insert([row], fresh=True)
        got = await store.get("r1", None)
        out = [x async for x in store.lines(0, time.time() + 10)]
        await store.dispose()
        return len(got["lines"]), out

    n, lines = asyncio.run(run())
    assert n == 2
    assert [(x["model"], x["role"], x["request_share"]) for x in lines] == [
        ("small", "cascade_step", 0.0),
        ("big", "answer", 1.0),
    ]
    assert math.fsum(x["cost_usd"] for x in lines) == pytest.approx(0.3)


def test_usage_by_model_books_each_line_to_its_own_model(cgw) -> None:
    """Grouped by model, a cascade's cheap step and its checker count at their own models; totals
    do not change; a model filter sees the lines of that model."""
    until = time.time() + 1
    before = {
        r["model"]: r
        for r in httpx.get(
            cgw.base + f"/admin/usage?bucket=none&group_by=model&start=0&end={until}", headers=ADMIN
        ).json()["data"]
    }
    rid = chat(cgw, "auto-cascade", seed=5).headers["x-request-id"]
    rec = record(cgw, rid)
    until = time.time() + 1
    after = {
        r["model"]: r
        for r in httpx.get(
            cgw.base + f"/admin/usage?bucket=none&group_by=model&start=0&end={until}", headers=ADMIN
        ).json()["data"]
    }
    for line in rec["lines"]:
        m = line["model"]
        old = before.get(m, {"prompt_tokens": 0, "cost_usd": 0.0, "charge_usd": 0.0})
        assert after[m]["prompt_tokens"] - old["prompt_tokens"] == line["prompt_tokens"], m
        assert after[m]["cost_usd"] - (old["cost_usd"] or 0.0) == pytest.approx(line["cost_usd"], rel=1e-9), m
        assert after[m]["charge_usd"] - (old["charge_usd"] or 0.0) == pytest.approx(line["charge_usd"], rel=1e-9), m
    assert after["frontier"]["requests"] - before.get("frontier", {"requests": 0})["requests"] == 1
    total = httpx.get(cgw.base + f"/admin/usage?bucket=none&start=0&end={until}", headers=ADMIN).json()["data"][0]
    assert math.fsum(r["charge_usd"] for r in after.values()) == pytest.approx(total["charge_usd"], rel=1e-9)
    assert sum(r["completion_tokens"] for r in after.values()) == total["completion_tokens"]
    only = httpx.get(cgw.base + f"/admin/usage?bucket=none&model=small&start=0&end={until}", headers=ADMIN).json()[
        "data"
    ][0]
    assert only["prompt_tokens"] == after["small"]["prompt_tokens"]


def test_lines_survive_a_database_outage_through_the_spill_file(tmp_path) -> None:
    """The database refuses the batch (before the write): the record and its lines go to the spill
    file together and land exactly once on replay, even when the replay itself is repeated."""
    from router.ledger.writer import LedgerWriter
    from router.metrics import Metrics

    rec = {
        "request_id": "r-spill",
        "ts": time.time(),
        "endpoint": "chat",
        "status": 200,
        "tenant": "t",
        "usage": {"prompt_tokens": 20, "completion_tokens": 10},
        "cost_usd": 0.3,
        "charge_usd": 0.3,
        "lines": [
            {
                "role": "cascade_step",
                "model": "small",
                "usage": {"prompt_tokens": 10},
                "cost_usd": 0.1,
                "charge_usd": 0.1,
            },
            {"role": "answer", "model": "big", "usage": {"prompt_tokens": 10}, "cost_usd": 0.2, "charge_usd": 0.2},
        ],
    }

    class Down(LedgerStore):
        up = False

        async def insert(self, rows, *, fresh=False):  # type: ignore[override]
            if not self.up:
                raise ConnectionError("database down")
            return await super().insert(rows, fresh=fresh)

    async def run() -> tuple[int, list]:
        store = Down(sqlite_url(tmp_path / "db"))
        await store.migrate()
        writer = LedgerWriter(store, tmp_path / "spill", Metrics(), flush_interval=0.01, replay_interval=3600)
        await writer.start()
        writer.submit(rec)
        await writer.flush()
        assert writer.spilled == 1 and await store.get("r-spill", None) is None
        store.up = True
        assert await writer.replay() == 1
        await store.insert([to_row(rec)])  # the same record replayed again: skipped, lines included
        await writer.close()
        got = await store.get("r-spill", None)
        lines = [x async for x in store.lines(0, time.time() + 10)]
        await store.dispose()
        return len(got["lines"]), lines

    n, lines = asyncio.run(run())
    assert n == 2 and [x["model"] for x in lines] == ["small", "big"]
    assert math.fsum(x["cost_usd"] for x in lines) == pytest.approx(0.3)
