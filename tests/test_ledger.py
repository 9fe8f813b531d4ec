"""Every request that reached a backend leaves one correct ledger record; the usage API reads them,
tenant by tenant. Runs against the session gateway (SQLite ledger) as a real process."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.conftest import ADMIN_KEY, KEY_A, KEY_B, Proc, stream_started

A = {"authorization": f"Bearer {KEY_A}"}
B = {"authorization": f"Bearer {KEY_B}"}
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
MSG = [{"role": "user", "content": "hi"}]


def record(gw: Proc, rid: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = httpx.get(f"{gw.base}/admin/requests/{rid}", headers=ADMIN)
        if r.status_code == 200:
            return r.json()
        time.sleep(0.05)
    raise AssertionError(f"no ledger record for {rid}")


def test_non_stream_record_is_complete(gateway) -> None:
    r = httpx.post(
        gateway.base + "/v1/chat/completions", headers=A, json={"model": "mock-gpt", "messages": MSG, "max_tokens": 4}
    )
    rec = record(gateway, r.headers["x-request-id"])
    assert rec["tenant"] == "a" and rec["key_id"] == "tenant-a" and rec["alias"] == "mock-gpt"
    assert rec["status"] == 200 and rec["stream"] is False and rec["usage_source"] == "upstream"
    assert (rec["prompt_tokens"], rec["completion_tokens"]) == (11, 4)
    assert rec["cost_usd"] == pytest.approx(11e-6 + 8e-6)
    assert rec["charge_usd"] == pytest.approx(rec["cost_usd"])  # pass-through plan, no markup
    assert rec["price_version"] == "config:mock-gpt@1970-01-01"
    assert rec["latency_s"] >= rec["upstream_s"] > 0 and rec["overhead_s"] >= 0
    slices = [
        rec[c]
        for c in (
            "app_margin_usd",
            "paas_margin_usd",
            "model_lab_usd",
            "iaas_margin_usd",
            "electricity_usd",
            "colocation_usd",
            "other_capex_usd",
            "chip_cost_usd",
            "chip_margin_usd",
        )
    ]
    assert sum(slices) == pytest.approx(rec["charge_usd"], abs=1e-12)
    assert "CANARY" not in json.dumps(rec)


def test_stream_without_client_usage_is_metered_exactly(gateway) -> None:
    with httpx.stream(
        "POST",
        gateway.base + "/v1/chat/completions",
        headers=A,
        json={"model": "mock-gpt", "messages": MSG, "max_tokens": 6, "stream": True},
    ) as s:
        rid = s.headers["x-request-id"]
        body = s.read().decode()
    assert '"usage"' not in body
    rec = record(gateway, rid)
    assert rec["stream"] is True and rec["status"] == 200 and rec["usage_source"] == "upstream"
    assert (rec["prompt_tokens"], rec["completion_tokens"]) == (11, 6)  # the mock's own usage chunk
    assert rec["ttft_s"] is not None and rec["ttft_s"] <= rec["latency_s"]


def test_stream_cut_is_metered_as_estimated(gateway) -> None:
    with httpx.stream(
        "POST",
        gateway.base + "/v1/chat/completions",
        headers=A,
        json={"model": "mock-cut", "messages": MSG, "max_tokens": 10, "stream": True},
    ) as s:
        rid = s.headers["x-request-id"]
        s.read()
    rec = record(gateway, rid)
    assert rec["usage_source"] == "estimated" and rec["error"] == "upstream_stream_cut"
    assert rec["completion_tokens"] == 3  # "hello world world": the three chunks relayed before the cut
    assert rec["cost_usd"] > 0


def test_failed_request_leaves_one_record(gateway) -> None:
    r = httpx.post(gateway.base + "/v1/chat/completions", headers=A, json={"model": "failover", "messages": MSG})
    rec = record(gateway, r.headers["x-request-id"])
    assert rec["model"] == "mock-gpt" and rec["fallbacks"] == 1
    assert [a["error"] for a in rec["attempts"]] == ["server_error", None]
    r = httpx.post(gateway.base + "/v1/chat/completions", headers=A, json={"model": "all-down", "messages": MSG})
    rec = record(gateway, r.headers["x-request-id"])
    assert rec["status"] == 503 and rec["error"] == "upstream_unavailable" and rec["model"] is None
    assert len(rec["attempts"]) == 2 and rec["charge_usd"] is None


def test_client_disconnect_leaves_one_estimated_record(gateway) -> None:
    s, got = stream_started(gateway, {"model": "mock-slow", "messages": MSG, "stream": True}, 4)
    s.close()
    rid = got.split(b"x-request-id: ")[1].split(b"\r\n")[0].decode()
    rec = record(gateway, rid)
    assert rec["status"] == 499 and rec["error"] == "client_disconnected"
    assert rec["usage_source"] == "estimated" and rec["completion_tokens"] >= 2 and rec["prompt_tokens"] > 0


def test_usage_api_is_tenant_scoped(gateway) -> None:
    ra = httpx.post(gateway.base + "/v1/chat/completions", headers=A, json={"model": "mock-gpt", "messages": MSG})
    rb = httpx.post(gateway.base + "/v1/chat/completions", headers=B, json={"model": "mock-gpt", "messages": MSG})
    record(gateway, ra.headers["x-request-id"])
    record(gateway, rb.headers["x-request-id"])
    mine = httpx.get(gateway.base + "/v1/usage?group_by=tenant,model&bucket=none", headers=B).json()
    assert {row["tenant"] for row in mine["data"]} == {"b"}
    # parameters cannot widen the scope
    mine2 = httpx.get(gateway.base + "/v1/usage?group_by=tenant&bucket=none&tenant=a", headers=B)
    assert mine2.status_code == 403 and mine2.json()["error"]["code"] == "tenant_forbidden"
    # nor can id guessing
    assert httpx.get(f"{gateway.base}/v1/requests/{ra.headers['x-request-id']}", headers=B).status_code == 404
    assert httpx.get(f"{gateway.base}/v1/requests/{rb.headers['x-request-id']}", headers=B).status_code == 200
    # the admin view needs the admin key
    assert httpx.get(gateway.base + "/admin/usage", headers=B).status_code == 403
    assert httpx.get(gateway.base + "/admin/usage").status_code == 401
    every = httpx.get(gateway.base + "/admin/usage?group_by=tenant&bucket=none", headers=ADMIN).json()
    assert {"a", "b"} <= {row["tenant"] for row in every["data"]}
    only_a = httpx.get(gateway.base + "/admin/usage?group_by=tenant&bucket=none&tenant=a", headers=ADMIN).json()
    assert {row["tenant"] for row in only_a["data"]} == {"a"}


def test_usage_api_buckets_pagination_and_layers(gateway) -> None:
    for _ in range(3):
        r = httpx.post(gateway.base + "/v1/chat/completions", headers=A, json={"model": "fast-sim", "messages": MSG})
    record(gateway, r.headers["x-request-id"])
    data = httpx.get(gateway.base + "/v1/usage?group_by=model&bucket=hour&limit=1", headers=A).json()
    assert len(data["data"]) == 1 and data["has_more"] is True
    assert data["data"][0]["bucket_start"].endswith(":00:00Z")
    page2 = httpx.get(gateway.base + "/v1/usage?group_by=model&bucket=hour&limit=1&offset=1", headers=A).json()
    assert page2["data"][0] != data["data"][0]
    row = httpx.get(gateway.base + "/v1/usage?bucket=none&model=fast-sim", headers=A).json()["data"][0]
    assert "layers" not in row and "app_margin_usd" not in row  # a tenant sees its charge, not the operator's margin
    row = httpx.get(gateway.base + "/admin/usage?bucket=none&model=fast-sim&start=0", headers=ADMIN).json()["data"][0]
    layers = row["layers"]
    assert row["priced"] == "all"
    assert layers["application"]["revenue"] == pytest.approx(row["charge_usd"])
    assert layers["iaas"]["revenue"] > layers["iaas"]["cost"] > 0


def test_unpriced_traffic_is_never_shown_as_zero_dollars(gateway) -> None:
    r = httpx.post(gateway.base + "/v1/chat/completions", headers=A, json={"model": "mock-unpriced", "messages": MSG})
    assert r.status_code == 200 and r.headers["x-switchyard-cost-usd"] == "unpriced"
    rec = record(gateway, r.headers["x-request-id"])
    assert rec["cost_usd"] is None and rec["charge_usd"] is None
    for path, headers in (("/v1/usage", A), ("/admin/usage", ADMIN)):
        [row] = httpx.get(gateway.base + path + "?bucket=none&model=mock-unpriced&start=0", headers=headers).json()[
            "data"
        ]
        assert row["requests"] == row["unpriced"] >= 1 and row["priced"] == "none"
        assert row["cost_usd"] is None and row["charge_usd"] is None and row.get("layers") is None
    mixed = httpx.get(gateway.base + "/admin/usage?bucket=none&start=0", headers=ADMIN).json()["data"][0]
    assert mixed["priced"] == "partial" and mixed["unpriced"] >= 1 and mixed["cost_usd"] > 0
    bad = httpx.get(gateway.base + "/v1/usage?group_by=password", headers=A)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "group_by"


def test_price_catalog_reloads_without_restart(gateway) -> None:
    r = httpx.post(gateway.base + "/admin/pricing/reload", headers=ADMIN)
    assert r.status_code == 200 and r.json()["models"] > 1000
    assert httpx.post(gateway.base + "/admin/pricing/reload", headers=A).status_code == 403
    # requests keep being priced after the swap
    r = httpx.post(gateway.base + "/v1/chat/completions", headers=A, json={"model": "fast-sim", "messages": MSG})
    assert float(r.headers["x-switchyard-cost-usd"]) > 0
