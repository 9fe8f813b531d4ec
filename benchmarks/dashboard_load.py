"""Dashboard load time against a ledger of a million rows, as a ratio to a 10,000-row ledger.

    python benchmarks/dashboard_load.py [--rows 1000000] [--baseline-rows 10000] [--days 30]

Fills two SQLite ledgers with synthetic records spread over ``--days`` (through the ledger's own
schema and migrations), serves each with a real gateway process, and measures, in the same run:
every API call the dashboard makes for a 24-hour, 7-day and 30-day range (median of 5), and the page
itself in headless Chromium (log in, then each view until rendered). Writes
benchmarks/dashboard.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from router.ledger.schema import SLICE_COLUMNS, to_row  # noqa: E402
from router.ledger.store import LedgerStore, sqlite_url  # noqa: E402

ADMIN = "bench-admin-key-0123456789"
CONFIG = """
model_list:
  - {model_name: sim-frontier, litellm_params: {model: simulated/frontier}}
  - {model_name: sim-mid, litellm_params: {model: simulated/mid}}
  - {model_name: sim-small, litellm_params: {model: simulated/small}}
  - {model_name: sim-open, litellm_params: {model: simulated/open-weights}}
  - {model_name: sim-reasoning, litellm_params: {model: simulated/reasoning}}
aliases: {cheap: [sim-small, sim-open]}
policies: {builtin: true}
storage: {data_dir: DATA}
limits:
  budgets:
    - {scope: tenant, id: "*", period: month, usd: 500}
auth: {admin_key: os.environ/BENCH_ADMIN_KEY}
"""
MODELS = {
    "sim-frontier": (2.5e-6, 1e-5),
    "sim-mid": (1.5e-7, 6e-7),
    "sim-small": (1e-7, 4e-7),
    "sim-open": (2e-7, 2e-7),
    "sim-reasoning": (1.1e-6, 4.4e-6),
}
ALIASES = {
    "auto": ["sim-mid", "sim-small", "sim-frontier"],
    "cheap": ["sim-small", "sim-open"],
    "sim-frontier": ["sim-frontier"],
    "sim-mid": ["sim-mid"],
    "sim-reasoning": ["sim-reasoning"],
}
CATEGORIES = ["general", "code", "math", "extraction", "creative"]


def records(n: int, days: int, seed: int):
    rng = random.Random(seed)
    now = time.time()
    for i in range(n):
        alias = rng.choice(list(ALIASES))
        model = rng.choice(ALIASES[alias])
        p, c = rng.randint(20, 6000), rng.randint(1, 1500)
        pin, pout = MODELS[model]
        cost = p * pin + c * pout
        charge = cost * 1.25
        shares = [0.2, 0.12, 0.1, 0.1, 0.04, 0.05, 0.05, 0.02]  # paas .. chip vendor margin
        slices = {name: cost * s for name, s in zip(list(SLICE_COLUMNS)[1:], shares)}
        slices["paas_margin"] += cost - sum(slices.values())  # the API cost splits exactly
        slices["application_margin"] = charge - cost
        status = 200 if rng.random() > 0.02 else 502
        key = rng.randint(1, 60)  # each key belongs to one of 25 tenants
        routed = alias in ("auto",)
        yield to_row(
            {
                "request_id": f"req_{seed}_{i:09d}",
                "ts": now - rng.random() * days * 86400,
                "tenant": f"tenant-{key % 25 + 1:02d}",
                "key_id": f"key-{key:02d}",
                "endpoint": "chat",
                "requested_model": alias,
                "model": model,
                "deployment": model,
                "provider": "simulated",
                "stream": rng.random() < 0.4,
                "status": status,
                "error": None if status == 200 else "upstream_error",
                "attempts": [{"deployment": model}],
                "policy": "auto" if routed else None,
                "decision": {
                    "policy": "auto",
                    "rule": "cheapest_above(0.75)",
                    "reason": f"{model} cheapest at or above target",
                    "category": rng.choice(CATEGORIES),
                    "order": [model],
                    "candidates": [],
                }
                if routed
                else None,
                "usage": {
                    "prompt_tokens": p,
                    "completion_tokens": c,
                    "cached_tokens": 0,
                    "cache_write_tokens": 0,
                    "reasoning_tokens": 0,
                },
                "usage_source": "upstream",
                "cost_usd": cost,
                "charge_usd": charge,
                "price_version": "bench",
                "latency_s": rng.uniform(0.2, 3.0),
                "ttft_s": 0.2,
                "upstream_s": 0.19,
                "stack": {"slices": slices, "serving": "api", "model_class": "mid", "gpu_hours": 1e-6},
                "cost_lines": {"input": p * pin, "output": c * pout},
            }
        )


def build_ledger(data_dir: Path, n: int, days: int) -> float:
    t0 = time.perf_counter()
    store = LedgerStore(sqlite_url(data_dir))

    async def migrate() -> None:
        # The rows go in with plain SQL below; the gateway's start-up migration (0004) then
        # builds the hourly roll-up from them, as it does for a ledger written before 0004.
        await store.migrate("0003")
        await store.dispose()

    asyncio.run(migrate())
    db = sqlite3.connect(data_dir / "ledger.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    gen = records(n, days, seed=n)
    first = next(gen)
    cols = list(first)
    sql = f"INSERT INTO requests ({', '.join(cols)}) VALUES ({', '.join(':' + c for c in cols)})"
    db.execute(sql, first)
    batch = []
    for row in gen:
        batch.append(row)
        if len(batch) == 50_000:
            db.executemany(sql, batch)
            batch = []
    db.executemany(sql, batch)
    db.commit()
    db.execute("ANALYZE")
    db.close()
    return time.perf_counter() - t0


def calls(range_: str) -> list[tuple[str, str, dict]]:
    """The API calls the dashboard's views make (router/dashboard_static/app.js)."""
    bucket = "hour" if range_ == "24h" else "day"  # as the page picks it (app.js bucketFor)
    r = {"start": range_}
    return [
        ("options", "/admin/insights/options", r),
        ("spend: totals", "/admin/usage", {**r, "bucket": "none"}),
        ("spend: over time by model", "/admin/usage", {**r, "bucket": bucket, "group_by": "model", "limit": 10000}),
        ("routing mix", "/admin/usage", {**r, "bucket": "none", "group_by": "alias,model,rule", "limit": 10000}),
        ("savings", "/admin/insights/savings", {**r, "baseline": "sim-frontier"}),
        ("budgets", "/admin/insights/budgets", {}),
        ("top requests", "/admin/requests/top", {**r, "limit": 20}),
        ("live (15 min)", "/admin/usage", {"start": "15m", "bucket": "minute", "limit": 10000}),
        ("what-if", "/admin/insights/whatif", {**r, "policy": "auto"}),
        (
            "one tenant, spend over time",
            "/admin/usage",
            {**r, "bucket": bucket, "group_by": "model", "tenant": "tenant-07"},
        ),
    ]


def serve(workdir: Path) -> tuple[subprocess.Popen, str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = workdir / "gw.yaml"
    cfg.write_text(CONFIG.replace("DATA", str(workdir / "data")))
    exe = str(Path(sys.executable).with_name("switchyard"))
    proc = subprocess.Popen(
        [exe, "serve", "--config", str(cfg), "--port", str(port)],
        cwd=workdir,
        env={**os.environ, "BENCH_ADMIN_KEY": ADMIN},
        stdout=subprocess.DEVNULL,
        stderr=open(workdir / "gw.log", "wb"),
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(base + "/readyz").status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError((workdir / "gw.log").read_text()[-2000:])


def time_api(base: str, repeat: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    headers = {"authorization": f"Bearer {ADMIN}"}
    with httpx.Client(base_url=base, headers=headers, timeout=300) as http:
        for range_ in ("24h", "7d", "30d"):
            for name, path, params in calls(range_):
                times = []
                for _ in range(repeat):
                    t0 = time.perf_counter()
                    r = http.get(path, params=params)
                    times.append(time.perf_counter() - t0)
                    assert r.status_code == 200, r.text
                out[f"{range_} {name}"] = {"median_ms": statistics.median(times) * 1000, "max_ms": max(times) * 1000}
    return out


def time_page(base: str) -> dict[str, float]:
    chromium = shutil.which("chromium")
    if chromium is None:
        return {}
    from playwright.sync_api import sync_playwright

    out: dict[str, float] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.set_default_timeout(300_000)
        t0 = time.perf_counter()
        page.goto(base + "/dashboard")
        page.fill("#login-key", ADMIN)
        page.click("#login-form button")
        page.wait_for_selector('body[data-rendered="spend"][data-loading=""]', state="attached")
        out["login to first view (7d)"] = (time.perf_counter() - t0) * 1000
        for view in ("routing", "savings", "stack", "budgets", "top", "live"):
            t0 = time.perf_counter()
            page.click(f'nav#tabs button[data-view="{view}"]')
            page.wait_for_selector(f'body[data-rendered="{view}"][data-loading=""]', state="attached")
            out[f"view {view} (7d)"] = (time.perf_counter() - t0) * 1000
        page.select_option("#f-range", "30d")
        t0 = time.perf_counter()
        page.click('nav#tabs button[data-view="spend"]')
        page.wait_for_selector('body[data-rendered="spend"][data-loading=""]', state="attached")
        out["view spend (30d)"] = (time.perf_counter() - t0) * 1000
        browser.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--baseline-rows", type=int, default=10_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "dashboard.json"))
    args = ap.parse_args()
    results: dict[str, object] = {"rows": args.rows, "baseline_rows": args.baseline_rows, "days": args.days}
    with tempfile.TemporaryDirectory() as tmp:
        measured = {}
        for label, n in (("baseline", args.baseline_rows), ("large", args.rows)):
            work = Path(tmp) / label
            (work / "data").mkdir(parents=True)
            build_s = build_ledger(work / "data", n, args.days)
            t0 = time.perf_counter()
            proc, base = serve(work)
            startup_s = time.perf_counter() - t0
            try:
                measured[label] = {
                    "build_s": build_s,
                    "startup_with_rollup_backfill_s": startup_s,
                    "db_mb": (work / "data" / "ledger.db").stat().st_size / 2**20,
                    "api": time_api(base, args.repeat),
                    "page": time_page(base),
                }
            finally:
                proc.terminate()
                proc.wait(30)
            print(f"{label}: {n} rows built in {build_s:.0f} s", flush=True)
        results.update(measured)
        ratios = {
            k: v["median_ms"] / max(measured["baseline"]["api"][k]["median_ms"], 0.01)
            for k, v in measured["large"]["api"].items()
        }
        results["api_ratio_large_vs_baseline"] = ratios
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"{'call':45s} {'base ms':>9s} {'1M ms':>9s}")
    for k, v in measured["large"]["api"].items():
        print(f"{k:45s} {measured['baseline']['api'][k]['median_ms']:9.1f} {v['median_ms']:9.1f}")
    for k, v in measured["large"]["page"].items():
        print(f"page {k:40s} {measured['baseline']['page'].get(k, 0):9.1f} {v:9.1f}")


if __name__ == "__main__":
    main()
