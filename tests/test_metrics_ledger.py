"""Prometheus's money and token series equal SQL over the ledger: requests, tokens by type, API cost,
charge, unpriced requests, and each stack layer's revenue, margin and loss, recomputed from the
ledger's own columns after mixed traffic (two priced models, an unpriced one, streams, a failure)."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import KEY_A, Proc, ledger_record, start_gateway

H = {"authorization": f"Bearer {KEY_A}"}


def config(mock_base: str) -> str:
    return f"""
model_list:
  - model_name: sim
    litellm_params: {{model: simulated/small, speed: 50}}
  - model_name: sim-mid
    litellm_params: {{model: simulated/mid, speed: 50}}
  - model_name: free
    litellm_params: {{model: openai/mock-gpt, api_base: '{mock_base}/v1'}}
  - model_name: broken
    litellm_params: {{model: openai/mock-500, api_base: '{mock_base}/v1'}}
auth:
  keys:
    - {{id: tenant-a, tenant: a, key: os.environ/TEST_KEY_A}}
billing:
  default_plan: standard
  plans: {{standard: {{markup: 0.3}}}}
"""


@pytest.fixture(scope="module")
def gw(mock_upstream: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    g = start_gateway(tmp_path_factory.mktemp("metrics-ledger"), config(mock_upstream.base))
    yield g
    g.stop()


def series(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_prometheus_money_equals_the_ledger(gw: Proc) -> None:
    sent = []
    for i in range(12):
        model = ("sim", "sim-mid", "free", "broken")[i % 4]
        body = {
            "model": model,
            "messages": [{"role": "user", "content": f"question {i} " * (1 + i)}],
            "max_tokens": 5 + i,
            "stream": i % 3 == 0,
        }
        r = httpx.post(gw.base + "/v1/chat/completions", headers=H, json=body, timeout=30)
        assert r.status_code == (502 if model == "broken" else 200), r.text
        sent.append(r.headers["x-request-id"])
    for rid in sent:  # every request reached a backend: each is in the ledger
        ledger_record(gw, KEY_A, rid)
    got = series(httpx.get(gw.base + "/metrics").text)
    db = sqlite3.connect(Path(gw.log.parent) / ".switchyard" / "ledger.db")
    rows = db.execute(
        "SELECT endpoint, model, provider, status, cache, prompt_tokens, cached_tokens, completion_tokens, "
        "reasoning_tokens, cost_usd, charge_usd, app_margin_usd, paas_margin_usd, model_lab_usd, iaas_margin_usd, "
        "electricity_usd, colocation_usd, other_capex_usd, chip_cost_usd, chip_margin_usd FROM requests"
    ).fetchall()
    assert len(rows) == len(sent)

    want: dict[tuple[str, tuple[tuple[str, str], ...]], float] = defaultdict(float)

    def add(name: str, value: float, **labels: str) -> None:
        want[(name, tuple(sorted(labels.items())))] += value

    for (
        endpoint,
        model,
        provider,
        status,
        cache,
        p,
        cached,
        c,
        reasoning,
        cost,
        charge,
        app,
        paas,
        lab,
        iaas,
        *rest,
    ) in rows:
        # a request no attempt answered has no deployment: the ledger's model is NULL, the series' "none"
        add("switchyard_requests_total", 1, endpoint=endpoint, model=model or "none", status=str(status))
        if status != 200:
            continue  # a failed attempt is metered with no tokens and no price
        for kind, n in (("input", p - cached), ("cached_input", cached), ("output", c - reasoning)):
            if n:
                add("switchyard_tokens_total", n, model=model, provider=provider, type=kind)
        if cost is None:
            add("switchyard_unpriced_requests_total", 1, model=model)
            continue
        add("switchyard_cost_usd_total", cost, model=model, provider=provider)
        add("switchyard_charge_usd_total", charge, model=model)
        electricity, colocation, capex, chip_cost, chip_margin = rest
        add("switchyard_stack_revenue_usd_total", charge, layer="application")
        add("switchyard_stack_revenue_usd_total", cost, layer="paas")  # the API's price of the tokens
        add("switchyard_stack_revenue_usd_total", lab, layer="model_lab")
        rent = iaas + electricity + colocation + capex + chip_cost + chip_margin
        add("switchyard_stack_revenue_usd_total", rent, layer="iaas")
        add("switchyard_stack_revenue_usd_total", chip_cost + chip_margin, layer="chips")
        for layer, margin in (("application", app), ("paas", paas), ("iaas", iaas), ("chips", chip_margin)):
            if margin >= 0:
                add("switchyard_stack_margin_usd_total", margin, layer=layer)
            else:
                add("switchyard_stack_loss_usd_total", -margin, layer=layer)

    assert {k[0] for k in want} >= {
        "switchyard_tokens_total",
        "switchyard_unpriced_requests_total",
        "switchyard_stack_margin_usd_total",
    }
    for key, value in want.items():
        assert got.get(key, 0.0) == pytest.approx(value, rel=1e-9, abs=1e-15), key
    # and no series the ledger does not account for
    for (name, labels), value in got.items():
        if name.startswith(
            ("switchyard_tokens_total", "switchyard_cost_usd_total", "switchyard_charge_usd_total")
        ) or name.startswith(("switchyard_unpriced_requests_total", "switchyard_requests_total")):
            assert value == pytest.approx(want.get((name, labels), 0.0), rel=1e-9, abs=1e-15), (name, labels)
