"""Serving one OpenAI request: choose deployments, call them with fallback, relay, meter.

Fallback happens only before the first byte reaches the client: on a retryable failure the next
deployment is tried, within ``server.num_retries``. After the first byte, a failure ends the
stream with an OpenAI-style error event and the partial usage is metered as estimated.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

import orjson
from starlette.responses import Response

from pricing import Usage
from router.auth import Principal
from router.backends.base import Call, UpstreamBadResponse, UpstreamError, UpstreamRateLimited
from router.errors import APIError, model_not_found, permission_error
from router.metering import Meter, Priced, StreamTally, answer_text
from router.protocol import normalize_chat, normalize_chunk, normalize_embeddings, upstream_body
from router.limits import Limiter, Ticket
from router.registry import Deployment, Registry
from router.sse import SSEResponse

_JSON = "application/json"


@dataclass
class Attempts:
    """The deployments tried for one request, for metrics, the record and the final error."""

    items: list[dict[str, Any]] = field(default_factory=list)
    last_error: UpstreamError | None = None
    upstream_seconds: float = 0.0

    def failed(self, dep: Deployment, err: UpstreamError, seconds: float, meter: Meter) -> None:
        self.items.append({"deployment": dep.id, "error": err.kind, "status": err.upstream_status,
                           "seconds": round(seconds, 6)})
        self.last_error = err
        self.upstream_seconds += seconds
        meter.metrics.upstream_errors.labels(dep.model_name, dep.provider, err.kind).inc()

    def served(self, dep: Deployment, seconds: float) -> None:
        self.items.append({"deployment": dep.id, "error": None, "seconds": round(seconds, 6)})
        self.upstream_seconds += seconds


def _final_error(requested: str, attempts: Attempts) -> APIError:
    err = attempts.last_error
    n = len(attempts.items)
    if err is None:  # pragma: no cover - only reached with no candidate, which is handled earlier
        return APIError(503, f"No deployment could serve '{requested}'.", type="api_error", code="no_deployment")
    if not err.retryable:
        return APIError(err.status, err.message, type="invalid_request_error", code="upstream_rejected")
    headers = {}
    if isinstance(err, UpstreamRateLimited):
        headers["retry-after"] = str(int(err.retry_after or 1))
        return APIError(429, f"Every deployment for '{requested}' is rate limited ({n} tried); retry later.",
                        type="rate_limit_error", code="upstream_rate_limited", headers=headers)
    return APIError(err.status, f"Upstream failure for '{requested}' after {n} attempt(s): {err.message}.",
                    type="api_error", code=f"upstream_{err.kind}")


class Gateway:
    def __init__(self, registry: Registry, meter: Meter, limiter: Limiter, num_retries: int):
        self.registry = registry
        self.meter = meter
        self.limiter = limiter
        self.num_retries = num_retries

    async def _admit(self, who: Principal, body: dict[str, Any], cands: list[Deployment], mode: str) -> Ticket | None:
        """Rate limits and budget reservation for this request (None when no limit applies)."""
        if not self.limiter.active:
            return None
        if not self.limiter.counts_tokens:
            return await self.limiter.admit(who, body["model"], 0, None)
        cfg = self.limiter.cfg
        prompt = self.meter.estimate(cands[0], body).prompt_tokens
        prompt = int(prompt * cfg.prompt_safety) + 32
        asked = body.get("max_completion_tokens") or body.get("max_tokens")
        n = body.get("n") or 1
        worst_out, worst_charge = 0, 0.0
        for dep in cands:
            out = 0
            if mode == "chat":
                price = dep.price(self.meter.catalog)
                bound = asked or (price.max_output_tokens if price is not None else None)
                if bound is None:
                    # Nothing bounds the answer: cap it, so the reservation is a true upper bound.
                    bound = asked = body["max_tokens"] = cfg.default_max_tokens
                out = bound * n
            worst_out = max(worst_out, out)
            worst_charge = max(worst_charge, self.meter.worst_case(dep, who.tenant, body["model"], prompt, out))
        return await self.limiter.admit(who, body["model"], prompt + worst_out, worst_charge)

    def candidates(self, principal: Principal, model: str, mode: str) -> list[Deployment]:
        if not self.registry.knows(model):
            raise model_not_found(model)
        if principal.models is not None and model not in principal.models:
            raise permission_error(f"This key is not allowed to use the model '{model}'.")
        cands = self.registry.candidates(model, mode)
        if not cands:
            kind = "an embeddings" if mode == "embedding" else "a chat"
            raise APIError(400, f"The model '{model}' is not {kind} model.", param="model", code="wrong_model_type")
        return cands[: 1 + self.num_retries]

    @staticmethod
    def _headers(rid: str, dep: Deployment, priced: Priced | None, attempts: Attempts) -> dict[str, str]:
        h = {"x-switchyard-model": dep.model_name, "x-switchyard-provider": dep.provider,
             "x-switchyard-attempts": str(len(attempts.items))}
        if priced is not None:
            h["x-switchyard-cost-usd"] = priced.header()
            h["x-switchyard-charge-usd"] = priced.charge_header()
            h["x-switchyard-usage-source"] = priced.usage.source
        return h

    # -- non-streaming chat and embeddings ----------------------------------------------------------
    async def unary(self, principal: Principal, body: dict[str, Any], rid: str, *, endpoint: str) -> Response:
        mode = "embedding" if endpoint == "embeddings" else "chat"
        requested = body["model"]
        started = time.perf_counter()
        attempts = Attempts()
        status, err_kind, dep_used, priced = 500, None, None, None
        ticket: Ticket | None = None
        try:
            cands = self.candidates(principal, requested, mode)
            ticket = await self._admit(principal, body, cands, mode)
            for dep in cands:
                call = Call(body=upstream_body(body, dep.upstream_model), timeout=dep.timeout, request_id=rid)
                t0 = time.perf_counter()
                try:
                    raw = await (dep.backend.embeddings(call) if mode == "embedding" else dep.backend.chat(call))
                    out = normalize_embeddings(raw, dep.model_name) if mode == "embedding" else normalize_chat(raw, dep.model_name)
                except UpstreamError as exc:
                    attempts.failed(dep, exc, time.perf_counter() - t0, self.meter)
                    if not exc.retryable:
                        break
                    continue
                except ValueError as exc:
                    attempts.failed(dep, UpstreamBadResponse(f"upstream answer is malformed ({exc})"),
                                    time.perf_counter() - t0, self.meter)
                    continue
                attempts.served(dep, time.perf_counter() - t0)
                usage = Usage.from_openai(raw.get("usage")) or self.meter.estimate(dep, body, answer_text(out))
                priced = self.meter.price(dep, usage, tenant=principal.tenant, requested=requested)
                out["usage"] = ({"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.prompt_tokens}
                                if mode == "embedding" else usage.to_openai())
                dep_used, status = dep, 200
                if len(attempts.items) > 1:
                    self.meter.metrics.fallbacks.labels(dep.model_name).inc()
                headers = self._headers(rid, dep, priced, attempts)
                if ticket is not None:
                    headers.update(ticket.headers)
                return Response(orjson.dumps(out), media_type=_JSON, headers=headers)
            error = _final_error(requested, attempts)
            status, err_kind = error.status, error.code
            raise error
        except APIError as exc:
            status, err_kind = exc.status, exc.code
            raise
        finally:
            if ticket is not None:
                self.limiter.settle(ticket, priced.charge_usd if priced else 0.0, priced.usage.total_tokens if priced else 0)
            if attempts.items:  # reached a backend: always metered
                self.meter.record(request_id=rid, principal=principal, endpoint=endpoint, requested=requested,
                                  dep=dep_used, priced=priced, status=status, error=err_kind,
                                  attempts=attempts.items, started=started, first_chunk_at=None,
                                  upstream_seconds=attempts.upstream_seconds, stream=False)

    # -- streaming chat ------------------------------------------------------------------------------
    async def stream(self, principal: Principal, body: dict[str, Any], rid: str) -> Response:
        requested = body["model"]
        client_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        started = time.perf_counter()
        attempts = Attempts()
        cands = self.candidates(principal, requested, "chat")
        ticket = await self._admit(principal, body, cands, "chat")
        for dep in cands:
            up = upstream_body(body, dep.upstream_model)
            up["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
            call = Call(body=up, timeout=dep.stream_timeout, request_id=rid)
            t0 = time.perf_counter()
            chunks = dep.backend.chat_stream(call)
            try:
                first = await chunks.__anext__()
            except StopAsyncIteration:
                attempts.failed(dep, UpstreamBadResponse("upstream stream was empty"), time.perf_counter() - t0, self.meter)
                continue
            except UpstreamError as exc:
                attempts.failed(dep, exc, time.perf_counter() - t0, self.meter)
                await chunks.aclose()
                if not exc.retryable:
                    break
                continue
            if len(attempts.items) > 0:
                self.meter.metrics.fallbacks.labels(dep.model_name).inc()
            relay = self._relay(principal, body, rid, dep, chunks, first, attempts, started, t0, client_usage, ticket)
            headers = self._headers(rid, dep, None, attempts)
            if ticket is not None:
                headers.update(ticket.headers)
            return SSEResponse(relay, headers=headers)
        if ticket is not None:
            self.limiter.settle(ticket, 0.0, 0)
        error = _final_error(requested, attempts)
        self.meter.record(request_id=rid, principal=principal, endpoint="chat", requested=requested, dep=None,
                          priced=None, status=error.status, error=error.code, attempts=attempts.items,
                          started=started, first_chunk_at=None, upstream_seconds=attempts.upstream_seconds, stream=True)
        raise error

    async def _relay(self, principal: Principal, body: dict[str, Any], rid: str, dep: Deployment,
                     chunks: AsyncIterator[dict[str, Any]], first: dict[str, Any], attempts: Attempts,
                     started: float, t0: float, client_usage: bool, ticket: Ticket | None) -> AsyncIterator[bytes]:
        stream_id = first.get("id") if isinstance(first.get("id"), str) else f"chatcmpl-{uuid.uuid4().hex}"
        created = first.get("created") if isinstance(first.get("created"), int) else int(time.time())
        tally = StreamTally()
        usage: Usage | None = None
        priced: Priced | None = None
        status, err_kind, finished = 200, None, False
        chunk: dict[str, Any] | None = first
        try:
            while chunk is not None:
                if chunk.get("usage"):
                    usage = Usage.from_openai(chunk["usage"]) or usage
                norm = normalize_chunk(chunk, dep.model_name, stream_id, created)
                if norm is not None:
                    tally.add(norm)
                    yield b"data: " + orjson.dumps(norm) + b"\n\n"
                chunk = await anext(chunks, None)
            finished = True
            priced = self.meter.price(dep, usage or self.meter.estimate(dep, body, tally.text),
                                      tenant=principal.tenant, requested=body["model"])
            if client_usage:
                tail = {"id": stream_id, "object": "chat.completion.chunk", "created": created,
                        "model": dep.model_name, "choices": [], "usage": priced.usage.to_openai(),
                        "switchyard": {"cost_usd": priced.cost_usd, "charge_usd": priced.charge_usd,
                                       "usage_source": priced.usage.source, "price_version": priced.price_version}}
                yield b"data: " + orjson.dumps(tail) + b"\n\n"
            yield b"data: [DONE]\n\n"
        except UpstreamError as exc:
            status, err_kind = exc.status, f"upstream_{exc.kind}"
            self.meter.metrics.upstream_errors.labels(dep.model_name, dep.provider, exc.kind).inc()
            yield _error_event(f"The upstream stream failed after it started: {exc.message}.", err_kind)
        except ValueError as exc:
            status, err_kind = 502, "upstream_bad_response"
            yield _error_event(f"The upstream sent a malformed chunk ({exc}).", err_kind)
        except (asyncio.CancelledError, GeneratorExit):
            status, err_kind = 499, "client_disconnected"
            self.meter.metrics.disconnects.labels(dep.model_name).inc()
            raise
        finally:
            await chunks.aclose()  # aborts the upstream request if it is still running
            upstream_s = time.perf_counter() - t0
            attempts.items.append({"deployment": dep.id, "error": err_kind, "seconds": round(upstream_s, 6)})
            if priced is None:  # cut, failed or abandoned: what was relayed is counted here
                priced = self.meter.price(dep, usage or self.meter.estimate(dep, body, tally.text),
                                          tenant=principal.tenant, requested=body["model"])
            if ticket is not None:
                self.limiter.settle(ticket, priced.charge_usd, priced.usage.total_tokens)
            self.meter.record(request_id=rid, principal=principal, endpoint="chat", requested=body["model"], dep=dep,
                              priced=priced, status=status, error=err_kind, attempts=attempts.items,
                              started=started, first_chunk_at=tally.first_chunk_at,
                              upstream_seconds=attempts.upstream_seconds + upstream_s, stream=True)


def _error_event(message: str, code: str) -> bytes:
    err = {"error": {"message": message, "type": "api_error", "param": None, "code": code}}
    return b"data: " + orjson.dumps(err) + b"\n\n"
