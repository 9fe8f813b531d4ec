"""The gateway's HTTP API: who is asking (API keys, the admin key, the auth-failure throttle) and one
method per route; ``register`` puts them on the app. The model routes (chat, embeddings, the API
surfaces) are also served from ``SwitchyardApp``'s table (router/app.py)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import Response

from router.auth import AuthThrottle, ClientAddress, Principal, bearer, key_prefix
from router.bodies import json_response, read_json
from router.errors import APIError, authentication_error, invalid_request, model_not_found
from router.inputs import clean_text
from router.ledger.conversations import ResponseStore
from router.protocol import validate_chat, validate_embeddings
from router.services import Services
from router.surfaces import SURFACES, Surface
from router.surfaces.base import finish_surface
from router.surfaces.messages import anthropic_error, count_tokens


class Api:
    def __init__(self, svc: Services):
        self.svc = svc
        self.cfg = svc.config
        self.server = svc.config.server
        self.throttle = AuthThrottle(limit=self.server.auth_failures_per_minute, window=60.0)
        self.addresses = ClientAddress(self.server.trusted_proxies)
        self.surface_routes = {path: self.surface_route(kind) for path, kind in SURFACES.items()}

    # -- who is asking -------------------------------------------------------------------------------
    def client_of(self, request: Request, token: str) -> tuple[str, str]:
        """Who a failure is counted against: the client's address (through trusted proxies only)
        and the presented key's prefix."""
        peer = request.client.host if request.client else "?"
        h = request.headers
        return self.addresses.resolve(peer, h.get("x-forwarded-for"), h.get("forwarded")), key_prefix(token)

    def check_throttle(self, request: Request, token: str) -> tuple[str, str] | None:
        """429 when this (address, key prefix) is throttled; its identity, or None while nobody has
        failed (the common case: no header parsing for it on the request path)."""
        if not self.throttle.active:
            return None
        client = self.client_of(request, token)
        wait = self.throttle.blocked(client, time.monotonic())
        if wait:
            raise APIError(
                429,
                "Too many failed authentication attempts with this key from this address; try again later.",
                type="rate_limit_error",
                code="auth_rate_limited",
                headers={"retry-after": str(int(wait) + 1)},
            )
        return client

    def failed(self, request: Request, token: str, client: tuple[str, str] | None) -> None:
        self.throttle.failed(client or self.client_of(request, token), time.monotonic())

    def principal(self, request: Request) -> Principal:
        # Anthropic's clients send their key as x-api-key
        token = bearer(request.headers.get("authorization")) or request.headers.get("x-api-key", "").strip()
        client = self.check_throttle(request, token)
        if not token:
            self.failed(request, token, client)
            raise authentication_error("You didn't provide an API key. Send 'Authorization: Bearer <key>'.")
        p = self.svc.keys.authenticate(token)
        if p is None:
            self.failed(request, token, client)
            raise authentication_error()
        return p

    def admin(self, request: Request) -> None:
        token = bearer(request.headers.get("authorization"))
        client = self.check_throttle(request, token)
        if not token:
            self.failed(request, token, client)
            raise authentication_error("Admin endpoints need 'Authorization: Bearer <admin key>'.")
        if not self.svc.keys.is_admin(token):
            if self.svc.keys.authenticate(token) is not None:
                raise APIError(
                    403,
                    "This endpoint needs the admin key; a tenant key cannot use it.",
                    type="permission_error",
                    code="admin_only",
                )
            self.failed(request, token, client)
            raise authentication_error()

    def manager(self, request: Request) -> Principal | None:
        """Who may manage keys: the admin key (None: every tenant), or a tenant admin's key (its own tenant)."""
        token = bearer(request.headers.get("authorization"))
        if token and not self.svc.keys.is_admin(token):
            p = self.svc.keys.authenticate(token)
            if p is not None and p.tenant_admin:
                return p
        self.admin(request)  # the admin key, or the error a non-admin gets
        return None

    # -- the model routes ----------------------------------------------------------------------------
    async def chat(self, request: Request) -> Response:
        who = self.principal(request)
        body = await read_json(request, self.server.max_body_bytes)
        validate_chat(body, max_messages=self.server.max_messages, max_tokens_limit=self.server.max_tokens_limit)
        cache_control = request.headers.get("cache-control") or ""
        no_cache = "no-cache" in cache_control or "no-store" in cache_control
        tags = request.headers.get("x-switchyard-tags")
        rid = request.state.request_id
        if body.get("stream"):
            return await self.svc.gateway.stream(who, body, rid, tags=tags, no_cache=no_cache)
        return await self.svc.gateway.unary(who, body, rid, endpoint="chat", tags=tags, no_cache=no_cache)

    async def embeddings(self, request: Request) -> Response:
        who = self.principal(request)
        body = await read_json(request, self.server.max_body_bytes)
        validate_embeddings(body)
        return await self.svc.gateway.unary(
            who, body, request.state.request_id, endpoint="embeddings", tags=request.headers.get("x-switchyard-tags")
        )

    def surface_route(self, kind: type[Surface]) -> Any:
        """A route for one API surface: its body adapted to a chat request, its answers and errors in its shape."""

        async def serve(request: Request) -> Response:
            try:
                return await self._surface(kind, request)
            except APIError as exc:
                return kind.error(exc)

        return serve

    async def _surface(self, kind: type[Surface], request: Request) -> Response:
        svc, limits = (
            self.svc,
            {"max_messages": self.server.max_messages, "max_tokens_limit": self.server.max_tokens_limit},
        )
        who = self.principal(request)
        body = await read_json(request, self.server.max_body_bytes)
        if not isinstance(body, dict):
            raise invalid_request("The request body must be a JSON object.", code="invalid_body")
        surface = kind(body, request.headers)
        await surface.prepare(who, svc.responses)
        rid = request.state.request_id
        tags = request.headers.get("x-switchyard-tags")

        async def send(part: Surface, chat: dict[str, Any], part_id: str) -> Response:
            if part.stream:
                return await svc.gateway.stream(who, chat, part_id, surface=part, tags=tags)
            answer = await svc.gateway.unary(who, chat, part_id, endpoint=kind.endpoint, surface=part, tags=tags)
            await finish_surface(part)
            return answer

        chat = surface.chat(**limits)
        parts = surface.parts()
        if len(parts) > 1:  # a batch: each part its own request
            return await kind.serve_batch(parts, rid, lambda part, part_id: send(part, part.chat(**limits), part_id))
        return await send(surface, chat, rid)

    async def count_message_tokens(self, request: Request) -> Response:
        """Anthropic's ``/v1/messages/count_tokens``: the prompt's tokens, counted here."""
        try:
            who = self.principal(request)
            model, chat = count_tokens(
                await read_json(request, self.server.max_body_bytes),
                max_messages=self.server.max_messages,
                max_tokens_limit=self.server.max_tokens_limit,
            )
            if not self.svc.planner.knows(model) or (who.models is not None and model not in who.models):
                raise model_not_found(model)
            n = self.svc.meter.tokenizer.count_messages(model, chat["messages"], chat.get("tools"))
            return json_response({"input_tokens": n})
        except APIError as exc:
            return anthropic_error(exc)

    # -- stored responses, models ----------------------------------------------------------------------
    def stored_responses(self) -> ResponseStore:
        if self.svc.responses is None or not self.svc.responses.enabled:
            raise APIError(
                404,
                "This gateway stores no responses (storage.responses_retention_days is 0).",
                code="response_not_found",
            )
        return self.svc.responses

    async def get_response(self, request: Request, response_id: str) -> Response:
        who = self.principal(request)
        found = await self.stored_responses().get(response_id, who.tenant, time.time())
        if found is None:
            raise APIError(
                404,
                f"No response with id '{response_id[:64]}' is stored for this key's tenant.",
                code="response_not_found",
            )
        return json_response(found[0])

    async def delete_response(self, request: Request, response_id: str) -> Response:
        who = self.principal(request)
        if not await self.stored_responses().delete(response_id, who.tenant):
            raise APIError(
                404,
                f"No response with id '{response_id[:64]}' is stored for this key's tenant.",
                code="response_not_found",
            )
        return json_response({"id": response_id, "object": "response", "deleted": True})

    def _model_obj(self, name: str) -> dict[str, Any]:
        registry = self.svc.registry
        deps = registry.candidates(name, "chat") or registry.candidates(name, "embedding")
        owner = "switchyard" if name in registry.aliases else (deps[0].provider if deps else "switchyard")
        return {"id": name, "object": "model", "created": self.svc.started_at, "owned_by": owner}

    async def list_models(self, request: Request) -> Response:
        who = self.principal(request)
        names = [n for n in self.svc.planner.names() if who.models is None or n in who.models]
        return json_response({"object": "list", "data": [self._model_obj(n) for n in names]})

    async def get_model(self, request: Request, model: str) -> Response:
        who = self.principal(request)
        if not self.svc.planner.knows(model) or (who.models is not None and model not in who.models):
            raise model_not_found(model)
        return json_response(self._model_obj(model))

    # -- health, operations ------------------------------------------------------------------------------
    async def healthz(self) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    async def readyz(self) -> Response:
        status, checks, degraded = await self.svc.readiness()
        return json_response(
            {"status": status, "checks": checks, "degraded": degraded}, 503 if status == "not_ready" else 200
        )

    async def metrics(self) -> Response:
        return Response(self.svc.metrics.render(), media_type=self.svc.metrics.content_type)

    async def reload_pricing(self, request: Request) -> Response:
        self.admin(request)
        try:
            n = self.svc.reload_catalog()
        except Exception as exc:  # a bad price file keeps the old catalog
            await self.svc.audit("admin", "pricing.reload", None, {"ok": False})
            raise APIError(
                400,
                f"The price files could not be loaded; the previous catalog stays: {str(exc)[:300]}",
                code="invalid_pricing",
            ) from None
        await self.svc.audit("admin", "pricing.reload", None, {"ok": True, "models": n})
        return json_response({"status": "reloaded", "models": n})

    async def reload_policies(self, request: Request) -> Response:
        self.admin(request)
        store = self.svc.policies
        ok, problems = store.reload()
        await self.svc.audit("admin", "policies.reload", None, {"ok": ok, "version": store.version})
        if not ok:
            raise APIError(
                400,
                "The policy files were rejected; the previous policies stay: " + " | ".join(problems)[:2000],
                code="invalid_policy",
            )
        return json_response(
            {"status": "reloaded", "version": store.version, "policies": [x.policy.name for x in store.loaded]}
        )

    async def reload_keys(self, request: Request) -> Response:
        self.admin(request)
        n = self.svc.reload_keys()
        await self.svc.audit("admin", "keys.reload", None, {"keys": n})
        return json_response({"status": "reloaded", "keys": n})

    async def list_policies(self, request: Request) -> Response:
        self.admin(request)
        store = self.svc.policies
        return json_response(
            {
                "version": store.version,
                "policies": [
                    {
                        "name": x.policy.name,
                        "source": x.source,
                        "bind": x.policy.bind.model_dump(),
                        "objective": x.policy.objective.model_dump(by_alias=True),
                    }
                    for x in store.loaded
                ],
            }
        )

    async def list_alerts(self, request: Request) -> Response:
        self.admin(request)
        if self.svc.store is None:
            raise APIError(404, "This gateway keeps no ledger database, so no alert history.", code="no_ledger")
        try:
            limit = max(1, min(int(request.query_params.get("limit", 100)), 1000))
        except ValueError:
            raise invalid_request("'limit' must be an integer.", param="limit", code="invalid_value") from None
        return json_response({"object": "list", "data": await self.svc.store.alerts(limit)})

    async def list_deployments(self, request: Request) -> Response:
        self.admin(request)
        svc = self.svc
        return json_response(
            {
                "routing_strategy": svc.config.server.routing_strategy,
                "data": [svc.registry.describe(d, svc.gateway.health.state(d.id)) for d in svc.registry.deployments],
            }
        )

    async def feedback(self, request: Request) -> Response:
        who = self.principal(request)
        body = await read_json(request, 64 * 1024)
        if not isinstance(body, dict) or not isinstance(body.get("request_id"), str):
            raise invalid_request(
                'Send {"request_id": "...", "score": 0..1}.', param="request_id", code="missing_required_parameter"
            )
        clean_text(body["request_id"], "request_id", 128)
        score = body.get("score")
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0 <= score <= 1:
            raise invalid_request("'score' must be a number from 0 to 1.", param="score", code="invalid_value")
        found, replaced = await self.svc.feedback(body["request_id"][:64], who.tenant, float(score))
        if not found:
            raise APIError(404, "No routed request with that id for this tenant.", code="request_not_found")
        return json_response({"status": "recorded", "request_id": body["request_id"][:64], "replaced": replaced})

    # -- the routes --------------------------------------------------------------------------------------
    @property
    def model_routes(self) -> dict[str, Any]:
        """The model routes by path (without /v1): what almost all traffic asks for."""
        return {"chat/completions": self.chat, "embeddings": self.embeddings, **self.surface_routes}

    def register(self, app: FastAPI, bodies: dict[str, Any]) -> None:
        """Every route on ``app`` (``bodies``: the OpenAPI request bodies the routes validate by hand)."""
        for prefix in ("/v1", ""):  # the model routes also answer without /v1, as OpenAI's clients may ask
            doc = prefix == "/v1"
            for name, handler in self.model_routes.items():
                body = bodies[
                    "ChatRequest"
                    if name == "chat/completions"
                    else "EmbeddingsRequest"
                    if name == "embeddings"
                    else SURFACES[name].__name__
                ]
                app.add_api_route(
                    f"{prefix}/{name}", handler, methods=["POST"], include_in_schema=doc, openapi_extra=body
                )
            app.add_api_route(
                prefix + "/responses/{response_id}", self.get_response, methods=["GET"], include_in_schema=doc
            )
            app.add_api_route(
                prefix + "/responses/{response_id}", self.delete_response, methods=["DELETE"], include_in_schema=doc
            )
            app.add_api_route(
                f"{prefix}/messages/count_tokens",
                self.count_message_tokens,
                methods=["POST"],
                include_in_schema=doc,
                openapi_extra=bodies["Messages"],
            )
            app.add_api_route(f"{prefix}/models", self.list_models, methods=["GET"], include_in_schema=doc)
            app.add_api_route(prefix + "/models/{model:path}", self.get_model, methods=["GET"], include_in_schema=doc)
        for path, method, handler in (
            ("/healthz", "GET", self.healthz),
            ("/readyz", "GET", self.readyz),
            ("/metrics", "GET", self.metrics),
            ("/admin/pricing/reload", "POST", self.reload_pricing),
            ("/admin/policies/reload", "POST", self.reload_policies),
            ("/admin/keys/reload", "POST", self.reload_keys),
            ("/admin/policies", "GET", self.list_policies),
            ("/admin/alerts", "GET", self.list_alerts),
            ("/admin/deployments", "GET", self.list_deployments),
            ("/v1/feedback", "POST", self.feedback),
        ):
            app.add_api_route(path, handler, methods=[method])
