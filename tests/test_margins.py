"""Margins that add up: three tenants on three plans (pass-through, a 25% markup, a fixed price for an
alias), mixed traffic with a cascade, a self-hosted model, an unpriced model and a stream. Every
figure the product shows (usage API and its waterfall, report, Savings / insights, FOCUS) is
recomputed here independently from the ledger's raw lines (the SQLite file, read with sqlite3)."""

from __future__ import annotations

from datetime import datetime, timezone

import json
import math
import sqlite3
import subprocess
import time
from collections import defaultdict

import httpx
import pytest

from pricing import Plan, Usage, cost_of
from pricing.loaders import load_catalog
from tests.conftest import ADMIN_KEY, KEY_A, KEY_B, KEY_C, SWITCHYARD, start_gateway, start_mock
from tests.test_dashboard import browser  # noqa: F401,F811 - the headless Chromium fixture
from tests.test_focus import export
from tests.test_ledger import record

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
KEYS = {"a": KEY_A, "b": KEY_B, "c": KEY_C}
PLANS = {
    "pass-through": Plan(),
    "markup": Plan(markup=0.25),
    "fixed": Plan.model_validate({"fixed": {"auto-cascade": {"input_per_mtok": 1.0, "output_per_mtok": 4.0}}}),
}
TENANT_PLAN = {"a": "pass-through", "b": "markup", "c": "fixed"}
CATALOG_KEY = {
    "small": "gpt-4.1-nano",
    "frontier": "gpt-4o",
    "checker": "gpt-4o-mini",
    "open": "self-hosted/llama-3.1-8b-instruct",
}

CONFIG = """
model_list:
  - {model_name: small, litellm_params: {model: simulated/small, speed: 100}}
  - {model_name: frontier, litellm_params: {model: simulated/frontier, speed: 100}}
  - {model_name: checker, litellm_params: {model: simulated/mid, speed: 100}}
  - {model_name: open, litellm_params: {model: simulated/open-weights, speed: 100}}
  - model_name: mystery
    litellm_params: {model: openai/mock-gpt, api_base: '%(mock)s/v1', api_key: os.environ/MOCK_PROVIDER_KEY}
policies: {dirs: ['%(policies)s']}
billing:
  default_plan: pass-through
  plans:
    pass-through: {}
    markup: {markup: 0.25}
    fixed: {fixed: {auto-cascade: {input_per_mtok: 1.0, output_per_mtok: 4.0}}}
auth:
  admin_key: os.environ/TEST_ADMIN_KEY
  tenants: [{id: a, plan: pass-through}, {id: b, plan: markup}, {id: c, plan: fixed}]
  keys:
    - {id: key-a, tenant: a, key: os.environ/TEST_KEY_A}
    - {id: key-b, tenant: b, key: os.environ/TEST_KEY_B}
    - {id: key-c, tenant: c, key: os.environ/TEST_KEY_C}
"""
POLICY = """
name: cascade
bind: {aliases: [auto-cascade]}
objective: {type: cascade, steps: [small, frontier], check: {type: agreement, with: [checker]}}
"""


def _chat(gw, tenant: str, model: str, seed: int, stream: bool = False) -> str:
    body = {
        "model": model,
        "seed": seed,
        "max_tokens": 40,
        "stream": stream,
        "messages": [{"role": "user", "content": f"Tell me something about routers ({seed})."}],
    }
    with httpx.stream(
        "POST",
        gw.base + "/v1/chat/completions",
        json=body,
        timeout=30,
        headers={"authorization": f"Bearer {KEYS[tenant]}"},
    ) as r:
        r.read()
        assert r.status_code == 200, r.text
        return r.headers["x-request-id"]


@pytest.fixture(scope="module")
def mgw(tmp_path_factory):
    d = tmp_path_factory.mktemp("margins")
    (d / "policies").mkdir()
    (d / "policies" / "cascade.yaml").write_text(POLICY)
    mock = start_mock(d / "mock")
    gw = start_gateway(d / "gw", CONFIG % {"mock": mock.base, "policies": d / "policies"})
    ids = []
    for tenant in KEYS:
        for seed in range(3):
            ids.append(_chat(gw, tenant, "auto-cascade", seed=5 + seed))  # escalates or not, by its check
            ids.append(_chat(gw, tenant, "small", seed=seed))
            ids.append(_chat(gw, tenant, "open", seed=seed))  # self-hosted: costed at GPU time
            ids.append(_chat(gw, tenant, "mystery", seed=seed))  # no price known
        ids.append(_chat(gw, tenant, "frontier", seed=1, stream=True))
    for rid in ids:
        record(gw, rid)
    gw.extra.update(ids=ids, until=time.time() + 1, ledger=d / "gw" / ".switchyard" / "ledger.db", mock=mock)
    yield gw
    gw.stop()
    mock.stop()


def raw_lines(gw) -> list[dict]:
    """The ledger's cost lines, read straight from the database: a request with several priced calls as
    its rows in ``calls``, any other as its own row in ``requests``."""
    path = gw.extra["ledger"]
    assert path.exists(), sorted(str(p) for p in path.parent.parent.rglob("*.db"))
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        split = {r["request_id"] for r in db.execute("SELECT DISTINCT request_id FROM calls")}
        out = [dict(r) for r in db.execute("SELECT * FROM calls")]
        out += [dict(r) for r in db.execute("SELECT * FROM requests") if r["request_id"] not in split]
    return out


def _usage(x: dict) -> Usage:
    return Usage(
        x["prompt_tokens"],
        x["completion_tokens"],
        cached_tokens=x["cached_tokens"],
        cache_write_tokens=x["cache_write_tokens"],
        reasoning_tokens=x["reasoning_tokens"],
    )


def expected(lines: list[dict]) -> dict:
    """Booked charge, cost and operator margin per tenant, and each plan's charge for all priced chat
    lines, computed from the lines alone (a plan marks up the list price: for the self-hosted model its
    catalog price; the operator's cost is the line's cost, its GPU time)."""
    catalog = load_catalog()
    out: dict = {
        "tenant": defaultdict(lambda: defaultdict(float)),
        "plan_charge": defaultdict(float),
        "cost": 0.0,
        "unpriced_requests": 0,
    }
    priced = [x for x in lines if x["cost_usd"] is not None and x["charge_usd"] is not None]
    for x in lines:
        if x["cost_usd"] is None:
            assert x["charge_usd"] is None and x["model"] == "mystery"
            out["unpriced_requests"] += 1
    for x in priced:
        t = out["tenant"][x["tenant"]]
        t["charge"] += x["charge_usd"]
        t["cost"] += x["cost_usd"]
        out["cost"] += x["cost_usd"]
        listed = cost_of(
            _usage(x), catalog.price(CATALOG_KEY[x["model"]], datetime.fromtimestamp(x["ts"], timezone.utc))
        ).total
        if x["model"] != "open":
            assert listed == pytest.approx(x["cost_usd"], rel=1e-9), "an API model costs its list price"
        for name, plan in PLANS.items():
            out["plan_charge"][name] += plan.charge(x["alias"], _usage(x), listed)
        # what the ledger booked is the tenant's own plan's charge
        assert x["charge_usd"] == pytest.approx(
            PLANS[TENANT_PLAN[x["tenant"]]].charge(x["alias"], _usage(x), listed), rel=1e-9
        )
    return out


def test_every_figure_recomputes_from_the_ledger_lines(mgw, tmp_path) -> None:
    lines = raw_lines(mgw)
    assert {x["role"] for x in lines if "role" in x} >= {"cascade_step", "check", "answer"}, "a cascade escalated"
    want = expected(lines)
    until = mgw.extra["until"]

    # the usage API (and so the dashboard's Spend and Stack views) per tenant, and its waterfall
    rows = {
        r["tenant"]: r
        for r in httpx.get(
            mgw.base + "/admin/usage",
            headers=ADMIN,
            params={"bucket": "none", "group_by": "tenant", "start": 0, "end": until},
        ).json()["data"]
    }
    for tenant, w in want["tenant"].items():
        r = rows[tenant]
        assert r["priced"] == "partial" and r["unpriced"] == 3, "the mystery model's requests, counted, not $0"
        assert r["charge_usd"] == pytest.approx(w["charge"], rel=1e-9)
        assert r["cost_usd"] == pytest.approx(w["cost"], rel=1e-9)
        assert r["app_margin_usd"] == pytest.approx(w["charge"] - w["cost"], rel=1e-9, abs=1e-12)
        assert r["layers"]["application"]["margin"] == pytest.approx(w["charge"] - w["cost"], rel=1e-9, abs=1e-12)
    assert rows["b"]["app_margin_usd"] > 0 and rows["a"]["app_margin_usd"] < 0, (
        "pass-through earns nothing on API calls and loses on the self-hosted model's GPU time at catalog price"
    )

    # a tenant sees its own charge and cost, never the operator's margin
    mine = httpx.get(
        mgw.base + "/v1/usage",
        headers={"authorization": f"Bearer {KEY_B}"},
        params={"bucket": "none", "start": 0, "end": until},
    ).json()["data"][0]
    assert mine["charge_usd"] == pytest.approx(want["tenant"]["b"]["charge"], rel=1e-9)
    assert "app_margin_usd" not in mine and "layers" not in mine

    # the report (JSON), by tenant
    res = subprocess.run(
        [
            SWITCHYARD,
            "report",
            "--by",
            "tenant",
            "--since",
            "0",
            "--until",
            str(until),
            "--json",
            "--url",
            mgw.base,
            "--key",
            ADMIN_KEY,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    for r in json.loads(res.stdout)["rows"]:
        w = want["tenant"][r["tenant"]]
        assert r["app_margin_usd"] == pytest.approx(w["charge"] - w["cost"], rel=1e-9, abs=1e-12)

    # Savings (the dashboard view reads /admin/insights/savings): each plan over all priced chat lines
    s = httpx.get(
        mgw.base + "/admin/insights/savings", headers=ADMIN, params={"start": 0, "end": until, "baseline": "frontier"}
    ).json()
    assert s["cost_usd"] == pytest.approx(want["cost"], rel=1e-9)
    assert s["unpriced"] == want["unpriced_requests"]
    booked_margin = math.fsum(w["charge"] - w["cost"] for w in want["tenant"].values())
    assert s["margin_usd"] == pytest.approx(booked_margin, rel=1e-9, abs=1e-12)
    plans = {p["plan"]: p for p in s["plans"]}
    for name in PLANS:
        assert plans[name]["charge_usd"] == pytest.approx(want["plan_charge"][name], rel=1e-9), name
        assert plans[name]["margin_usd"] == pytest.approx(want["plan_charge"][name] - want["cost"], rel=1e-9), name
    # per tenant, its own plan's figure in Savings is exactly what the ledger booked for it
    for tenant, plan in TENANT_PLAN.items():
        own = httpx.get(
            mgw.base + "/admin/insights/savings",
            headers=ADMIN,
            params={"start": 0, "end": until, "baseline": "frontier", "tenant": tenant},
        ).json()
        row = next(p for p in own["plans"] if p["plan"] == plan)
        w = want["tenant"][tenant]
        assert row["charge_usd"] == pytest.approx(w["charge"], rel=1e-9), tenant
        assert row["margin_usd"] == pytest.approx(w["charge"] - w["cost"], rel=1e-9, abs=1e-12), tenant
        assert own["margin_usd"] == pytest.approx(w["charge"] - w["cost"], rel=1e-9, abs=1e-12), tenant

    # FOCUS: billed and margin per tenant, unpriced rows flagged and blank
    focus = export(mgw, until, tmp_path / "focus.csv")
    for tenant, w in want["tenant"].items():
        mine_rows = [r for r in focus if r["SubAccountId"] == tenant and r["x_Unpriced"] == "false"]
        assert math.fsum(float(r["BilledCost"]) for r in mine_rows) == pytest.approx(w["charge"], rel=1e-9)
        assert math.fsum(float(r["x_ApplicationMargin"]) for r in mine_rows) == pytest.approx(
            w["charge"] - w["cost"], rel=1e-9, abs=1e-12
        )
    unpriced = [r for r in focus if r["x_Unpriced"] == "true"]
    assert {r["ResourceId"] for r in unpriced} == {"mystery"}
    assert all(
        r["ListCost"] == "" and r["x_ApplicationMargin"] == "" and float(r["BilledCost"]) == 0.0 for r in unpriced
    )
    assert not any(r["ResourceId"] == "mystery" for r in focus if r["x_Unpriced"] == "false")


def test_unpriced_traffic_is_counted_never_shown_as_zero_dollars(mgw) -> None:
    until = mgw.extra["until"]
    by_model = {
        r["model"]: r
        for r in httpx.get(
            mgw.base + "/admin/usage",
            headers=ADMIN,
            params={"bucket": "none", "group_by": "model", "start": 0, "end": until},
        ).json()["data"]
    }
    m = by_model["mystery"]
    assert m["priced"] == "none" and m["unpriced"] == m["requests"] == 9
    assert m["cost_usd"] is None and m["charge_usd"] is None
    assert m["prompt_tokens"] > 0 and m["unpriced_tokens"] == m["prompt_tokens"] + m["completion_tokens"]
    total = httpx.get(
        mgw.base + "/admin/usage", headers=ADMIN, params={"bucket": "none", "start": 0, "end": until}
    ).json()["data"][0]
    assert total["priced"] == "partial" and total["unpriced"] == 9
    assert total["unpriced_tokens"] == m["unpriced_tokens"]


def test_the_dashboard_shows_unpriced_traffic_as_a_badge_not_dollars(mgw, browser) -> None:  # noqa: F811
    from tests.test_dashboard import kpi, open_dashboard, rendered

    total = httpx.get(mgw.base + "/admin/usage", headers=ADMIN, params={"bucket": "none", "start": "1d"}).json()[
        "data"
    ][0]
    page, errors, _ = open_dashboard(browser, mgw, ADMIN_KEY)
    rendered(page, "spend")
    badge = page.locator('[data-kpi="unpriced"] [data-value]')
    assert kpi(page, "unpriced") == total["unpriced"] == 9
    assert int(badge.get_attribute("data-tokens")) == total["unpriced_tokens"] > 0
    assert kpi(page, "charge_usd") == pytest.approx(total["charge_usd"], rel=1e-12)
    # only the unpriced model: its spend reads "unpriced", not $0
    page.select_option("#f-model", "mystery")
    page.click("#filters button[type=submit]")
    rendered(page, "spend")
    charge = page.locator('section.view:not([hidden]) [data-kpi="charge_usd"] [data-kind]')
    assert charge.get_attribute("data-kind") == "unpriced" and charge.inner_text() == "unpriced"
    assert kpi(page, "unpriced") == 9
    assert not errors, errors
    page.close()
