"""The ASGI application: one pipeline (request ids, the operator's middleware, the model routes,
FastAPI for the rest) in front of the gateway's routes (router/api.py), and its errors.

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

from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from router.config import Config, embedded_default, load_config
from router.errors import APIError, not_found
from router.http import BodyDeadline
from router.metrics import fast
from router.api import Api
from router.bodies import read_json
from router.services import Services
from router.keyring import ENV_ADMIN_KEY_HASH, ENV_DEMO_KEY_HASH
from router.build import build_services
from router.analytics.dashboard import add_dashboard_routes
from router.keys_api import add_key_routes
from router.analytics.usage_api import add_usage_routes

log = logging.getLogger("switchyard")
ENV_CONFIG = "SWITCHYARD_CONFIG"
__all__ = ["ENV_ADMIN_KEY_HASH", "ENV_CONFIG", "ENV_DEMO_KEY_HASH", "app_from_env", "create_app"]


class RequestIds:
    """Request ids: "req_" and 32 hex digits, ordered by time like a UUIDv7: the milliseconds since
    the epoch (48 bits), then 80 random bits drawn from a generator seeded once from the OS rather
    than an ``os.urandom`` system call per request. Ids only name requests (feedback and lookups are
    tenant-scoped), they grant nothing. Time-ordered, they land at the end of the ledger's primary
    key index, as its other indexes do: random ones landed anywhere in it, and a SQLite ledger's
    insert cost doubled by 400,000 rows as they reached ever more of its pages (benchmarks/RESULTS.md)."""

    def __init__(self) -> None:
        self._bits = random.Random(os.urandom(32)).getrandbits

    def __call__(self) -> str:
        return "req_%012x%020x" % (int(time.time() * 1000), self._bits(80))


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
            return APIError(
                405, f"Method {request.method} is not allowed on {request.url.path}.", code="method_not_allowed"
            ).response()
        return APIError(exc.status_code, str(exc.detail)[:200]).response()
    # never a stack trace or internal detail in the answer; the request id finds the log line
    rid = request.scope.get("state", {}).get("request_id", "?")
    log.error("internal error on %s %s (request %s)", request.method, request.url.path, rid, exc_info=exc)
    return APIError(
        500,
        "The gateway hit an internal error. Quote the x-request-id header when reporting it.",
        type="api_error",
        code="internal_error",
    ).response()


class ModelRoutes:
    """The model routes (chat, embeddings, the API surfaces: almost all traffic), served from a
    table; every other request goes on to FastAPI's routing. Same request, same errors. ``in_flight``:
    the gauge of model requests being served (a stream until its last byte is sent)."""

    def __init__(self, app: ASGIApp, routes: dict[tuple[str, str], Any], in_flight: Any = None):
        self.app = app
        self.routes = routes
        self.in_flight = in_flight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.routes.get((scope.get("method", ""), scope.get("path", ""))) if scope["type"] == "http" else None
        if handler is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        gauge = self.in_flight
        if gauge is not None:
            gauge.inc()
        try:
            try:
                response = await handler(request)
            except Exception as exc:  # noqa: BLE001 - every error becomes the API's answer
                response = error_response(request, exc)
            await response(scope, receive, send)
        finally:
            if gauge is not None:
                gauge.dec()


class SwitchyardApp(FastAPI):
    """FastAPI behind one ASGI pipeline that every request goes through:

    request ids -> the body deadline (router/http.py) -> the operator's middleware
    (``add_middleware``: CORS, or anything added) -> the model routes (``ModelRoutes``) -> FastAPI's own stack and router for the rest.

    ``add_middleware`` adds to this pipeline, so a middleware sees the chat route as it sees every
    other; errors come from ``error_response`` on both paths.
    """

    model_routes: dict[tuple[str, str], Any]
    request_ids: RequestIds
    telemetry: Any = None  # router.telemetry.Telemetry: each API request in its server span
    in_flight: Any = None  # the model requests being served (a gauge; router.metrics)
    body_timeout = 30.0  # server.body_timeout: seconds a request body may take to arrive

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
        app: ASGIApp = ModelRoutes(super().build_middleware_stack(), self.model_routes, self.in_flight)
        for cls, args, kwargs in reversed(self.pipeline):
            app = cls(app, *args, **kwargs)
        return RequestIdMiddleware(BodyDeadline(app, self.body_timeout), self.request_ids)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan (and websockets, which no route takes): FastAPI's own handling
            await super().__call__(scope, receive, send)
            return
        # HTTP goes straight to the pipeline: FastAPI's __call__ would ask OpenTelemetry's global
        # providers (reading the environment) on every request for its own tracing, where the
        # gateway's telemetry (router/telemetry.py) traces each request itself
        if self.root_path:
            scope["root_path"] = self.root_path
        scope["app"] = self
        if self.middleware_stack is None:
            self.middleware_stack = self.build_middleware_stack()
        if self.telemetry is not None:
            await self.telemetry.serve(self.middleware_stack, scope, receive, send)
        else:
            await self.middleware_stack(scope, receive, send)


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
    app.in_flight = fast(svc.metrics.in_flight)
    app.body_timeout = cfg.server.body_timeout
    api = Api(svc)
    bodies = request_body_schemas()
    api.register(app, bodies)
    app.model_routes.update(
        {("POST", f"{prefix}/{name}"): handler for prefix in ("/v1", "") for name, handler in api.model_routes.items()}
    )
    add_usage_routes(app, svc, api.principal, api.admin)
    add_key_routes(app, svc, api.admin, read_json, api.manager)
    add_dashboard_routes(app, svc, api.principal, api.admin)

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
        app.add_middleware(
            CORSMiddleware,
            allow_origins=cfg.server.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["authorization", "content-type"],
            expose_headers=["x-request-id"],
        )
    return app


def request_body_schemas() -> dict[str, Any]:
    """OpenAPI requestBody entries for every route's body (by model name, and by surface class name),
    and the component schemas they use."""
    from router.protocol import ChatRequest, EmbeddingsRequest
    from router.surfaces.completions import CompletionsRequest
    from router.surfaces.messages_translate import MessagesRequest
    from router.surfaces.responses_translate import ResponsesRequest

    out: dict[str, Any] = {"$defs": {}}
    for model, alias in (
        (ChatRequest, None),
        (EmbeddingsRequest, None),
        (CompletionsRequest, "Completions"),
        (MessagesRequest, "Messages"),
        (ResponsesRequest, "Responses"),
    ):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        out["$defs"].update(schema.pop("$defs", {}))
        out["$defs"][model.__name__] = schema
        out[model.__name__] = {
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
            }
        }
        if alias:
            out[alias] = out[model.__name__]
    return out


def app_from_env() -> FastAPI:
    """uvicorn factory (``router.app:app_from_env``): config path and key hashes from the env."""
    path = os.environ.get(ENV_CONFIG)
    return create_app(load_config(path) if path else embedded_default())
