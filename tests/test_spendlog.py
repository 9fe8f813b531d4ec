"""The spend log: ledger records with their cost lines through the API (cursor pages, tenant-scoped)
and `switchyard export requests` (JSON lines or CSV); totals equal the usage API; no prompt content."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess

import httpx
import pytest

from router.ledger.schema import SLICE_COLUMNS
from tests.conftest import ADMIN_KEY, GATEWAY_ENV, KEY_B, SWITCHYARD
from tests.test_margins import KEYS, mgw  # noqa: F401 - the three-plan gateway and its traffic

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
PROMPT = "Tell me something about routers"  # what test_margins' traffic asked


def pages(gw, path: str, headers: dict, **params) -> list[list[dict]]:
    out, cursor = [], None
    while True:
        r = httpx.get(
            gw.base + path,
            headers=headers,
            params={
                "start": 0,
                "end": gw.extra["until"],
                "limit": 7,
                **params,
                **({"cursor": cursor} if cursor else {}),
            },
        )
        assert r.status_code == 200, r.text
        body = r.json()
        out.append(body["data"])
        if not body["has_more"]:
            assert body["next_cursor"] is None
            return out
        cursor = body["next_cursor"]


def test_the_admin_pages_through_every_record_with_its_lines(mgw) -> None:  # noqa: F811
    got = pages(mgw, "/admin/requests", ADMIN)
    rows = [r for p in got for r in p]
    assert all(len(p) == 7 for p in got[:-1]) and len(got) > 3
    assert len({r["request_id"] for r in rows}) == len(rows) == len(mgw.extra["ids"])
    assert [(r["ts"], r["request_id"]) for r in rows] == sorted((r["ts"], r["request_id"]) for r in rows)
    usage = httpx.get(
        mgw.base + "/admin/usage", headers=ADMIN, params={"bucket": "none", "start": 0, "end": mgw.extra["until"]}
    ).json()["data"][0]
    assert math.fsum(r["charge_usd"] for r in rows if r["charge_usd"] is not None) == pytest.approx(
        usage["charge_usd"], rel=1e-9
    )
    split = [r for r in rows if r["lines"]]
    assert split and all(r["alias"] == "auto-cascade" for r in split)
    for r in split:
        assert r["cost_usd"] == pytest.approx(math.fsum(x["cost_usd"] for x in r["lines"]), rel=1e-12)
    assert any(r["app_margin_usd"] is not None for r in rows), "the admin sees the operator's slices"
    # filters apply as in the usage API
    only = [r for p in pages(mgw, "/admin/requests", ADMIN, model="mystery") for r in p]
    assert len(only) == 9 and all(r["model"] == "mystery" and r["cost_usd"] is None for r in only)


def test_a_tenant_pages_through_its_own_records_without_the_operators_margin(mgw) -> None:  # noqa: F811
    mine = {"authorization": f"Bearer {KEY_B}"}
    rows = [r for p in pages(mgw, "/v1/requests", mine) for r in p]
    assert rows and all(r["tenant"] == "b" for r in rows)
    for rec in (*rows, *(x for r in rows for x in r["lines"] or ())):
        assert not set(SLICE_COLUMNS.values()) & set(rec), "no stack slices for a tenant"
    one = httpx.get(mgw.base + f"/v1/requests/{rows[0]['request_id']}", headers=mine).json()
    assert "app_margin_usd" not in one and "layers" not in one
    r = httpx.get(mgw.base + "/v1/requests", headers=mine, params={"tenant": "a"})
    assert r.status_code == 403
    for bad in ("nope", "eyJ4Ijox", "W10"):
        r = httpx.get(mgw.base + "/v1/requests", headers=mine, params={"cursor": bad})
        assert r.status_code == 400 and r.json()["error"]["param"] == "cursor", (bad, r.text)


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_export_requests_totals_equal_the_usage_api(mgw, tmp_path, fmt) -> None:  # noqa: F811
    out = tmp_path / f"requests.{fmt}"
    until = mgw.extra["until"]
    res = subprocess.run(
        [
            SWITCHYARD,
            "export",
            "requests",
            "--since",
            "0",
            "--until",
            str(until),
            "--format",
            fmt,
            "--out",
            str(out),
            "--config",
            str(mgw.extra["config"]),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(mgw.log.parent),
        env={**os.environ, **GATEWAY_ENV},
    )
    assert res.returncode == 0, res.stderr
    if fmt == "parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(out)
        assert table.schema.field("charge_usd").type == "double" and table.schema.field("status").type == "int64"
        rows = table.to_pylist()
        for r in rows:
            r["lines"] = json.loads(r["lines"]) if r["lines"] else None
        text = json.dumps(rows)
    else:
        text = out.read_text()
    assert PROMPT not in text and "CANARY" not in text, "no prompt content, no key"
    if fmt == "jsonl":
        rows = [json.loads(line) for line in text.splitlines()]
    elif fmt == "csv":
        rows = list(csv.DictReader(out.open()))
        for r in rows:
            r["charge_usd"] = float(r["charge_usd"]) if r["charge_usd"] else None
            r["cost_usd"] = float(r["cost_usd"]) if r["cost_usd"] else None
            r["lines"] = json.loads(r["lines"]) if r["lines"] else None
    usage = httpx.get(
        mgw.base + "/admin/usage", headers=ADMIN, params={"bucket": "none", "start": 0, "end": until}
    ).json()["data"][0]
    assert len(rows) == usage["requests"] == len(mgw.extra["ids"])
    assert math.fsum(r["charge_usd"] for r in rows if r["charge_usd"] is not None) == pytest.approx(
        usage["charge_usd"], rel=1e-9
    )
    assert math.fsum(r["cost_usd"] for r in rows if r["cost_usd"] is not None) == pytest.approx(
        usage["cost_usd"], rel=1e-9
    )
    assert sum(1 for r in rows if r["cost_usd"] is None) == usage["unpriced"]
    assert any(r["lines"] for r in rows)
    assert f"{usage['requests']} records" in res.stdout and "unpriced" in res.stdout
    bad = subprocess.run(
        [SWITCHYARD, "export", "requests", "--format", "xml", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "jsonl" in bad.stderr
