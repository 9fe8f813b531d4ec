"""The cost dashboard: a static single page at ``/dashboard`` and the insight endpoints it reads.

The page ships inside the package (``router/dashboard_static``, Chart.js vendored from npm) and
fetches nothing from the internet. It logs in with a key kept in the tab's sessionStorage and
reads the usage API: a tenant key reads ``/v1/...`` (its own tenant only, enforced here), the
admin key reads ``/admin/...`` and may filter by tenant.
"""

from __future__ import annotations

import time
from dataclasses import replace
from importlib import resources
from typing import Any, Callable

from fastapi import FastAPI, Request
from starlette.responses import RedirectResponse, Response

from policies.schema import PolicyError
from router.analytics import insights
from router.analytics.advise import build_or_buy
from router.auth import bearer
from router.errors import APIError, invalid_request
from router.ledger.queries import UsageQuery
from router.ledger.store import LedgerStore
from router.services import Services
from router.analytics.usage_api import build_query, ledger_of
from router.bodies import json_response, tenant_scoped

STATIC = resources.files("router").joinpath("dashboard_static")
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}
# Everything same-origin; no inline script; the page cannot be framed.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


def _asset(name: str) -> Response:
    suffix = name[name.rfind(".") :] if "." in name else ""
    entry = STATIC.joinpath(name)
    if "/" in name or name.startswith(".") or suffix not in TYPES or not entry.is_file():
        raise APIError(404, f"No dashboard asset '{name[:80]}'.", code="not_found")
    cache = "no-cache" if suffix == ".html" else "public, max-age=300"
    return Response(entry.read_bytes(), media_type=TYPES[suffix], headers={**SECURITY_HEADERS, "cache-control": cache})


def _number(request: Request, name: str, lo: float, hi: float, default: float | None) -> float | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not lo < value <= hi:  # NaN fails too
        raise invalid_request(
            f"Invalid value for '{name}': a number above {lo:g} and at most {hi:g}.", param=name, code="invalid_value"
        )
    return value


class Dashboard:
    """The dashboard's page and the insight views it reads: each view answers a tenant key
    (``/v1/insights/<view>``, its own tenant) and the admin key (``/admin/insights/<view>``)."""

    def __init__(self, svc: Services, principal: Callable[[Request], Any], admin: Callable[[Request], None]):
        self.svc, self.principal, self.admin = svc, principal, admin

    def need_store(self) -> LedgerStore:
        return ledger_of(self.svc)

    async def page(self) -> Response:
        return _asset("index.html")

    async def slash(self) -> Response:
        return RedirectResponse("/dashboard", status_code=308)

    async def asset(self, name: str) -> Response:
        return _asset(name)

    async def whoami(self, request: Request) -> Response:
        token = bearer(request.headers.get("authorization"))
        if token and self.svc.keys.is_admin(token):
            return json_response({"role": "admin", "tenant": None, "key_id": None})
        who = self.principal(request)
        return json_response({"role": "tenant", "tenant": who.tenant, "key_id": who.key_id})

    async def options(self, request: Request, tenant: str | None) -> Response:
        svc = self.svc
        q = build_query(request, tenant)
        dims = ("tenant", "alias", "model", "provider")
        rows, _ = await self.need_store().usage(
            UsageQuery(start=q.start, end=q.end, group_by=dims, tenant=tenant, limit=10_000)
        )
        values = {d: sorted({str(r[d]) for r in rows if r[d] is not None}) for d in dims}
        return json_response(
            {
                "filters": values,
                "baselines": insights.chat_models(svc),
                "policies": [x.policy.name for x in svc.policies.loaded],
                "plans": list(svc.config.billing.plans),
                "default_plan": svc.config.billing.default_plan,
                "tags": list(svc.config.attribution.tags),
            }
        )

    async def savings(self, request: Request, tenant: str | None) -> Response:
        q = build_query(request, tenant)
        baseline = request.query_params.get("baseline") or None
        try:
            return json_response(
                await insights.savings(self.svc, self.need_store(), q, baseline, operator=tenant is None)
            )
        except ValueError:
            raise invalid_request(
                f"'{(baseline or '')[:80]}' is not a priced chat model on this gateway; pick one from "
                "the dashboard options.",
                param="baseline",
                code="invalid_value",
            ) from None

    async def budgets(self, request: Request, tenant: str | None) -> Response:
        only = request.query_params.get("tenant") if tenant is None else None
        data = await insights.budgets(self.svc, self.need_store(), tenant, time.time(), only_tenant=only or None)
        return json_response({"object": "list", "data": data})

    async def whatif(self, request: Request, tenant: str | None, yaml_text: str | None = None) -> Response:
        q = build_query(request, tenant)
        # here ?policy= names the policy to replay through, not a filter on the recorded traffic
        q = replace(q, filters=tuple(f for f in q.filters if f[0] != "policy"))
        name = request.query_params.get("policy")
        if yaml_text is None and not name:
            raise invalid_request(
                'Name a loaded policy (?policy=...) or POST its YAML as {"yaml": "..."}.',
                param="policy",
                code="missing_required_parameter",
            )
        try:
            data = await insights.whatif(self.svc, self.need_store(), q, name, yaml_text)
            if tenant is None:  # an admin's replay is an admin action: audited (a pasted policy by its name)
                await self.svc.audit(
                    "admin",
                    "whatif.run",
                    name or "pasted policy",
                    {"start": q.start, "end": q.end, **({"yaml_bytes": len(yaml_text)} if yaml_text else {})},
                )
            return json_response(data)
        except LookupError:
            raise invalid_request(
                f"No loaded policy '{(name or '')[:80]}'.", param="policy", code="invalid_value"
            ) from None
        except PolicyError as exc:
            raise invalid_request(
                "The policy is invalid: " + " | ".join(exc.problems)[:1500], param="yaml", code="invalid_policy"
            ) from None

    async def advise(self, request: Request) -> Response:
        """Build or buy for the range's traffic (operator economics: the admin key only)."""
        self.admin(request)
        q = build_query(request, None)
        try:
            data = await build_or_buy(
                self.svc,
                self.need_store(),
                q,
                profile_name=request.query_params.get("profile") or None,
                utilisation=_number(request, "utilisation", 0, 1, None),
                rental=_number(request, "rental", 0, 1000, None),
                decline=_number(request, "decline", 0, 1, 0.1) or 0.1,
            )
        except LookupError:
            raise invalid_request(
                "Unknown stack profile; see 'profiles' in an answer without it.", param="profile", code="invalid_value"
            ) from None
        return json_response(data)

    async def whatif_yaml(self, request: Request) -> Response:
        self.admin(request)
        from router.bodies import read_json

        body = await read_json(request, 256 * 1024)
        if not isinstance(body, dict) or not isinstance(body.get("yaml"), str):
            raise invalid_request('Send {"yaml": "<policy YAML>"}.', param="yaml", code="missing_required_parameter")
        return await self.whatif(request, None, body["yaml"])

    def register(self, app: FastAPI) -> None:
        app.add_api_route("/dashboard", self.page, methods=["GET"], include_in_schema=False)
        app.add_api_route("/dashboard/", self.slash, methods=["GET"], include_in_schema=False)
        app.add_api_route("/dashboard/static/{name}", self.asset, methods=["GET"], include_in_schema=False)
        app.add_api_route("/v1/whoami", self.whoami, methods=["GET"])
        views: dict[str, Callable[..., Any]] = {
            "options": self.options,
            "savings": self.savings,
            "budgets": self.budgets,
            "whatif": self.whatif,
        }
        for name, view in views.items():
            for who, prefix in (("tenant", "/v1"), ("admin", "/admin")):
                app.add_api_route(
                    f"{prefix}/insights/{name}",
                    tenant_scoped(view, self.principal, self.admin, as_admin=who == "admin"),
                    methods=["GET"],
                    name=f"{who}_{name}",
                )
        app.add_api_route("/admin/insights/advise", self.advise, methods=["GET"])
        app.add_api_route("/admin/insights/whatif", self.whatif_yaml, methods=["POST"])


def add_dashboard_routes(
    app: FastAPI, svc: Services, principal: Callable[[Request], Any], admin: Callable[[Request], None]
) -> None:
    Dashboard(svc, principal, admin).register(app)
