"""``switchyard report``: the dashboard's numbers in the terminal, read from a gateway's usage API.

It reads the same endpoints the dashboard does (``/v1/usage`` with a tenant key, ``/admin/usage``
with the admin key), so the table and ``--json`` match the API for the same range.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from router.analytics.usage_api import parse_time

BY = ("model", "alias", "tenant", "provider", "key", "user", "layer")  # and tag:<key>
LAYERS = {
    "application": "Application (operator)",
    "paas": "Token API (PaaS)",
    "model_lab": "Model lab",
    "iaas": "GPU cloud (IaaS)",
    "chips": "Chip vendor",
}


class ReportError(Exception):
    pass


def base_url(url: str) -> str:
    """The gateway's root, also when given as its API base (``http://host:4000/v1``, as SDKs take it)."""
    url = url.rstrip("/")
    return url[:-3] if url.endswith("/v1") else url


def fetch(url: str, key: str, since: str, until: str | None, by: str, timeout: float = 30.0) -> dict[str, Any]:
    now = time.time()
    start = parse_time(since, now - 86400, "since")
    end = parse_time(until, now + 1, "until")
    headers = {"authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base_url(url), headers=headers, timeout=timeout) as http:
        who = http.get("/v1/whoami")
        if who.status_code != 200:
            raise ReportError(_message(who))
        prefix = "/admin" if who.json()["role"] == "admin" else "/v1"
        if by == "layer" and prefix != "/admin":
            raise ReportError("the layer report shows how the operator's margin splits: it needs the admin key")
        params: dict[str, Any] = {"start": repr(start), "end": repr(end), "bucket": "none", "limit": 10000}
        if by != "layer":
            params["group_by"] = by
        r = http.get(prefix + "/usage", params=params)
        if r.status_code != 200:
            raise ReportError(_message(r))
    body = r.json()
    if by == "layer":
        total = body["data"][0] if body["data"] else None
        rows = [] if total is None else [{"layer": k, **total["layers"][k]} for k in LAYERS]
    else:
        rows = body["data"]
    return {"start": start, "end": end, "by": by, "tenant": body.get("tenant"), "rows": rows}


def _message(r: httpx.Response) -> str:
    try:
        return f"{r.status_code}: {r.json()['error']['message']}"
    except Exception:  # not an OpenAI-style error body
        return f"{r.status_code}: {r.text[:200]}"


def _usd(v: float) -> str:
    return f"${v:,.6f}" if abs(v) < 1 else f"${v:,.2f}"


def render(report: dict[str, Any], console: Console) -> None:
    by = report["by"]
    span = (
        f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(report['start']))} to "
        f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(report['end']))} UTC"
    )
    if by == "layer":
        t = Table(title=f"Where the tenant's dollars went, {span} (all but the application layer are estimates)")
        for col in ("Layer", "Revenue", "Cost", "Margin"):
            t.add_column(col, justify="left" if col == "Layer" else "right")
        for r in report["rows"]:
            t.add_row(LAYERS[r["layer"]], _usd(r["revenue"]), _usd(r["cost"]), _usd(r["margin"]))
        console.print(t)
        return
    t = Table(title=f"Usage by {by}, {span}")
    operator = all("app_margin_usd" in r for r in report["rows"])  # a tenant's rows carry no margin
    cols = (
        "Requests",
        "Errors",
        "Prompt tokens",
        "Completion tokens",
        "API cost",
        "Charge",
        *(("Operator margin",) if operator else ()),
    )
    t.add_column(by.capitalize())
    for c in cols:
        t.add_column(c, justify="right")
    sums: list[float] = [0] * len(cols)
    for r in report["rows"]:
        vals = [
            r["requests"],
            r["errors"],
            r["prompt_tokens"],
            r["completion_tokens"],
            r["cost_usd"],
            r["charge_usd"],
            *((r["app_margin_usd"],) if operator else ()),
        ]
        sums = [a + (b or 0) for a, b in zip(sums, vals)]  # money of unpriced groups is None: not added
        t.add_row(str(r[by]), *[f"{v:,}" for v in vals[:4]], *["unpriced" if v is None else _usd(v) for v in vals[4:]])
    t.add_section()
    t.add_row("Total", *[f"{int(v):,}" for v in sums[:4]], *[_usd(v) for v in sums[4:]], style="bold")
    console.print(t)


def fetch_advice(
    url: str, key: str, since: str, until: str | None, params: dict[str, Any], timeout: float = 60.0
) -> dict[str, Any]:
    """``switchyard advise``: the dashboard's "Build or buy" answer (``/admin/insights/advise``)."""
    now = time.time()
    query = {
        "start": repr(parse_time(since, now - 30 * 86400, "since")),
        "end": repr(parse_time(until, now + 1, "until")),
        **{k: v for k, v in params.items() if v is not None},
    }
    with httpx.Client(base_url=base_url(url), headers={"authorization": f"Bearer {key}"}, timeout=timeout) as http:
        r = http.get("/admin/insights/advise", params=query)
    if r.status_code != 200:
        raise ReportError(_message(r))
    return r.json()


def _money(v: float | None) -> str:
    return "unpriced" if v is None else _usd(v)


def render_advice(advice: dict[str, Any], console: Console) -> None:
    e, p = advice["economics"], advice["params"]
    console.print(
        f"Profile {advice['profile']}: owned ${e['all_in']:.4f} per GPU-hour all-in "
        f"(depreciation ${e['depreciation']:.4f}, power ${e['electricity']:.4f}, colocation ${e['colocation']:.4f}); "
        f"rented ${p['usd_per_gpu_hour']:.2f}; utilisation at the busiest hour {p['utilisation']:.0%}; "
        f"API prices x{p['api_price_decline_per_year']:g} a year"
    )
    t = Table(title="Build or buy, per model (USD per 1M tokens; GPUs for the busiest hour)")
    for col in (
        "Model",
        "Class",
        "Tokens/day",
        "API",
        "Rent",
        "GPUs",
        "Util.",
        "Own",
        "Servers",
        "Break-even rent",
        "Break-even own",
        "Buy by",
    ):
        t.add_column(col, justify="left" if col in ("Model", "Class", "Buy by") else "right")
    for m in advice["models"]:
        own = m["own"]
        buy_by = (
            time.strftime("%Y-%m-%d", time.gmtime(own["buy_by"]))
            if own["buy_by"]
            else "any time"
            if own["payback_always"]
            else "unpriced"
            if m["buy"]["unpriced"]
            else "never"
        )
        t.add_row(
            m["model"] + (" (self-hosted)" if m["self_hosted"] else ""),
            m["model_class"],
            f"{m['tokens_per_day']['total']:,.0f}",
            _money(m["buy"]["usd_per_mtok"]),
            _money(m["rent"]["usd_per_mtok"]),
            str(m["rent"]["gpus"]),
            f"{m['rent']['utilisation']:.1%}",
            _money(own["usd_per_mtok"]),
            str(own["servers"]),
            *[
                f"{x:,.0f}" if x is not None else "never"
                for x in (m["rent"]["break_even_tokens_per_day"], own["break_even_tokens_per_day"])
            ],
            buy_by,
        )
    console.print(t)
