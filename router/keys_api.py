"""Virtual keys over HTTP: issue, list, change, rotate and revoke keys without touching the config
file, and read the audit log. The admin key manages every tenant's keys; a tenant admin's key
(``tenant_admin: true``) manages its own tenant's, within the tenant's models: it cannot see or touch
another tenant's keys (they are 404 to it), nor make tenant admins. Keys live in the ledger database (router/ledger/keys.py);
every replica picks a change up within a second (router.services.watch_keys), and the replica that
made it at once. Config-file keys keep working beside them (listed, read-only here)."""

from __future__ import annotations

import secrets
import time
from typing import Annotated, Any, Callable, Literal

import orjson
from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from router.bodies import json_response
from router.auth import Principal, hash_key, new_key
from router.config_sections import KEY_ID
from router.errors import APIError, invalid_request
from router.protocol import parse_body

MAX_GRACE = 7 * 86400


class Budget(BaseModel):
    model_config = ConfigDict(extra="forbid")
    usd: float = Field(gt=0)
    period: Literal["day", "month"] = "month"
    soft: bool = False


class KeyChange(BaseModel):
    """What PATCH may change (null clears a limit)."""

    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(max_length=128)] | None = None
    models: Annotated[list[Annotated[str, Field(min_length=1, max_length=256)]], Field(max_length=1000)] | None = None
    rpm: Annotated[int, Field(ge=0)] | None = None
    tpm: Annotated[int, Field(ge=0)] | None = None
    budget: Budget | None = None
    expires_at: Annotated[float, Field(gt=0)] | None = None
    metadata: Annotated[dict[str, Annotated[str, Field(max_length=512)]], Field(max_length=32)] | None = None


class KeyCreate(KeyChange):
    id: Annotated[str, Field(min_length=1, max_length=40)] | None = None
    tenant: Annotated[str, Field(min_length=1, max_length=128)] | None = None  # a tenant admin's: its own
    tenant_admin: bool = False


class Rotation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grace_seconds: Annotated[float, Field(ge=0, le=MAX_GRACE)] = 3600.0


def _columns(change: KeyChange, fields: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        k: getattr(change, k) for k in ("name", "models", "rpm", "tpm", "expires_at", "metadata") if k in fields
    }
    if "budget" in fields:
        b = change.budget
        out.update(
            budget_usd=b.usd if b else None, budget_period=b.period if b else None, budget_soft=bool(b and b.soft)
        )
    return out


def public(row: dict[str, Any]) -> dict[str, Any]:
    """A key as the API shows it: never its secret or hash."""
    budget = (
        {"usd": row["budget_usd"], "period": row["budget_period"], "soft": row["budget_soft"]}
        if row.get("budget_usd") is not None
        else None
    )
    now = time.time()
    return {
        "id": row["id"],
        "object": "key",
        "source": "api",
        "tenant": row["tenant"],
        "name": row.get("name"),
        "models": row.get("models"),
        "rpm": row.get("rpm"),
        "tpm": row.get("tpm"),
        "budget": budget,
        "expires_at": row.get("expires_at"),
        "metadata": row.get("metadata") or {},
        "revoked": row["revoked"],
        "tenant_admin": bool(row.get("tenant_admin")),
        "previous_secret_valid_until": row["previous_until"] if (row.get("previous_until") or 0) > now else None,
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


class KeysApi:
    """Keys issued over HTTP and the audit log. ``manager``: who may manage keys: a tenant admin's
    principal (its own tenant), or None for the admin key."""

    def __init__(
        self,
        svc: Any,
        admin: Callable[[Request], None],
        read_json: Callable[..., Any],
        manager: Callable[[Request], Principal | None],
    ) -> None:
        self.svc = svc
        self.admin = admin
        self.read_json = read_json
        self.manager = manager

    def who(self, request: Request) -> tuple[str, str | None, frozenset[str] | None]:
        """(actor for the audit log, the tenant it is limited to, the models it may grant; None: any)."""
        p = self.manager(request)
        return ("admin", None, None) if p is None else (p.key_id, p.tenant, p.models)

    def table(self) -> Any:
        if self.svc.key_table is None:
            raise APIError(
                404, "This gateway has no key table (it runs without a ledger database).", code="no_key_table"
            )
        return self.svc.key_table

    def config_ids(self) -> set[str]:
        return {k.id for k in self.svc.config.auth.keys} | {"demo", "master-key"}

    async def found(self, key_id: str, scope: str | None = None) -> dict[str, Any]:
        row = await self.table().get(key_id)
        if row is None or (scope is not None and row["tenant"] != scope):  # another tenant's: not there for it
            where = (
                "the config file (change it there)" if scope is None and key_id in self.config_ids() else "this gateway"
            )
            raise APIError(404, f"No key '{key_id[:40]}' issued over HTTP on {where}.", code="key_not_found")
        return row

    def within(self, models: list[str] | None, limit: frozenset[str] | None, scope: str | None) -> None:
        """A tenant admin grants only models it may use itself (its own key's list, or its tenant's)."""
        if scope is None or limit is None:
            return
        expand, _ = self.svc.model_lists()
        if models is None or not set(expand(models) or ()) <= limit:
            raise APIError(
                403,
                "A tenant admin may grant only the models it may use; name them in 'models'.",
                type="permission_error",
                param="models",
                code="models_not_allowed",
            )

    async def create_key(self, request: Request) -> Response:
        actor, scope, limit = self.who(request)
        req = parse_body(KeyCreate, await self.read_json(request, 64 * 1024))
        tenant = req.tenant or scope
        if tenant is None:
            raise invalid_request(
                "Missing required parameter: 'tenant'.", param="tenant", code="missing_required_parameter"
            )
        if scope is not None and (tenant != scope or req.tenant_admin):
            raise APIError(
                403,
                "A tenant admin issues keys for its own tenant only, and cannot make tenant admins.",
                type="permission_error",
                code="tenant_forbidden",
            )
        self.within(req.models, limit, scope)
        key_id = req.id or f"k-{secrets.token_hex(6)}"
        if not KEY_ID.match(key_id):
            raise invalid_request(
                "Invalid value for 'id': 1-40 characters of a-z, 0-9 and '-', starting with a letter or digit.",
                param="id",
                code="invalid_value",
            )
        if key_id in self.config_ids() or await self.table().get(key_id) is not None:
            raise APIError(409, f"A key with id '{key_id}' already exists.", param="id", code="key_exists")
        secret = new_key(key_id)
        values = {
            "id": key_id,
            "tenant": tenant,
            "hash": hash_key(secret),
            "revoked": False,
            "tenant_admin": req.tenant_admin,
            **_columns(req, req.model_fields_set | {"budget"}),
        }
        await self.table().create(values, actor=actor)
        await self.svc.sync_keys(force=True)
        return json_response({**public(await self.found(key_id)), "key": secret}, 201)

    async def list_keys(self, request: Request) -> Response:
        _, scope, _ = self.who(request)
        tenant = scope or request.query_params.get("tenant")
        rows = [public(r) for r in await self.table().rows() if tenant is None or r["tenant"] == tenant]
        rows += [
            {
                "id": k.id,
                "object": "key",
                "source": "config",
                "tenant": k.tenant,
                "models": k.models,
                "revoked": k.revoked,
            }
            for k in self.svc.config.auth.keys
            if tenant is None or k.tenant == tenant
        ]
        return json_response({"object": "list", "data": sorted(rows, key=lambda r: r["id"])})

    async def get_key(self, request: Request, key_id: str) -> Response:
        _, scope, _ = self.who(request)
        return json_response(public(await self.found(key_id, scope)))

    async def change_key(self, request: Request, key_id: str) -> Response:
        actor, scope, limit = self.who(request)
        await self.found(key_id, scope)
        change = parse_body(KeyChange, await self.read_json(request, 64 * 1024))
        values = _columns(change, change.model_fields_set)
        if "models" in values:
            self.within(values["models"], limit, scope)
        if not values:
            raise invalid_request(
                "Send at least one of name, models, rpm, tpm, budget, expires_at, metadata.", code="empty_change"
            )
        await self.table().update(key_id, values, actor, "key.change")
        await self.svc.sync_keys(force=True)
        return json_response(public(await self.found(key_id)))

    async def revoke_key(self, request: Request, key_id: str) -> Response:
        actor, scope, _ = self.who(request)
        await self.found(key_id, scope)
        await self.table().update(
            key_id, {"revoked": True, "previous_hash": None, "previous_until": None}, actor, "key.revoke", {}
        )
        await self.svc.sync_keys(force=True)
        return json_response(public(await self.found(key_id)))

    async def rotate_key(self, request: Request, key_id: str) -> Response:
        actor, scope, _ = self.who(request)
        row = await self.found(key_id, scope)
        if row["revoked"]:
            raise APIError(409, "A revoked key cannot be rotated; issue a new one.", code="key_revoked")
        raw = await request.body()
        try:
            body = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError:
            raise invalid_request("The request body is not valid JSON.", code="invalid_json") from None
        rot = parse_body(Rotation, body)
        secret = new_key(key_id)
        until = time.time() + rot.grace_seconds
        await self.table().update(
            key_id,
            {"hash": hash_key(secret), "previous_hash": row["hash"], "previous_until": until},
            actor,
            "key.rotate",
            {"grace_seconds": rot.grace_seconds},
        )
        await self.svc.sync_keys(force=True)
        return json_response({**public(await self.found(key_id)), "key": secret})

    async def audit_log(self, request: Request) -> Response:
        self.admin(request)
        q = request.query_params
        try:
            limit = min(500, max(1, int(q.get("limit", "100"))))
            before = int(q["before"]) if "before" in q else None
        except ValueError:
            raise invalid_request("'limit' and 'before' must be integers.", code="invalid_value") from None
        return json_response({"object": "list", "data": await self.table().audit_log(limit, before)})

    def register(self, app: FastAPI) -> None:
        app.add_api_route("/admin/keys", self.create_key, methods=["POST"])
        app.add_api_route("/admin/keys", self.list_keys, methods=["GET"])
        app.add_api_route("/admin/keys/{key_id}", self.get_key, methods=["GET"])
        app.add_api_route("/admin/keys/{key_id}", self.change_key, methods=["PATCH"])
        app.add_api_route("/admin/keys/{key_id}/revoke", self.revoke_key, methods=["POST"])
        app.add_api_route("/admin/keys/{key_id}/rotate", self.rotate_key, methods=["POST"])
        app.add_api_route("/admin/audit", self.audit_log, methods=["GET"])


def add_key_routes(
    app: FastAPI,
    svc: Any,
    admin: Callable[[Request], None],
    read_json: Callable[..., Any],
    manager: Callable[[Request], Principal | None],
) -> None:
    KeysApi(svc, admin, read_json, manager).register(app)
