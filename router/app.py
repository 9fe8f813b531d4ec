"""The FastAPI application: OpenAI-compatible routes over the Gateway, plus health and metrics.

Routes read the body themselves (size-capped, parsed with orjson) rather than through FastAPI's
body models: the gateway validates what it must and forwards the client's own fields.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any, AsyncIterator, Mapping

import orjson
from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pricing import PriceCatalog, load_profiles
from pricing.catalog import DEFAULT_OVERRIDES
from router.auth import KeyStore, Principal, bearer, hash_key
from router.config import Config, load_config, embedded_default, resolve_env
from router.errors import APIError, authentication_error, invalid_request, model_not_found, not_found
from router.metering import Billing, Meter, MemorySink, RecordSink
from router.metrics import Metrics
from router.protocol import validate_chat, validate_embeddings
from router.proxy import Gateway
from router.registry import Registry
from router.tokens import Tokenizer

_JSON = "application/json"
ENV_CONFIG = "SWITCHYARD_CONFIG"
ENV_DEMO_KEY_HASH = "SWITCHYARD_DEMO_KEY_HASH"
ENV_ADMIN_KEY_HASH = "SWITCHYARD_ADMIN_KEY_HASH"


class RequestIdMiddleware:
    """Gives every request an id and every response (errors included) an ``x-request-id``."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = "req_" + uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        header = (b"x-request-id", rid.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        await self.app(scope, receive, send_with_id)


@dataclass
class Services:
    """Everything the routes need, built once per app from the config."""

    config: Config
    keys: KeyStore
    registry: Registry
    gateway: Gateway
    meter: Meter
    metrics: Metrics
    tokenizer: Tokenizer
    started_at: int


def build_services(cfg: Config, *, env: Mapping[str, str] | None = None, sink: RecordSink | None = None,
                   catalog: PriceCatalog | None = None) -> Services:
    env = os.environ if env is None else env

    def resolve(ref: str | None) -> str | None:
        return resolve_env(ref, env)

    tokenizer = Tokenizer()
    catalog = catalog or PriceCatalog.load([DEFAULT_OVERRIDES, *cfg.pricing.overrides])
    registry = Registry.build(cfg, catalog, tokenizer, resolve)
    tenants = {t.id: (frozenset(t.models) if t.models is not None else None) for t in cfg.auth.tenants}
    key_maps: list[dict[str, Any]] = [k.model_dump() for k in cfg.auth.keys]
    demo_hash = env.get(ENV_DEMO_KEY_HASH)
    if demo_hash:
        key_maps.append({"id": "demo", "tenant": "demo", "hash": demo_hash, "models": None})
    admin_hash = env.get(ENV_ADMIN_KEY_HASH)
    if cfg.auth.admin_key:
        admin_hash = hash_key(resolve(cfg.auth.admin_key) or "")
    keys = KeyStore.build(key_maps, tenants, resolve, admin_hash)
    metrics = Metrics()
    plans = cfg.billing.plans
    billing = Billing(profile=load_profiles()[cfg.billing.profile], default_plan=plans[cfg.billing.default_plan],
                      tenant_plans={t.id: plans[t.plan] for t in cfg.auth.tenants if t.plan})
    meter = Meter(catalog, tokenizer, metrics, sink or MemorySink(), billing)
    gateway = Gateway(registry, meter, cfg.server.num_retries)
    return Services(cfg, keys, registry, gateway, meter, metrics, tokenizer, int(time.time()))


async def read_json(request: Request, limit: int) -> Any:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise APIError(413, f"Request body too large: {length} bytes (the limit is {limit}).",
                       code="request_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise APIError(413, f"Request body too large (the limit is {limit} bytes).", code="request_too_large")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise invalid_request("The request body is empty; send a JSON object.", code="invalid_body")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise invalid_request("We could not parse the JSON body of your request: it is not valid JSON (or not UTF-8).",
                              code="invalid_json") from None


def create_app(cfg: Config | None = None, *, services: Services | None = None) -> FastAPI:
    svc = services or build_services(cfg or embedded_default())
    cfg = svc.config

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(svc.tokenizer.warm)
        yield
        await svc.registry.aclose()

    app = FastAPI(title="Switchyard", version="0.1.0", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.services = svc

    def principal(request: Request) -> Principal:
        token = bearer(request.headers.get("authorization"))
        if not token:
            raise authentication_error("You didn't provide an API key. Send 'Authorization: Bearer <key>'.")
        p = svc.keys.authenticate(token)
        if p is None:
            raise authentication_error()
        return p

    max_body = cfg.server.max_body_bytes

    async def chat(request: Request) -> Response:
        who = principal(request)
        body = await read_json(request, max_body)
        validate_chat(body, max_messages=cfg.server.max_messages, max_tokens_limit=cfg.server.max_tokens_limit)
        rid = request.state.request_id
        if body.get("stream"):
            return await svc.gateway.stream(who, body, rid)
        return await svc.gateway.unary(who, body, rid, endpoint="chat")

    async def embeddings(request: Request) -> Response:
        who = principal(request)
        body = await read_json(request, max_body)
        validate_embeddings(body)
        return await svc.gateway.unary(who, body, request.state.request_id, endpoint="embeddings")

    def _model_obj(name: str) -> dict[str, Any]:
        deps = svc.registry.candidates(name, "chat") or svc.registry.candidates(name, "embedding")
        owner = "switchyard" if name in svc.registry.aliases else (deps[0].provider if deps else "switchyard")
        return {"id": name, "object": "model", "created": svc.started_at, "owned_by": owner}

    async def list_models(request: Request) -> Response:
        who = principal(request)
        names = [n for n in svc.registry.names() if who.models is None or n in who.models]
        return Response(orjson.dumps({"object": "list", "data": [_model_obj(n) for n in names]}), media_type=_JSON)

    async def get_model(request: Request, model: str) -> Response:
        who = principal(request)
        if not svc.registry.knows(model) or (who.models is not None and model not in who.models):
            raise model_not_found(model)
        return Response(orjson.dumps(_model_obj(model)), media_type=_JSON)

    for prefix in ("/v1", ""):
        app.add_api_route(f"{prefix}/chat/completions", chat, methods=["POST"], include_in_schema=prefix == "/v1")
        app.add_api_route(f"{prefix}/embeddings", embeddings, methods=["POST"], include_in_schema=prefix == "/v1")
        app.add_api_route(f"{prefix}/models", list_models, methods=["GET"], include_in_schema=prefix == "/v1")
        app.add_api_route(prefix + "/models/{model:path}", get_model, methods=["GET"], include_in_schema=prefix == "/v1")

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', media_type=_JSON)

    @app.get("/readyz")
    async def readyz() -> Response:
        checks = {"config": True, "deployments": len(svc.registry.deployments) > 0}
        ok = all(checks.values())
        return Response(orjson.dumps({"status": "ready" if ok else "not_ready", "checks": checks}),
                        status_code=200 if ok else 503, media_type=_JSON)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(svc.metrics.render(), media_type=svc.metrics.content_type)

    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> Response:
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return not_found(request.url.path).response()
        if exc.status_code == 405:
            return APIError(405, f"Method {request.method} is not allowed on {request.url.path}.",
                            code="method_not_allowed").response()
        return APIError(exc.status_code, str(exc.detail)[:200]).response()

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        # Never a stack trace or internal detail in the answer; the request id finds the log line.
        return APIError(500, "The gateway hit an internal error. Quote the x-request-id header when reporting it.",
                        type="api_error", code="internal_error").response()

    if cfg.server.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=cfg.server.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["authorization", "content-type"], expose_headers=["x-request-id"])
    app.add_middleware(RequestIdMiddleware)
    return app


def app_from_env() -> FastAPI:
    """uvicorn factory (``router.app:app_from_env``): config path and key hashes from the env."""
    path = os.environ.get(ENV_CONFIG)
    return create_app(load_config(path) if path else embedded_default())
