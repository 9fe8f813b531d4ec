"""The cost dashboard: its APIs, `switchyard report`, and every view in a real headless Chromium.

One gateway process (simulated providers, SQLite ledger, budgets, two plans) is seeded with real
traffic from two tenants; the page and the report must show exactly what the ledger holds.
Screenshots of each view land in a temporary folder printed by the test.
"""

from __future__ import annotations

from datetime import datetime, timezone

import json
import os
import shutil
import math
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from pricing import Usage, cost_of
from pricing.loaders import load_catalog
from router.ledger.schema import SLICE_COLUMNS
from tests.conftest import ADMIN_KEY, KEY_A, KEY_B, SWITCHYARD, Proc, start_gateway

A = {"authorization": f"Bearer {KEY_A}"}
B = {"authorization": f"Bearer {KEY_B}"}
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
VIEWS = ["spend", "routing", "savings", "stack", "budgets", "top", "live", "whatif"]

CONFIG = """
model_list:
  - {model_name: sim-frontier, litellm_params: {model: simulated/frontier, speed: 50}}
  - {model_name: sim-mid, litellm_params: {model: simulated/mid, speed: 50}}
  - {model_name: sim-small, litellm_params: {model: simulated/small, speed: 50}}
  - {model_name: sim-open, litellm_params: {model: simulated/open-weights, speed: 50}}
  - {model_name: sim-reasoning, litellm_params: {model: simulated/reasoning, speed: 50}}
aliases:
  cheap: [sim-small, sim-open]
policies: {builtin: true}
server: {auth_failures_per_minute: 1000}
attribution: {tags: [feature]}
billing:
  default_plan: standard
  plans:
    standard: {markup: 0.25}
    flat-auto: {markup: 0.25, fixed: {auto: {input_per_mtok: 0.5, output_per_mtok: 2.0}}}
limits:
  budgets:
    - {scope: tenant, id: a, period: month, usd: 5}
    - {scope: key, id: "*", period: day, usd: 0.002, soft: true}
    - {scope: key, id: tenant-a, period: month, usd: 7, soft: true}
    - {scope: alias, id: cheap, period: month, usd: 9, soft: true}
auth:
  admin_key: os.environ/TEST_ADMIN_KEY
  keys:
    - {id: tenant-a, tenant: a, key: os.environ/TEST_KEY_A}
    - {id: tenant-b, tenant: b, key: os.environ/TEST_KEY_B}
"""

PROMPTS = [
    "Explain the difference between a mutex and a semaphore.",
    "Write a haiku about falling GPU prices.",
    "Prove that the square root of two is irrational, step by step.",
    "Translate 'invoice overdue' into French.",
]


def usage(gw: Proc, headers: dict, path: str = "/admin/usage", **params: object) -> list[dict]:
    r = httpx.get(gw.base + path, headers=headers, params={"bucket": "none", "start": "1d", **params})
    assert r.status_code == 200, r.text
    return r.json()["data"]


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("dashboard")
    gw = start_gateway(workdir, CONFIG, name="dash")
    sent = {"a": 0, "b": 0}
    with httpx.Client(base_url=gw.base, timeout=30) as http:
        for i in range(6):
            for tenant, headers, models in (
                ("a", A, ["auto", "cheap", "sim-mid", "sim-frontier"]),
                ("b", B, ["auto", "sim-small"]),
            ):
                for model in models:
                    body = {
                        "model": model,
                        "messages": [{"role": "user", "content": PROMPTS[i % 4] + f" ({i})"}],
                        "max_tokens": 30 + 10 * i,
                        "stream": i % 3 == 0,
                        "user": f"user-{i % 2}",
                        "metadata": {"feature": ("search", "chat", "docs")[i % 3]},
                    }
                    r = http.post("/v1/chat/completions", headers=headers, json=body)
                    assert r.status_code == 200, r.text
                    sent[tenant] += 1
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        rows = usage(gw, ADMIN, group_by="tenant")
        if {r["tenant"]: r["requests"] for r in rows} == sent:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"ledger did not catch up: {rows} != {sent}")
    gw.extra["sent"] = sent
    gw.extra["ledger"] = next(workdir.rglob("ledger.db"))
    yield gw
    gw.stop()


def ledger_sum(gw: Proc, where: str, args: tuple, cols: list[str]) -> list[float]:
    with sqlite3.connect(gw.extra["ledger"]) as db:
        return list(
            db.execute(
                f"SELECT {', '.join(f'COALESCE(SUM({c}), 0)' for c in cols)} FROM requests WHERE {where}", args
            ).fetchone()
        )


# ---- API --------------------------------------------------------------------------------------


def test_tenant_key_sees_only_its_tenant(dash) -> None:
    assert httpx.get(dash.base + "/v1/whoami", headers=A).json() == {
        "role": "tenant",
        "tenant": "a",
        "key_id": "tenant-a",
    }
    assert httpx.get(dash.base + "/v1/whoami", headers=ADMIN).json()["role"] == "admin"
    rows = usage(dash, A, "/v1/usage", group_by="tenant")
    assert [(r["tenant"], r["requests"]) for r in rows] == [("a", dash.extra["sent"]["a"])]
    for path in ("/v1/usage", "/v1/insights/savings", "/v1/requests/top", "/v1/insights/options"):
        r = httpx.get(dash.base + path, headers=A, params={"tenant": "b", "baseline": "sim-frontier"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "tenant_forbidden", path
    for path in ("/admin/usage", "/admin/insights/budgets", "/admin/insights/savings", "/admin/requests/top"):
        r = httpx.get(dash.base + path, headers=A)
        assert r.status_code == 403 and r.json()["error"]["type"] == "permission_error", path
    opts = httpx.get(dash.base + "/v1/insights/options", headers=B).json()
    served_b = {r["model"] for r in usage(dash, ADMIN, tenant="b", group_by="model")}
    assert opts["filters"]["tenant"] == ["b"] and set(opts["filters"]["model"]) == served_b
    top = httpx.get(dash.base + "/v1/requests/top", headers=B).json()["data"]
    assert top and {r["tenant"] for r in top} == {"b"}
    budgets = httpx.get(dash.base + "/v1/insights/budgets", headers=B).json()["data"]
    assert [(b["scope"], b["id"]) for b in budgets] == [("key", "tenant-b")]  # not tenant a's budget
    mine_savings = httpx.get(dash.base + "/v1/insights/savings", headers=A, params={"start": "7d"}).json()
    assert mine_savings["baseline"] and mine_savings["cost_usd"] > 0  # its own cost against the dearest model
    assert mine_savings["plans"] == []  # a tenant sees no operator margin, of its plan or any other
    mine = {
        (b["scope"], b["id"], b["limit_usd"])
        for b in httpx.get(dash.base + "/v1/insights/budgets", headers=A).json()["data"]
    }
    assert ("key", "tenant-a", 7) in mine and ("tenant", "a", 5) in mine and not any(b[0] == "alias" for b in mine)
    every = {
        (b["scope"], b["id"]) for b in httpx.get(dash.base + "/admin/insights/budgets", headers=ADMIN).json()["data"]
    }
    assert {("key", "tenant-a"), ("alias", "cheap"), ("tenant", "a")} <= every


def _owners(value: object) -> set[str]:
    """Every tenant or key id named anywhere in a JSON answer."""
    found: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            if k in ("tenant", "key_id") and isinstance(v, str):
                found.add(v)
            elif k == "scope" and v in ("key", "tenant") and isinstance(value.get("id"), str):
                found.add(value["id"])
            found |= _owners(v)
    elif isinstance(value, list):
        for v in value:
            found |= _owners(v)
    return found


def test_every_tenant_route_is_scoped_to_the_callers_tenant(dash) -> None:
    """Each GET route a tenant key may call (enumerated from the gateway's own OpenAPI document) shows
    tenant b nothing of tenant a: no tenant, key or budget rule of a's, and a's requests are 404."""
    spec = httpx.get(dash.base + "/openapi.json").json()
    paths = sorted(p for p, ops in spec["paths"].items() if "get" in ops and p.startswith("/v1/"))
    assert {
        "/v1/insights/budgets",
        "/v1/insights/savings",
        "/v1/insights/options",
        "/v1/insights/whatif",
        "/v1/usage",
        "/v1/requests/top",
        "/v1/requests/{request_id}",
    } <= set(paths), paths
    top_a = httpx.get(dash.base + "/v1/requests/top", headers=A).json()["data"]
    a_request = top_a[0]["request_id"]
    a_response = "resp_of_tenant_a"  # (a stored response's own scoping: tests/test_api_surfaces.py)
    params = {"baseline": "sim-frontier", "policy": "auto", "start": "1d", "bucket": "none", "group_by": "tenant"}
    for path in paths:
        url = dash.base + path.replace("{request_id}", a_request).replace("{model}", "sim-mid").replace(
            "{response_id}", a_response
        )
        r = httpx.get(url, headers=B, params=params)
        if "{request_id}" in path or "{response_id}" in path:
            assert r.status_code == 404, (path, r.text[:200])
            continue
        assert r.status_code in (200, 400), (path, r.status_code, r.text[:200])
        owners = _owners(r.json())
        assert owners <= {"b", "tenant-b"}, (path, owners)
        assert "tenant-a" not in r.text, path


def test_waterfall_totals_equal_the_ledger(dash) -> None:
    cols = ["charge_usd", "cost_usd", *SLICE_COLUMNS.values()]
    for params, where, args in (
        ({}, "1=1", ()),
        ({"tenant": "a"}, "tenant = ?", ("a",)),
        ({"alias": "auto"}, "alias = ?", ("auto",)),
    ):
        [row] = usage(dash, ADMIN, **params)
        expected = ledger_sum(dash, where, args, cols)
        for col, want in zip(cols, expected):
            assert row[col] == pytest.approx(want, rel=1e-12, abs=1e-15), (params, col)
        assert sum(row[c] for c in SLICE_COLUMNS.values()) == pytest.approx(row["charge_usd"], rel=1e-9)
        layers = row["layers"]
        assert layers["application"]["revenue"] == pytest.approx(row["charge_usd"])
        # what serving cost the operator: the API's price, or GPU rent for self-hosted traffic (which
        # 'auto' may pick when the machine is loaded and its latency constraints move)
        [served] = ledger_sum(dash, where, args, ["charge_usd - app_margin_usd"])
        assert layers["paas"]["revenue"] == pytest.approx(served)
        [api_cost] = ledger_sum(dash, f"({where}) AND serving = 'api'", args, ["cost_usd"])
        [self_hosted] = ledger_sum(
            dash, f"({where}) AND serving = 'self_hosted'", args, ["charge_usd - app_margin_usd"]
        )
        assert layers["paas"]["revenue"] == pytest.approx(api_cost + self_hosted)
        # one cost: the ledger's cost (API price, or GPU-hours for self-hosted) is what the stack books
        assert layers["paas"]["revenue"] == pytest.approx(row["cost_usd"], rel=1e-9)
        assert row["app_margin_usd"] == pytest.approx(row["charge_usd"] - row["cost_usd"], rel=1e-9, abs=1e-12)


def test_savings_against_a_baseline_model(dash) -> None:
    s = httpx.get(
        dash.base + "/admin/insights/savings", headers=ADMIN, params={"baseline": "sim-frontier", "start": "1d"}
    ).json()
    assert s["requests"] == sum(dash.extra["sent"].values())
    # Independently: every recorded request's tokens at sim-frontier's catalog price.
    price = load_catalog().price("gpt-4o", datetime.now(timezone.utc))  # what sim-frontier stands in for
    with sqlite3.connect(dash.extra["ledger"]) as db:
        rows = db.execute("SELECT prompt_tokens, completion_tokens, cached_tokens FROM requests").fetchall()
    baseline = sum(cost_of(Usage(p, c, cached_tokens=k), price).total for p, c, k in rows)
    assert s["baseline_cost_usd"] == pytest.approx(baseline, rel=1e-9)
    assert s["cost_usd"] == pytest.approx(ledger_sum(dash, "1=1", (), ["cost_usd"])[0], rel=1e-12)
    assert 0 < s["savings_usd"] < s["baseline_cost_usd"]  # the frontier model is the priciest on offer
    plans = {p["plan"]: p for p in s["plans"]}
    # A markup plan marks up the API list cost. For an API model that is the ledger's cost; for the
    # self-hosted sim-open (the auto policy's exploration picks it now and then) its stand-in's
    # catalog price, while its cost is its GPU time.
    catalog = load_catalog()
    with sqlite3.connect(dash.extra["ledger"]) as db:
        listed = [
            cost_of(
                Usage(p, c, cached_tokens=k),
                catalog.price("self-hosted/llama-3.1-8b-instruct", datetime.fromtimestamp(ts, timezone.utc)),
            ).total
            if model == "sim-open"
            else cost
            for model, p, c, k, cost, ts in db.execute(
                "SELECT model, prompt_tokens, completion_tokens, cached_tokens, cost_usd, ts FROM requests"
            )
        ]
    list_cost = math.fsum(listed)
    assert plans["standard"]["charge_usd"] == pytest.approx(1.25 * list_cost, rel=1e-9)
    assert plans["standard"]["margin_usd"] == pytest.approx(1.25 * list_cost - s["cost_usd"], rel=1e-9)
    # had it all gone to the baseline, a 25% markup plan would have earned 25% of the baseline cost;
    # routing to cheaper models earned the difference (negative: a markup shrinks with the cost)
    assert plans["standard"]["margin_at_baseline_usd"] == pytest.approx(0.25 * s["baseline_cost_usd"], rel=1e-9)
    assert plans["standard"]["routing_margin_usd"] == pytest.approx(
        1.25 * list_cost - s["cost_usd"] - 0.25 * s["baseline_cost_usd"], rel=1e-9
    )
    assert plans["flat-auto"]["charge_usd"] != pytest.approx(plans["standard"]["charge_usd"])
    for p in plans.values():
        assert p["margin_usd"] == pytest.approx(p["charge_usd"] - s["cost_usd"], rel=1e-9)
        assert p["routing_margin_usd"] == pytest.approx(p["margin_usd"] - p["margin_at_baseline_usd"], rel=1e-9)
    # no baseline named: the model that would have cost the most for this traffic, so routing saved
    auto = httpx.get(dash.base + "/admin/insights/savings", headers=ADMIN, params={"start": "1d"}).json()
    assert auto["baseline"] == "sim-frontier" and auto["savings_usd"] > 0
    for other in httpx.get(dash.base + "/admin/insights/options", headers=ADMIN).json()["baselines"]:
        alt = httpx.get(
            dash.base + "/admin/insights/savings", headers=ADMIN, params={"baseline": other, "start": "1d"}
        ).json()
        assert alt["baseline_cost_usd"] <= auto["baseline_cost_usd"] + 1e-12


def test_policy_what_if_replays_recorded_traffic(dash) -> None:
    r = httpx.get(dash.base + "/admin/insights/whatif", headers=ADMIN, params={"policy": "auto", "start": "1d"}).json()
    assert r["requests"] == sum(dash.extra["sent"].values()) and r["skipped"] == 0
    assert r["actual_cost_usd"] == pytest.approx(ledger_sum(dash, "1=1", (), ["cost_usd"])[0], rel=1e-12)
    assert sum(p["requests"] for p in r["picks"]) == r["requests"]
    # A policy that always sends everything to the frontier model costs exactly the savings baseline.
    fixed = "name: all-frontier\nbind: {aliases: [frontier-only]}\nobjective: {type: fixed, model: sim-frontier}\n"
    w = httpx.post(
        dash.base + "/admin/insights/whatif", headers=ADMIN, params={"start": "1d"}, json={"yaml": fixed}
    ).json()
    runs = [
        e for e in httpx.get(dash.base + "/admin/audit", headers=ADMIN).json()["data"] if e["action"] == "whatif.run"
    ]
    assert {e["target"] for e in runs} >= {"auto", "pasted policy"}  # an admin's replays are audited
    s = httpx.get(
        dash.base + "/admin/insights/savings", headers=ADMIN, params={"baseline": "sim-frontier", "start": "1d"}
    ).json()
    assert w["estimated_cost_usd"] == pytest.approx(s["baseline_cost_usd"], rel=1e-9)
    assert [p["model"] for p in w["picks"]] == ["sim-frontier"]
    # A named cascade is priced at its expected cost: small and its checker always, frontier when
    # small fails (as often as small's prior says): below sending everything to frontier
    named = (
        "name: checked\nbind: {aliases: [checked]}\ncandidates: [checked]\nobjective: {type: utility, lambda: 0}\n"
        "cascades: {checked: {steps: [sim-small, sim-frontier], check: {type: agreement, with: [sim-open]}}}\n"
        "quality: {priors: {sim-small: 0.5}, bandit: {enabled: false}}\n"
    )
    c = httpx.post(
        dash.base + "/admin/insights/whatif", headers=ADMIN, params={"start": "1d"}, json={"yaml": named}
    ).json()
    assert [p["model"] for p in c["picks"]] == ["checked"] and c["requests"] == r["requests"]
    assert 0 < c["estimated_cost_usd"] < s["baseline_cost_usd"]
    bad = httpx.post(
        dash.base + "/admin/insights/whatif", headers=ADMIN, json={"yaml": "name: x\nobjective: {type: nope}"}
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_policy"
    assert httpx.post(dash.base + "/admin/insights/whatif", headers=A, json={"yaml": fixed}).status_code == 403
    own = httpx.get(dash.base + "/v1/insights/whatif", headers=B, params={"policy": "auto", "start": "1d"}).json()
    assert own["requests"] == dash.extra["sent"]["b"]


def test_report_matches_the_usage_api(dash) -> None:
    now = time.time()
    start, end = repr(now - 86400), repr(now + 5)
    env = {**os.environ, "SWITCHYARD_URL": dash.base}
    for key, path in ((ADMIN_KEY, "/admin/usage"), (KEY_A, "/v1/usage")):
        for by in ("model", "alias", "tenant"):
            out = subprocess.run(
                [SWITCHYARD, "report", "--since", start, "--until", end, "--by", by, "--json"],
                env={**env, "SWITCHYARD_API_KEY": key},
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert out.returncode == 0, out.stderr
            api = usage(dash, {"authorization": f"Bearer {key}"}, path, start=start, end=end, group_by=by)
            assert json.loads(out.stdout)["rows"] == api
    out = subprocess.run(
        [SWITCHYARD, "report", "--since", start, "--until", end, "--by", "layer", "--json"],
        env={**env, "SWITCHYARD_API_KEY": KEY_A},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0 and "needs the admin key" in out.stderr  # a tenant sees no operator margin
    out = subprocess.run(
        [SWITCHYARD, "report", "--since", start, "--until", end, "--by", "layer", "--json"],
        env={**env, "SWITCHYARD_API_KEY": ADMIN_KEY},
        capture_output=True,
        text=True,
        timeout=60,
    )
    [total] = usage(dash, ADMIN, "/admin/usage", start=start, end=end)
    assert {r["layer"]: r["margin"] for r in json.loads(out.stdout)["rows"]} == {
        k: v["margin"] for k, v in total["layers"].items() if k != "pass_through"
    }
    table = subprocess.run(
        [SWITCHYARD, "report", "--since", start, "--until", end, "--by", "model"],
        env={**env, "SWITCHYARD_API_KEY": KEY_A},
        capture_output=True,
        text=True,
        timeout=60,
    )
    [mine] = usage(dash, A, "/v1/usage", start=start, end=end)
    assert table.returncode == 0 and "Total" in table.stdout and f"{mine['requests']:,}" in table.stdout
    assert KEY_A not in table.stdout + table.stderr
    bad = subprocess.run(
        [SWITCHYARD, "report"], env={**env, "SWITCHYARD_API_KEY": "wrong"}, capture_output=True, text=True
    )
    assert bad.returncode == 1 and "401" in bad.stderr and "Traceback" not in bad.stderr


def test_dashboard_assets_are_local_and_locked_down(dash) -> None:
    page = httpx.get(dash.base + "/dashboard")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "http://" not in page.text and "https://" not in page.text  # nothing from a CDN
    js = httpx.get(dash.base + "/dashboard/static/chart.umd.min.js")
    assert js.status_code == 200 and "Chart.js v4" in js.text[:200]
    for bad in ("../app.py", "..%2Fapp.py", "nope.js", ".hidden.js"):
        assert httpx.get(dash.base + "/dashboard/static/" + bad).status_code == 404


# ---- browser ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but Debian's chromium is not installed (.ci/run installs it)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield b
        b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dashboard-screenshots")
    print(f"\ndashboard screenshots: {path}")
    return path


CHART_DATA = """() => [...document.querySelectorAll('section.view:not([hidden]) canvas')].map(c => {
  const ch = Chart.getChart(c);
  if (!ch) return [c.id, 0, 0];
  const values = ch.data.datasets.flatMap(d => d.data.map(v =>
    Array.isArray(v) ? v[1] - v[0] : (v !== null && typeof v === 'object') ? v.y : v));
  return [c.id, values.filter(v => typeof v === 'number' && isFinite(v)).length, values.reduce((a, v) => a + Math.abs(v || 0), 0)];
})"""


def open_dashboard(browser, dash: Proc, key: str):
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    page.set_default_timeout(20_000)
    errors: list[str] = []
    calls: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: calls.append(r.url))
    page.goto(dash.base + "/dashboard")
    page.fill("#login-key", key)
    page.click("#login-form button")
    return page, errors, calls


def rendered(page, view: str) -> None:
    page.wait_for_selector(f'body[data-rendered="{view}"][data-loading=""]', state="attached")


def kpi(page, name: str) -> float:
    return float(page.get_attribute(f'section.view:not([hidden]) [data-kpi="{name}"] [data-value]', "data-value"))


def test_login_rejects_a_bad_key(dash, browser, shots) -> None:
    page, _, _ = open_dashboard(browser, dash, "not-a-real-key")
    page.wait_for_selector("#login-error:not([hidden])")
    assert "not accepted" in page.inner_text("#login-error")
    assert page.is_hidden("#app")
    page.screenshot(path=str(shots / "login-rejected.png"))
    page.close()


def test_admin_sees_every_view_with_data(dash, browser, shots) -> None:
    page, errors, calls = open_dashboard(browser, dash, ADMIN_KEY)
    rendered(page, "spend")
    assert "admin" in page.inner_text("#role-badge") and page.is_visible("#f-tenant")
    [total] = usage(dash, ADMIN, start="7d")
    for view in VIEWS:
        page.click(f'nav#tabs button[data-view="{view}"]')
        rendered(page, view)
        if view == "whatif":
            page.select_option("#whatif-policy", "auto")
            page.click("#whatif-form button[type=submit]")
            page.wait_for_selector("#whatif-table tbody tr")
            rendered(page, view)
        assert page.is_hidden("#status"), page.inner_text("#status")
        data = page.evaluate(CHART_DATA)
        assert data or view == "top", view  # top requests is a table
        for chart_id, points, total_abs in data:  # the error-rate chart may rightly be all zeros
            assert points > 0 and (total_abs > 0 or chart_id == "live-errors"), (view, chart_id, points, total_abs)
        page.screenshot(path=str(shots / f"admin-{view}.png"), full_page=True)
        if view == "spend":
            assert kpi(page, "charge_usd") == pytest.approx(total["charge_usd"], rel=1e-12)
            assert kpi(page, "requests") == total["requests"] == sum(dash.extra["sent"].values())
        if view == "stack":
            assert kpi(page, "charge_usd") == pytest.approx(total["charge_usd"], rel=1e-12)
            assert kpi(page, "app_margin_usd") == pytest.approx(total["app_margin_usd"], rel=1e-12)
            cells = page.locator("#stack-table tbody tr").first.locator("[data-value]")
            assert float(cells.nth(0).get_attribute("data-value")) == pytest.approx(
                total["layers"]["application"]["revenue"]
            )
        if view == "savings":
            s = httpx.get(
                dash.base + "/admin/insights/savings",
                headers=ADMIN,
                params={"baseline": page.input_value("#savings-baseline"), "start": "7d"},
            ).json()
            assert kpi(page, "baseline_cost_usd") == pytest.approx(s["baseline_cost_usd"], rel=1e-12)
            assert page.input_value("#savings-baseline") == ""  # first render: the dearest model for the traffic
            assert kpi(page, "savings_usd") >= 0 and kpi(page, "savings_usd") == pytest.approx(
                s["savings_usd"], rel=1e-9
            )
        if view == "top":
            assert page.locator("#top-table tbody tr").count() == 20
            assert "Why:" in page.inner_text("#top-detail")
        if view == "budgets":
            # tenant a's month, each key's day, key tenant-a's own month and the alias cheap's month
            assert page.locator("[data-budget]").count() == 5
    # the tenant filter narrows every view to that tenant
    page.select_option("#f-tenant", "b")
    page.click("#filters button[type=submit]")
    rendered(page, "whatif")
    page.click('nav#tabs button[data-view="spend"]')
    rendered(page, "spend")
    [b_total] = usage(dash, ADMIN, start="7d", tenant="b")
    assert kpi(page, "charge_usd") == pytest.approx(b_total["charge_usd"], rel=1e-12)
    assert not errors, errors
    assert all("127.0.0.1" in u or u.startswith("data:") for u in calls), calls  # nothing from the internet
    page.close()


def test_spend_by_tag_and_the_user_filter(dash, browser, shots) -> None:
    page, errors, _ = open_dashboard(browser, dash, ADMIN_KEY)
    rendered(page, "spend")
    page.select_option("#spend-by", "tag:feature")
    rendered(page, "spend")
    got = page.evaluate("""() => Object.fromEntries(Chart.getChart(document.getElementById('spend-chart')).data.datasets
        .map(d => [d.label, d.data.reduce((a, v) => a + v, 0)]))""")
    with sqlite3.connect(dash.extra["ledger"]) as db:
        want = dict(db.execute("SELECT json_extract(tags, '$.feature'), SUM(charge_usd) FROM requests GROUP BY 1"))
    assert set(got) == set(want) == {"search", "chat", "docs"}
    assert all(got[k] == pytest.approx(want[k], rel=1e-9) for k in want)
    page.fill("#f-user", "user-1")
    page.click("#filters button[type=submit]")
    rendered(page, "spend")
    assert kpi(page, "charge_usd") == pytest.approx(
        ledger_sum(dash, "end_user = ?", ("user-1",), ["charge_usd"])[0], rel=1e-12
    )
    page.screenshot(path=str(shots / "admin-spend-by-tag.png"), full_page=True)
    assert not errors, errors
    page.close()


def test_budgets_view_shows_the_alert_history(dash, browser, shots) -> None:
    # the fixture's traffic crosses thresholds of its soft budgets; with no webhook they are logged
    history = httpx.get(dash.base + "/admin/alerts", headers=ADMIN).json()["data"]
    assert history and {h["status"] for h in history} == {"logged"}
    page, errors, _ = open_dashboard(browser, dash, ADMIN_KEY)
    rendered(page, "spend")
    page.click('nav#tabs button[data-view="budgets"]')
    rendered(page, "budgets")
    rows = page.locator("#alerts-table tbody tr")
    assert rows.count() == len(history)
    for alert, row in zip(history, rows.all()):  # threshold alerts and, early in the day, forecast ones
        text = row.inner_text()
        budget = alert["payload"]["budget"]
        assert "logged" in text and f"({'daily' if budget['period'] == 'day' else 'monthly'} $" in text, text
        assert "[object" not in text, text
        if alert["kind"] == "forecast":  # the projected spend, in dollars
            assert "forecast $" in text, text
        else:
            assert f"{alert['threshold']}%" in text, text
    page.screenshot(path=str(shots / "admin-budgets-alerts.png"), full_page=True)
    assert not errors, errors
    page.close()
    # a tenant's Budgets view has no alert history (the admin's)
    page, errors, _ = open_dashboard(browser, dash, KEY_A)
    rendered(page, "spend")
    page.click('nav#tabs button[data-view="budgets"]')
    rendered(page, "budgets")
    assert page.is_hidden("#alerts-card") and not errors
    page.close()


def test_tenant_sees_only_its_own_traffic(dash, browser, shots) -> None:
    page, errors, calls = open_dashboard(browser, dash, KEY_A)
    rendered(page, "spend")
    assert page.inner_text("#role-badge") == "tenant a" and page.is_hidden("#f-tenant-wrap")
    [own] = usage(dash, A, "/v1/usage", start="7d")
    assert kpi(page, "charge_usd") == pytest.approx(own["charge_usd"], rel=1e-12)
    assert kpi(page, "requests") == dash.extra["sent"]["a"]
    assert page.is_hidden("#tab-stack")  # the operator's margin is not shown to a tenant
    own_rows = usage(dash, A, "/v1/usage", start="7d", group_by="model")
    assert own_rows and all("layers" not in r and "app_margin_usd" not in r for r in own_rows)
    for view in [v for v in VIEWS if v != "stack"]:
        page.click(f'nav#tabs button[data-view="{view}"]')
        rendered(page, view)
        if view == "whatif":
            assert page.is_hidden("#whatif-yaml-wrap")
            page.click("#whatif-form button[type=submit]")
            page.wait_for_selector("#whatif-table tbody tr")
            rendered(page, view)
            assert kpi(page, "requests") == dash.extra["sent"]["a"]
        assert page.is_hidden("#status"), page.inner_text("#status")
        page.screenshot(path=str(shots / f"tenant-{view}.png"), full_page=True)
    top_tenants = (
        {t.strip() for t in page.locator("#top-table tbody tr td:nth-child(2)").all_inner_texts()}
        if page.locator("#top-table tbody tr").count()
        else set()
    )
    assert not errors, errors
    api_calls = [u.split("127.0.0.1", 1)[1] for u in calls if "/v1/" in u or "/admin/" in u]
    assert api_calls and not any("/admin/" in u for u in api_calls), api_calls
    # The page's own key cannot reach the admin API, nor another tenant through the tenant API.
    probe = page.evaluate(
        """async (key) => [
      (await fetch('/admin/usage', {headers: {Authorization: 'Bearer ' + key}})).status,
      (await fetch('/v1/usage?tenant=b', {headers: {Authorization: 'Bearer ' + key}})).status]""",
        KEY_A,
    )
    assert probe == [403, 403]
    page.click('nav#tabs button[data-view="top"]')
    rendered(page, "top")
    tenants = set(page.locator("#top-table tbody tr td:nth-child(2)").all_inner_texts())
    assert tenants == {"a"} and top_tenants <= {"a"}
    page.close()


def test_charts_keep_a_model_colour_a_bar_per_day_and_gaps_for_idle_minutes(dash, browser) -> None:
    page, errors, _ = open_dashboard(browser, dash, ADMIN_KEY)
    rendered(page, "spend")  # the default range, the last 7 days: day buckets, idle days included
    labels = page.evaluate("() => Chart.getChart('spend-chart').data.labels.length")
    assert labels in (7, 8), labels  # the range's edges may cut a day in two
    colours = lambda chart: page.evaluate(  # noqa: E731
        f"() => Object.fromEntries(Chart.getChart('{chart}').data.datasets.map(d => [d.label, d.backgroundColor]))"
    )
    spend = colours("spend-chart")
    page.click('nav#tabs button[data-view="routing"]')
    rendered(page, "routing")
    routing = colours("routing-chart")
    shared = set(spend) & set(routing)
    assert len(shared) >= 3 and all(spend[m] == routing[m] for m in shared), (spend, routing)
    page.click('nav#tabs button[data-view="live"]')
    rendered(page, "live")
    lat = page.evaluate("() => Chart.getChart('live-latency').data.datasets[0].data")
    assert any(v is None for v in lat), "idle minutes are gaps, not 0 ms"
    assert any(v is not None and v > 0 for v in lat)
    assert not errors, errors
    page.close()
