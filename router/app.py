"""The FastAPI application: OpenAI-compatible routes over the Gateway, plus health and metrics.

Routes read the body themselves (size-capped, parsed with orjson) rather than through FastAPI's
body models: the gateway validates what it must and forwards the client's own fields.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import time
from typing import Any, AsyncIterator

import orjson
from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from router.auth import AuthThrottle, ClientAddress, Principal, bearer, key_prefix
from router.config import Config, embedded_default, load_config
from router.errors import APIError, authentication_error, invalid_request, model_not_found, not_found
from router.inputs import check_depth, clean_text
from router.protocol import validate_chat, validate_embeddings
from router.surfaces import SURFACES, Surface
from router.surfaces.base import finish_surface
from router.surfaces.messages import anthropic_error, count_tokens
from router.ledger.conversations import ResponseStore
from router.services import ENV_ADMIN_KEY_HASH, ENV_DEMO_KEY_HASH, Services, build_services
from router.dashboard import add_dashboard_routes
from router.keys_api import add_key_routes
from router.usage_api import add_usage_routes

_JSON = "application/json"
log = logging.getLogger("switchyard")
ENV_CONFIG = "SWITCHYARD_CONFIG"
__all__ = ["ENV_ADMIN_KEY_HASH", "ENV_CONFIG", "ENV_DEMO_KEY_HASH", "app_from_env", "create_app"]


class RequestIds:
    """Request ids: "req_" and 32 hex digits, 128 random bits per id like a uuid4. Drawn from a
    generator seeded once from the OS rather than an ``os.urandom`` system call per request; ids
    only name requests (feedback and lookups are tenant-scoped), they grant nothing."""

    def __init__(self) -> None:
        self._bits = random.Random(os.urandom(32)).getrandbits

    def __call__(self) -> str:
        return "req_%032x" % self._bits(128)


class RequestIdMiddleware:
    """Gives every request an id and every response (errors included) an ``x-request-id``."""

    def __init__(self, app: ASGIApp, ids: RequestIds):
        self.app = app
        self.ids = ids

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = self.ids()
        scope.setdefault("state", {})["request_id"] = rid
        header = (b"x-request-id", rid.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        await self.app(scope, receive, send_with_id)


def error_response(request: Request, exc: Exception) -> Response:
    """Every error a route raises, as the API's answer: the one place errors are produced, for the
    model routes and FastAPI's alike (an API surface answers its own errors in its own shape)."""
    if isinstance(exc, APIError):
        return exc.response()
    if isinstance(exc, StarletteHTTPException):
        if exc.status_code == 404:
            return not_found(request.url.path).response()
        if exc.status_code == 405:
            return APIError(405, f"Method {request.method} is not allowed on {request.url.path}.",
                            code="method_not_allowed").response()
        return APIError(exc.status_code, str(exc.detail)[:200]).response()
    # never a stack trace or internal detail in the answer; the request id finds the log line
    rid = request.scope.get("state", {}).get("request_id", "?")
    log.error("internal error on %s %s (request %s)", request.method, request.url.path, rid, exc_info=exc)
    return APIError(500, "The gateway hit an internal error. Quote the x-request-id header when reporting it.",
                    type="api_error", code="internal_error").response()


class ModelRoutes:
    """The model routes (chat, embeddings, the API surfaces: almost all traffic), served from a
    table; every other request goes on to FastAPI's routing. Same request, same errors."""

    def __init__(self, app: ASGIApp, routes: dict[tuple[str, str], Any]):
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.routes.get((scope.get("method", ""), scope.get("path", ""))) if scope["type"] == "http" else None
        if handler is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await handler(request)
        except Exception as exc:  # noqa: BLE001 - every error becomes the API's answer
            response = error_response(request, exc)
        await response(scope, receive, send)


class SwitchyardApp(FastAPI):
    """FastAPI behind one ASGI pipeline that every request goes through:

    request ids -> the operator's middleware (``add_middleware``: CORS, or anything added) ->
    the model routes (``ModelRoutes``) -> FastAPI's own stack and router for the rest.

    ``add_middleware`` adds to this pipeline, so a middleware sees the chat route as it sees every
    other; errors come from ``error_response`` on both paths.
    """

    model_routes: dict[tuple[str, str], Any]
    request_ids: RequestIds
    telemetry: Any = None  # router.telemetry.Telemetry: each API request in its server span

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.model_routes = {}
        self.request_ids = RequestIds()
        self.pipeline: list[Middleware] = []

    def add_middleware(self, middleware_class: Any, *args: Any, **kwargs: Any) -> None:
        if self.middleware_stack is not None:
            raise RuntimeError("Cannot add middleware after an application has started")
        self.pipeline.insert(0, Middleware(middleware_class, *args, **kwargs))  # the latest added runs first

    def build_middleware_stack(self) -> ASGIApp:
        app: ASGIApp = ModelRoutes(super().build_middleware_stack(), self.model_routes)
        for cls, args, kwargs in reversed(self.pipeline):
            app = cls(app, *args, **kwargs)
        return RequestIdMiddleware(app, self.request_ids)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.telemetry is not None:
            await self.telemetry.serve(super().__call__, scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


async def read_json(request: Request, limit: int) -> Any:
    """The request body parsed as JSON, at most ``limit`` bytes. How long the body may take to
    arrive is the server's business (``server.body_timeout``, router/http.py), not a timer here."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise APIError(413, f"Request body too large: {length} bytes (the limit is {limit}).",
                       code="request_too_large")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise APIError(413, f"Request body too large (the limit is {limit} bytes).", code="request_too_large")
            chunks.append(chunk)
    except ClientDisconnect:
        raise APIError(499, "The client went away before its request body arrived.", code="client_disconnected") from None
    raw = b"".join(chunks)
    if not raw.strip():
        raise invalid_request("The request body is empty; send a JSON object.", code="invalid_body")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise invalid_request("We could not parse the JSON body of your request: it is not valid JSON (or not UTF-8).",
                              code="invalid_json") from None
    check_depth(body, raw.count(b"[") + raw.count(b"{"))
    return body


def create_app(cfg: Config | None = None, *, services: Services | None = None) -> FastAPI:
    svc = services or build_services(cfg or embedded_default())
    cfg = svc.config

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await svc.start()
        try:
            yield
        finally:
            svc.draining = True
            await svc.stop()

    app = SwitchyardApp(title="Switchyard", version="0.1.0", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.services = svc
    app.telemetry = svc.gateway.telemetry

    throttle = AuthThrottle(limit=cfg.server.auth_failures_per_minute, window=60.0)

    addresses = ClientAddress(cfg.server.trusted_proxies)

    def client_of(request: Request, token: str) -> tuple[str, str]:
        """Who a failure is counted against: the client's address (through trusted proxies only)
        and the presented key's prefix."""
        peer = request.client.host if request.client else "?"
        h = request.headers
        return addresses.resolve(peer, h.get("x-forwarded-for"), h.get("forwarded")), key_prefix(token)

    def check_throttle(request: Request, token: str) -> tuple[str, str] | None:
        """429 when this (address, key prefix) is throttled; its identity, or None while nobody has
        failed (the common case: no header parsing for it on the request path)."""
        if not throttle.active:
            return None
        client = client_of(request, token)
        wait = throttle.blocked(client, time.monotonic())
        if wait:
            raise APIError(429, "Too many failed authentication attempts with this key from this address; "
                           "try again later.", type="rate_limit_error", code="auth_rate_limited",
                           headers={"retry-after": str(int(wait) + 1)})
        return client

    def principal(request: Request) -> Principal:
        # Anthropic's clients send their key as x-api-key
        token = bearer(request.headers.get("authorization")) or request.headers.get("x-api-key", "").strip()
        client = check_throttle(request, token)
        if not token:
            throttle.failed(client or client_of(request, token), time.monotonic())
            raise authentication_error("You didn't provide an API key. Send 'Authorization: Bearer <key>'.")
        p = svc.keys.authenticate(token)
        if p is None:
            throttle.failed(client or client_of(request, token), time.monotonic())
            raise authentication_error()
        return p

    def admin(request: Request) -> None:
        token = bearer(request.headers.get("authorization"))
        client = check_throttle(request, token)
        if not token:
            throttle.failed(client or client_of(request, token), time.monotonic())
            raise authentication_error("Admin endpoints need 'Authorization: Bearer <admin key>'.")
        if not svc.keys.is_admin(token):
            if svc.keys.authenticate(token) is not None:
                raise APIError(403, "This endpoint needs the admin key; a tenant key cannot use it.",
                               type="permission_error", code="admin_only")
            throttle.failed(client or client_of(request, token), time.monotonic())
            raise authentication_error()

    max_body = cfg.server.max_body_bytes

    async def chat(request: Request) -> Response:
        who = principal(request)
        body = await read_json(request, max_body)
        validate_chat(body, max_messages=cfg.server.max_messages, max_tokens_limit=cfg.server.max_tokens_limit)
        rid = request.state.request_id
        tags = request.headers.get("x-switchyard-tags")
        no_cache = "no-cache" in (request.headers.get("cache-control") or "") or \
            "no-store" in (request.headers.get("cache-control") or "")
        if body.get("stream"):
            return await svc.gateway.stream(who, body, rid, tags=tags, no_cache=no_cache)
        return await svc.gateway.unary(who, body, rid, endpoint="chat", tags=tags, no_cache=no_cache)

    async def embeddings(request: Request) -> Response:
        who = principal(request)
        body = await read_json(request, max_body)
        validate_embeddings(body)
        return await svc.gateway.unary(who, body, request.state.request_id, endpoint="embeddings",
                                       tags=request.headers.get("x-switchyard-tags"))

    def surface_route(kind: type[Surface]) -> Any:
        """A route for one API surface: its body adapted to a chat request, its answers and errors in its shape."""
        async def serve(request: Request) -> Response:
            try:
                who = principal(request)
                body = await read_json(request, max_body)
                if not isinstance(body, dict):
                    raise invalid_request("The request body must be a JSON object.", code="invalid_body")
                surface = kind(body, request.headers)
                await surface.prepare(who, svc.responses)
                rid = request.state.request_id

                tags = request.headers.get("x-switchyard-tags")

                async def send(part: Surface, chat: dict[str, Any], part_id: str) -> Response:
                    if part.stream:
                        return await svc.gateway.stream(who, chat, part_id, surface=part, tags=tags)
                    answer = await svc.gateway.unary(who, chat, part_id, endpoint=kind.endpoint, surface=part,
                                                     tags=tags)
                    await finish_surface(part)
                    return answer

                chat = surface.chat(max_messages=cfg.server.max_messages, max_tokens_limit=cfg.server.max_tokens_limit)
                parts = surface.parts()
                if len(parts) > 1:  # a batch: each part its own request
                    return await kind.serve_batch(parts, rid, lambda part, part_id: send(part, part.chat(
                        max_messages=cfg.server.max_messages, max_tokens_limit=cfg.server.max_tokens_limit), part_id))
                return await send(surface, chat, rid)
            except APIError as exc:
                return kind.error(exc)
        return serve

    surface_routes = {path: surface_route(kind) for path, kind in SURFACES.items()}

    async def count_message_tokens(request: Request) -> Response:
        """Anthropic's ``/v1/messages/count_tokens``: the prompt's tokens, counted here."""
        try:
            who = principal(request)
            model, chat = count_tokens(await read_json(request, max_body), max_messages=cfg.server.max_messages,
                                       max_tokens_limit=cfg.server.max_tokens_limit)
            if not svc.planner.knows(model) or (who.models is not None and model not in who.models):
                raise model_not_found(model)
            n = svc.meter.tokenizer.count_messages(model, chat["messages"], chat.get("tools"))
            return Response(orjson.dumps({"input_tokens": n}), media_type=_JSON)
        except APIError as exc:
            return anthropic_error(exc)

    def stored_responses() -> ResponseStore:
        if svc.responses is None or not svc.responses.enabled:
            raise APIError(404, "This gateway stores no responses (storage.responses_retention_days is 0).",
                           code="response_not_found")
        return svc.responses

    async def get_response(request: Request, response_id: str) -> Response:
        who = principal(request)
        found = await stored_responses().get(response_id, who.tenant, time.time())
        if found is None:
            raise APIError(404, f"No response with id '{response_id[:64]}' is stored for this key's tenant.",
                           code="response_not_found")
        return Response(orjson.dumps(found[0]), media_type=_JSON)

    async def delete_response(request: Request, response_id: str) -> Response:
        who = principal(request)
        if not await stored_responses().delete(response_id, who.tenant):
            raise APIError(404, f"No response with id '{response_id[:64]}' is stored for this key's tenant.",
                           code="response_not_found")
        return Response(orjson.dumps({"id": response_id, "object": "response", "deleted": True}), media_type=_JSON)

    def _model_obj(name: str) -> dict[str, Any]:
        deps = svc.registry.candidates(name, "chat") or svc.registry.candidates(name, "embedding")
        owner = "switchyard" if name in svc.registry.aliases else (deps[0].provider if deps else "switchyard")
        return {"id": name, "object": "model", "created": svc.started_at, "owned_by": owner}

    async def list_models(request: Request) -> Response:
        who = principal(request)
        names = [n for n in svc.planner.names() if who.models is None or n in who.models]
        return Response(orjson.dumps({"object": "list", "data": [_model_obj(n) for n in names]}), media_type=_JSON)

    async def get_model(request: Request, model: str) -> Response:
        who = principal(request)
        if not svc.planner.knows(model) or (who.models is not None and model not in who.models):
            raise model_not_found(model)
        return Response(orjson.dumps(_model_obj(model)), media_type=_JSON)

    bodies = request_body_schemas()
    for prefix in ("/v1", ""):
        app.add_api_route(f"{prefix}/chat/completions", chat, methods=["POST"], include_in_schema=prefix == "/v1",
                          openapi_extra=bodies["ChatRequest"])
        app.add_api_route(f"{prefix}/embeddings", embeddings, methods=["POST"], include_in_schema=prefix == "/v1",
                          openapi_extra=bodies["EmbeddingsRequest"])
        for path, handler in surface_routes.items():
            app.add_api_route(f"{prefix}/{path}", handler, methods=["POST"], include_in_schema=prefix == "/v1",
                              openapi_extra=bodies[SURFACES[path].__name__])
        app.add_api_route(prefix + "/responses/{response_id}", get_response, methods=["GET"],
                          include_in_schema=prefix == "/v1")
        app.add_api_route(prefix + "/responses/{response_id}", delete_response, methods=["DELETE"],
                          include_in_schema=prefix == "/v1")
        app.add_api_route(f"{prefix}/messages/count_tokens", count_message_tokens, methods=["POST"],
                          include_in_schema=prefix == "/v1", openapi_extra=bodies["Messages"])
        app.add_api_route(f"{prefix}/models", list_models, methods=["GET"], include_in_schema=prefix == "/v1")
        app.add_api_route(prefix + "/models/{model:path}", get_model, methods=["GET"], include_in_schema=prefix == "/v1")

    app.model_routes.update({("POST", f"{prefix}/{name}"): handler for prefix in ("/v1", "")
                             for name, handler in (("chat/completions", chat), ("embeddings", embeddings),
                                                   *surface_routes.items())})

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', media_type=_JSON)

    @app.get("/readyz")
    async def readyz() -> Response:
        status, checks, degraded = await svc.readiness()
        return Response(orjson.dumps({"status": status, "checks": checks, "degraded": degraded}),
                        status_code=503 if status == "not_ready" else 200, media_type=_JSON)

    @app.post("/admin/pricing/reload")
    async def reload_pricing(request: Request) -> Response:
        admin(request)
        try:
            n = svc.reload_catalog()
        except Exception as exc:  # a bad price file keeps the old catalog
            await svc.audit("admin", "pricing.reload", None, {"ok": False})
            raise APIError(400, f"The price files could not be loaded; the previous catalog stays: {str(exc)[:300]}",
                           code="invalid_pricing") from None
        await svc.audit("admin", "pricing.reload", None, {"ok": True, "models": n})
        return Response(orjson.dumps({"status": "reloaded", "models": n}), media_type=_JSON)

    @app.post("/admin/policies/reload")
    async def reload_policies(request: Request) -> Response:
        admin(request)
        ok, problems = svc.policies.reload()
        await svc.audit("admin", "policies.reload", None, {"ok": ok, "version": svc.policies.version})
        if not ok:
            raise APIError(400, "The policy files were rejected; the previous policies stay: " + " | ".join(problems)[:2000],
                           code="invalid_policy")
        return Response(orjson.dumps({"status": "reloaded", "version": svc.policies.version,
                                      "policies": [x.policy.name for x in svc.policies.loaded]}), media_type=_JSON)

    @app.post("/admin/keys/reload")
    async def reload_keys(request: Request) -> Response:
        admin(request)
        n = svc.reload_keys()
        await svc.audit("admin", "keys.reload", None, {"keys": n})
        return Response(orjson.dumps({"status": "reloaded", "keys": n}), media_type=_JSON)

    @app.get("/admin/policies")
    async def list_policies(request: Request) -> Response:
        admin(request)
        return Response(orjson.dumps({"version": svc.policies.version, "policies": [
            {"name": x.policy.name, "source": x.source, "bind": x.policy.bind.model_dump(),
             "objective": x.policy.objective.model_dump(by_alias=True)} for x in svc.policies.loaded]}),
            media_type=_JSON)

    @app.get("/admin/alerts")
    async def list_alerts(request: Request) -> Response:
        admin(request)
        if svc.store is None:
            raise APIError(404, "This gateway keeps no ledger database, so no alert history.", code="no_ledger")
        try:
            limit = max(1, min(int(request.query_params.get("limit", 100)), 1000))
        except ValueError:
            raise invalid_request("'limit' must be an integer.", param="limit", code="invalid_value") from None
        return Response(orjson.dumps({"object": "list", "data": await svc.store.alerts(limit)}), media_type=_JSON)

    @app.get("/admin/deployments")
    async def list_deployments(request: Request) -> Response:
        admin(request)
        return Response(orjson.dumps({"routing_strategy": svc.config.server.routing_strategy, "data": [
            svc.registry.describe(d, svc.gateway.health.state(d.id)) for d in svc.registry.deployments]}),
            media_type=_JSON)

    @app.post("/v1/feedback")
    async def feedback(request: Request) -> Response:
        who = principal(request)
        body = await read_json(request, 64 * 1024)
        if not isinstance(body, dict) or not isinstance(body.get("request_id"), str):
            raise invalid_request("Send {\"request_id\": \"...\", \"score\": 0..1}.", param="request_id",
                                  code="missing_required_parameter")
        clean_text(body["request_id"], "request_id", 128)
        score = body.get("score")
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0 <= score <= 1:
            raise invalid_request("'score' must be a number from 0 to 1.", param="score", code="invalid_value")
        found, replaced = await svc.feedback(body["request_id"][:64], who.tenant, float(score))
        if not found:
            raise APIError(404, "No routed request with that id for this tenant.", code="request_not_found")
        return Response(orjson.dumps({"status": "recorded", "request_id": body["request_id"][:64], "replaced": replaced}),
                        media_type=_JSON)

    add_usage_routes(app, svc, principal, admin)
    def manager(request: Request) -> Principal | None:
        """Who may manage keys: the admin key (None: every tenant), or a tenant admin's key (its own tenant)."""
        token = bearer(request.headers.get("authorization"))
        if token and not svc.keys.is_admin(token):
            p = svc.keys.authenticate(token)
            if p is not None and p.tenant_admin:
                return p
        admin(request)  # the admin key, or the error a non-admin gets
        return None

    add_key_routes(app, svc, admin, read_json, manager)
    add_dashboard_routes(app, svc, principal, admin)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(svc.metrics.render(), media_type=svc.metrics.content_type)

    for kind in (APIError, StarletteHTTPException, Exception):  # FastAPI's routes: the same errors
        app.add_exception_handler(kind, error_response)

    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        """FastAPI's document, plus the request-body schemas the routes validate by hand."""
        if app.openapi_schema is None:
            doc = default_openapi()
            doc.setdefault("components", {}).setdefault("schemas", {}).update(bodies["$defs"])
            doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            doc["security"] = [{"bearer": []}]
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    if cfg.server.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=cfg.server.cors_origins, allow_methods=["GET", "POST", "PATCH", "DELETE"],
                           allow_headers=["authorization", "content-type"], expose_headers=["x-request-id"])
    return app


def request_body_schemas() -> dict[str, Any]:
    """OpenAPI requestBody entries for every route's body (by model name, and by surface class name),
    and the component schemas they use."""
    from router.protocol import ChatRequest, EmbeddingsRequest
    from router.surfaces.completions import CompletionsRequest
    from router.surfaces.messages import MessagesRequest
    from router.surfaces.responses import ResponsesRequest

    out: dict[str, Any] = {"$defs": {}}
    for model, alias in ((ChatRequest, None), (EmbeddingsRequest, None), (CompletionsRequest, "Completions"),
                         (MessagesRequest, "Messages"), (ResponsesRequest, "Responses")):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        out["$defs"].update(schema.pop("$defs", {}))
        out["$defs"][model.__name__] = schema
        out[model.__name__] = {"requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}}
        if alias:
            out[alias] = out[model.__name__]
    return out


def app_from_env() -> FastAPI:
    """uvicorn factory (``router.app:app_from_env``): config path and key hashes from the env."""
    path = os.environ.get(ENV_CONFIG)
    return create_app(load_config(path) if path else embedded_default())
