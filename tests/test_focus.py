"""The FOCUS export of the session gateway's ledger: columns, units, and totals that reconcile."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import time

import httpx
import pytest

from router.analytics.focus import COLUMNS
from tests.conftest import ADMIN_KEY, GATEWAY_ENV, KEY_A, KEY_B, SWITCHYARD
from tests.test_ledger import record

# FOCUS 1.2 columns that a cost-and-usage dataset must carry, plus the 1.3 provider columns.
MANDATORY = [
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "ContractedUnitPrice",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "ListUnitPrice",
    "PricingCategory",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "RegionId",
    "RegionName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "ServiceCategory",
    "ServiceName",
    "ServiceSubcategory",
    "SkuId",
    "SkuMeter",
    "SkuPriceId",
    "SubAccountId",
    "SubAccountName",
    "Tags",
    "ServiceProviderName",
    "HostProviderName",
]


def export(gw, until: float, out) -> list[dict]:
    """``switchyard export focus`` of a test gateway's ledger up to ``until``: the CSV's rows."""
    res = subprocess.run(
        [
            SWITCHYARD,
            "export",
            "focus",
            "--since",
            "0",
            "--until",
            str(until),
            "--out",
            str(out),
            "--config",
            str(gw.extra["config"]),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(gw.log.parent),
        env={**os.environ, **GATEWAY_ENV},
    )
    assert res.returncode == 0, res.stderr
    return list(csv.DictReader(open(out)))


def test_focus_export_reconciles_with_the_ledger(gateway, tmp_path) -> None:
    h = {"authorization": f"Bearer {KEY_A}"}
    for model in ("mock-gpt", "fast-sim"):
        r = httpx.post(
            gateway.base + "/v1/chat/completions",
            headers=h,
            json={"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5},
        )
    httpx.post(
        gateway.base + "/v1/chat/completions",
        headers={"authorization": f"Bearer {KEY_B}"},
        json={"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]},
    )
    u = httpx.post(
        gateway.base + "/v1/chat/completions",
        headers=h,
        json={"model": "mock-unpriced", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert u.status_code == 200, u.text
    record(gateway, u.headers["x-request-id"])
    record(gateway, r.headers["x-request-id"])
    time.sleep(0.3)
    until = time.time() + 1
    rows = export(gateway, until, tmp_path / "focus.csv")
    assert rows
    assert set(MANDATORY) <= set(rows[0]) and list(rows[0]) == COLUMNS
    for row in rows:
        assert row["ServiceCategory"] == "AI and Machine Learning" and row["ServiceSubcategory"] == "Generative AI"
        assert row["ConsumedUnit"] == "Tokens" and row["PricingUnit"] == "1000000 Tokens"
        assert row["SkuMeter"] in {
            "Input Tokens",
            "Cached Input Tokens",
            "Cache Write Tokens",
            "Output Tokens",
            "Reasoning Tokens",
        }
        assert float(row["PricingQuantity"]) == pytest.approx(int(row["ConsumedQuantity"]) / 1e6)
        assert row["ChargeCategory"] == "Usage" and row["BillingCurrency"] == "USD"
        assert row["ChargePeriodStart"] < row["ChargePeriodEnd"]
        assert row["SubAccountId"] in {"a", "b"}
        assert "CANARY" not in ",".join(row.values())
    usage = httpx.get(
        gateway.base + f"/admin/usage?bucket=none&start=0&end={until}", headers={"authorization": f"Bearer {ADMIN_KEY}"}
    ).json()["data"][0]
    billed = math.fsum(float(r["BilledCost"]) for r in rows)
    assert billed == pytest.approx(usage["charge_usd"], rel=1e-9, abs=1e-12)
    unpriced = [r for r in rows if r["x_Unpriced"] == "true"]
    assert unpriced and all(
        r["ResourceId"] == "mock-unpriced" and r["SkuPriceId"].endswith("|unpriced") for r in unpriced
    )
    assert all(r["ListCost"] == "" and r["x_ApiCost"] == "" and r["x_ApplicationMargin"] == "" for r in unpriced), (
        "an unknown cost is left blank, never written as $0"
    )
    rows = [r for r in rows if r["x_Unpriced"] == "false"]
    assert not any(r["ResourceId"] == "mock-unpriced" for r in rows)
    listed = math.fsum(float(r["ListCost"]) for r in rows)
    assert listed == pytest.approx(usage["cost_usd"], rel=1e-9, abs=1e-12)
    margins = math.fsum(float(r["x_ApplicationMargin"]) for r in rows)
    assert margins == pytest.approx(usage["app_margin_usd"], rel=1e-9, abs=1e-12)
    assert {r["SkuMeter"] for r in rows} >= {"Input Tokens", "Output Tokens"}
