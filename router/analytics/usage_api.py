"""The usage API: aggregated spend and tokens from the ledger, and single-request lookups.

``GET /v1/usage`` and ``GET /v1/requests/{id}`` only ever see the caller's tenant; the
``/admin/...`` twins need the admin key and may filter by tenant. Dashboards read these.
"""

from __future__ import annotations

import base64

import re
import time
from datetime import datetime, timezone
from typing import Any, Callable

import orjson
from fastapi import FastAPI, Request
from starlette.responses import Response

from router.bodies import json_response, tenant_scoped
from router.errors import APIError, invalid_request
from router.inputs import clean_text, finite_time
from router.ledger.schema import DIMENSIONS, SLICE_COLUMNS
from router.ledger.queries import UsageQuery
from router.ledger.store import LedgerStore
from router.services import Services

BUCKETS = {"none": None, "minute": 60, "hour": 3600, "day": 86400}
_REL = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_LIMIT = 10_000
MAX_OFFSET = 10**9
_TAG_DIM = re.compile(r"^tag:[A-Za-z0-9_.-]{1,64}$")


def parse_time(value: str | None, default: float, name: str) -> float:
    """An ISO date/datetime, UNIX seconds, or a duration before now ('24h', '7d')."""
    if value is None or value == "":
        return default
    m = _REL.match(value)
    if m:
        return finite_time(time.time() - min(int(m.group(1)), 10**7) * _UNITS[m.group(2)], name)
    try:
        return finite_time(float(value), name)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise invalid_request(
            f"Invalid value for '{name}': use an ISO date, UNIX seconds or a duration like 24h.",
            param=name,
            code="invalid_value",
        ) from None
    return finite_time((dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp(), name)


def stack_layers(row: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per-layer revenue, cost and margin, rebuilt from the summed slices of a usage row."""
    s = {name: row.get(col, 0.0) or 0.0 for name, col in SLICE_COLUMNS.items()}
    charge = row.get("charge_usd", 0.0) or 0.0
    api = charge - s["application_margin"]
    chips = s["chip_vendor_cost"] + s["chip_vendor_margin"]
    rent = s["iaas_margin"] + s["electricity"] + s["colocation"] + s["other_capex"] + chips

    def layer(revenue: float, margin: float) -> dict[str, float]:
        return {"revenue": revenue, "cost": revenue - margin, "margin": margin}

    return {
        "application": layer(charge, s["application_margin"]),
        "paas": layer(api, s["paas_margin"]),
        "model_lab": layer(s["model_lab"], s["model_lab"]),
        "iaas": layer(rent, s["iaas_margin"]),
        "chips": layer(chips, s["chip_vendor_margin"]),
        "pass_through": {
            "electricity": s["electricity"],
            "colocation": s["colocation"],
            "other_capex": s["other_capex"],
        },
    }


def build_query(request: Request, tenant: str | None) -> UsageQuery:
    qp = request.query_params
    now = time.time()
    start = parse_time(qp.get("start") or qp.get("since"), now - 86400, "start")
    end = parse_time(qp.get("end") or qp.get("until"), now + 1, "end")
    if end <= start:
        raise invalid_request("'end' must be after 'start'.", param="end", code="invalid_value")
    bucket = qp.get("bucket", "day")
    if bucket not in BUCKETS:
        raise invalid_request(
            f"Invalid value for 'bucket': one of {', '.join(BUCKETS)}.", param="bucket", code="invalid_value"
        )
    group_by = tuple(g for g in (qp.get("group_by") or "").split(",") if g)
    for g in group_by:
        if g not in DIMENSIONS and not _TAG_DIM.match(g):
            raise invalid_request(
                f"Invalid value for 'group_by': '{g[:40]}' is not one of {', '.join(DIMENSIONS)}, or tag:<key>.",
                param="group_by",
                code="invalid_value",
            )
    filters = []
    for dim in ("key", "alias", "model", "provider", "status", "policy", "rule", "category", "endpoint", "user"):
        if qp.get(dim):
            filters.append((dim, clean_text(qp[dim], dim, 256)))
    if qp.get("tag"):  # tag=feature=search
        tag, sep, value = qp["tag"].partition("=")
        if not sep or not _TAG_DIM.match("tag:" + tag):
            raise invalid_request(
                "Invalid value for 'tag': use key=value, e.g. tag=feature=search.", param="tag", code="invalid_value"
            )
        filters.append(("tag:" + tag, clean_text(value, "tag", 256)))
    if tenant is not None and qp.get("tenant") and qp["tenant"] != tenant:
        raise APIError(
            403,
            "A tenant key sees its own tenant only; the tenant filter needs the admin key.",
            type="permission_error",
            code="tenant_forbidden",
        )
    if tenant is None and qp.get("tenant"):
        filters.append(("tenant", clean_text(qp["tenant"], "tenant", 128)))
    try:
        limit = min(int(qp.get("limit", 1000)), MAX_LIMIT)
        offset = int(qp.get("offset", 0))
    except ValueError:
        raise invalid_request("'limit' and 'offset' must be integers.", param="limit", code="invalid_value") from None
    if limit < 1 or not 0 <= offset <= MAX_OFFSET:
        raise invalid_request(
            f"'limit' must be positive, 'offset' from 0 to {MAX_OFFSET}.", param="limit", code="invalid_value"
        )
    status = dict(filters).get("status")
    if status is not None and not (status.isascii() and status.isdigit() and 100 <= int(status) <= 599):
        raise invalid_request(
            "Invalid value for 'status': an HTTP status from 100 to 599.", param="status", code="invalid_value"
        )
    return UsageQuery(
        start=start,
        end=end,
        bucket_seconds=BUCKETS[bucket],
        group_by=group_by,
        tenant=tenant,
        filters=tuple(filters),
        limit=limit,
        offset=offset,
    )


def for_viewer(row: dict[str, Any], tenant: str | None) -> dict[str, Any]:
    """A ledger record as its viewer may see it: a tenant gets its charge and cost, not the stack
    slices (how the operator's margin splits), in the record and in each of its cost lines."""
    if tenant is not None:
        for rec in (row, *(row.get("lines") or ())):
            for col in SLICE_COLUMNS.values():
                rec.pop(col, None)
        row.pop("layers", None)
    return row


def encode_cursor(ts: float, request_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([ts, request_id])).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[float, str] | None:
    """A ``next_cursor`` back to its position; anything else is a clear 400."""
    if not cursor:
        return None
    try:
        ts, rid = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if isinstance(ts, (int, float)) and not isinstance(ts, bool) and isinstance(rid, str) and len(rid) <= 64:
            return float(ts), rid
    except (ValueError, TypeError, orjson.JSONDecodeError):
        pass
    raise invalid_request(
        "Invalid value for 'cursor': pass the 'next_cursor' of the previous page.", param="cursor", code="invalid_value"
    )


def ledger_of(svc: Services) -> LedgerStore:
    """The gateway's ledger, or 501 when it keeps none (started with an in-memory sink)."""
    if svc.store is None:
        raise APIError(
            501,
            "This gateway keeps no ledger (it was started with an in-memory sink).",
            type="api_error",
            code="no_ledger",
        )
    return svc.store


class UsageApi:
    """The usage API: a tenant key reads its own tenant's usage (/v1/...), the admin key every tenant's (/admin/...)."""

    def __init__(self, svc: Services, principal: Callable[[Request], Any], admin: Callable[[Request], None]) -> None:
        self.svc = svc
        self.principal = principal
        self.admin = admin

    def need_store(self) -> LedgerStore:
        return ledger_of(self.svc)

    async def usage(self, request: Request, tenant: str | None) -> Response:
        q = build_query(request, tenant)
        rows, more = await self.need_store().usage(q)
        for r in rows:
            if "bucket" in r:
                r["bucket_start"] = datetime.fromtimestamp(r["bucket"], timezone.utc).isoformat().replace("+00:00", "Z")
            r["latency_s_avg"] = r["latency_s_sum"] / r["requests"] if r["requests"] else 0.0
            # money covers the priced requests; ``unpriced`` counts the others (never folded in as $0)
            r["priced"] = (
                "none" if r["requests"] and r["unpriced"] == r["requests"] else ("partial" if r["unpriced"] else "all")
            )
            if r["priced"] == "none":
                for col in ("cost_usd", "charge_usd", *SLICE_COLUMNS.values()):
                    r[col] = None
            if tenant is not None:  # a tenant sees its own charge and cost, not how the operator's margin splits
                for col in SLICE_COLUMNS.values():
                    r.pop(col, None)
            else:
                r["layers"] = None if r["priced"] == "none" else stack_layers(r)
        return json_response(
            {"object": "list", "data": rows, "has_more": more, "start": q.start, "end": q.end, "tenant": tenant}
        )

    async def lookup(self, request_id: str, tenant: str | None) -> Response:
        row = await self.need_store().get(clean_text(request_id, "request_id", 128)[:64], tenant)
        if row is None:  # another tenant's id looks exactly like a missing one
            raise APIError(404, f"No request '{request_id[:64]}' for this tenant.", code="request_not_found")
        if tenant is None:
            row["layers"] = stack_layers({**row, **{c: row.get(c) for c in SLICE_COLUMNS.values()}})
        return json_response(for_viewer(row, tenant))

    async def listing(self, request: Request, tenant: str | None) -> Response:
        """The spend log: ledger records (with their cost lines), oldest first, a page at a time."""
        q = build_query(request, tenant)
        after = decode_cursor(request.query_params.get("cursor"))
        limit = min(q.limit, 1000)
        rows = [r async for chunk in self.need_store().records(q, after, limit + 1) for r in chunk]
        more = len(rows) > limit
        rows = [for_viewer(r, tenant) for r in rows[:limit]]
        nxt = encode_cursor(rows[-1]["ts"], rows[-1]["request_id"]) if more and rows else None
        return json_response(
            {
                "object": "list",
                "data": rows,
                "has_more": more,
                "next_cursor": nxt,
                "start": q.start,
                "end": q.end,
                "tenant": tenant,
            }
        )

    async def top(self, request: Request, tenant: str | None) -> Response:
        q = build_query(request, tenant)
        return json_response({"object": "list", "data": await self.need_store().top(q, min(q.limit, 100))})

    async def tenant_lookup(self, request: Request, request_id: str) -> Response:
        return await self.lookup(request_id, self.principal(request).tenant)

    async def admin_lookup(self, request: Request, request_id: str) -> Response:
        self.admin(request)
        return await self.lookup(request_id, None)

    def register(self, app: FastAPI) -> None:
        for name, path, view in (
            ("usage", "usage", self.usage),
            ("listing", "requests", self.listing),
            ("top", "requests/top", self.top),
        ):
            for who, prefix in (("tenant", "/v1"), ("admin", "/admin")):
                app.add_api_route(
                    f"{prefix}/{path}",
                    tenant_scoped(view, self.principal, self.admin, as_admin=who == "admin"),
                    methods=["GET"],
                    name=f"{who}_{name}",
                )
        app.add_api_route("/v1/requests/{request_id}", self.tenant_lookup, methods=["GET"])
        app.add_api_route("/admin/requests/{request_id}", self.admin_lookup, methods=["GET"])


def add_usage_routes(
    app: FastAPI, svc: Services, principal: Callable[[Request], Any], admin: Callable[[Request], None]
) -> None:
    UsageApi(svc, principal, admin).register(app)
