"""Serving one OpenAI request: plan the route, call deployments with fallback, relay, meter.

Fallback happens only before the first byte reaches the client: on a retryable failure the next
deployment in the plan is tried. After the first byte, a failure ends the stream with an
OpenAI-style error event and the partial usage is metered as estimated. A cascade (non-streaming)
answers with a cheaper model and escalates when its check fails; every call is metered.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any, AsyncIterator

import orjson
from starlette.responses import Response

from pricing import Usage
from router import cascade as checks
from router.attempts import ESCALATED, Attempts, final_error, late
from router.auth import Principal
from router.backends.base import Call, UpstreamBadResponse, UpstreamError, UpstreamTimeout
from router.errors import APIError
from router.health import Health
from router.limits import Limiter, Ticket
from router.metering import Meter, Priced, StreamTally, answer_text
from router.planning import Plan, Planner
from router.protocol import normalize_chat, normalize_chunk, normalize_embeddings, upstream_body
from router.registry import Deployment
from router.sse import SSEResponse

_JSON = "application/json"


def _ascii(text: str, n: int = 200) -> str:
    return text.encode("ascii", "replace").decode()[:n]


class Gateway:
    def __init__(self, planner: Planner, meter: Meter, limiter: Limiter, health: Health):
        self.planner = planner
        self.meter = meter
        self.limiter = limiter
        self.health = health

    # -- shared steps ---------------------------------------------------------------------------------
    async def _admit(self, who: Principal, body: dict[str, Any], cands: list[Deployment], mode: str,
                     cascade: dict[str, Any] | None = None) -> Ticket | None:
        """Rate limits and budget reservation for this request (None when no limit applies). A cascade
        reserves for every call it may make: each step, and its checking models (judges: at every step
        but the last), each at the dearest step's worst case."""
        if not self.limiter.active:
            return None
        if not self.limiter.counts_tokens:
            return await self.limiter.admit(who, body["model"], 0, None)
        cfg = self.limiter.cfg
        prompt = int(self.meter.estimate(cands[0], body).prompt_tokens * cfg.prompt_safety) + 32
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
        if cascade:
            checkers = len(cascade["check"].get("with") or ())
            worst_charge *= len(cands) + checkers * (len(cands) - 1 if cascade["check"]["type"] == "judge" else 1)
        return await self.limiter.admit(who, body["model"], prompt + worst_out, worst_charge)

    def _failed(self, attempts: Attempts, dep: Deployment, err: UpstreamError, seconds: float) -> None:
        attempts.items.append({"deployment": dep.id, "model": dep.model_name, "error": err.kind,
                               "status": err.upstream_status, "seconds": round(seconds, 6)})
        attempts.last_error = err
        attempts.upstream_seconds += seconds
        self.meter.metrics.upstream_errors.labels(dep.model_name, dep.provider, err.kind).inc()
        if err.retryable and self.health.failure(dep.id):
            self.meter.metrics.breaker_opened.labels(dep.model_name).inc()

    def _served(self, attempts: Attempts, dep: Deployment, seconds: float, note: str | None = None) -> None:
        attempts.items.append({"deployment": dep.id, "model": dep.model_name, "error": None,
                               "seconds": round(seconds, 6), **({"note": note} if note else {})})
        attempts.upstream_seconds += seconds
        self.health.success(dep.id)

    @staticmethod
    def _headers(dep: Deployment, plan: Plan, priced: Priced | None, attempts: Attempts,
                 ticket: Ticket | None, in_flight: int = 0) -> dict[str, str]:
        """``in_flight``: attempts still running, not yet in ``attempts`` (a stream being relayed)."""
        h = {"x-switchyard-model": dep.model_name, "x-switchyard-provider": dep.provider,
             "x-switchyard-attempts": str(len(attempts.items) + in_flight)}
        if plan.decision is not None:
            h["x-switchyard-policy"] = _ascii(plan.decision.policy, 100)
            h["x-switchyard-reason"] = _ascii(plan.decision.reason)
        if priced is not None:
            h["x-switchyard-cost-usd"] = priced.header()
            h["x-switchyard-charge-usd"] = priced.charge_header()
            h["x-switchyard-usage-source"] = priced.usage.source
        if ticket is not None:
            h.update(ticket.headers)
        return h

    @staticmethod
    def _decision(plan: Plan) -> dict[str, Any] | None:
        if plan.decision is None:
            return None
        return {**plan.decision.as_dict(), "category": plan.category}

    async def _call(self, dep: Deployment, body: dict[str, Any], rid: str, mode: str,
                    deadline: float | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """One upstream call; its timeout is the deployment's, cut to what the request's deadline leaves."""
        timeout = dep.timeout if deadline is None else max(0.001, min(dep.timeout, deadline - time.perf_counter()))
        call = Call(body=upstream_body(body, dep.upstream_model, mode, dep.pass_through), timeout=timeout,
                    request_id=rid)
        try:
            raw = await (dep.backend.embeddings(call) if mode == "embedding" else dep.backend.chat(call))
        except UpstreamTimeout as exc:
            # the deadline cut this call short: its timeout is the request's deadline, whatever the
            # clocks say a moment later (a timer may fire a hair early)
            exc.by_deadline = timeout < dep.timeout
            raise
        try:
            out = normalize_embeddings(raw, dep.model_name) if mode == "embedding" else normalize_chat(raw, dep.model_name)
        except ValueError as exc:
            raise UpstreamBadResponse(f"upstream answer is malformed ({exc})") from None
        return raw, out

    def _priced(self, dep: Deployment, body: dict[str, Any], raw: dict[str, Any], out: dict[str, Any],
                who: Principal) -> Priced:
        usage = Usage.from_openai(raw.get("usage")) or self.meter.estimate(dep, body, answer_text(out))
        return self.meter.price(dep, usage, tenant=who.tenant, requested=body["model"])

    # -- non-streaming chat and embeddings ----------------------------------------------------------
    async def unary(self, who: Principal, body: dict[str, Any], rid: str, *, endpoint: str) -> Response:
        mode = "embedding" if endpoint == "embeddings" else "chat"
        requested = body["model"]
        started = time.perf_counter()
        attempts = Attempts()
        plan: Plan | None = None
        status, err_kind, dep_used, parts = 500, None, None, []
        votes: list[dict[str, Any]] | None = None  # a cascade's checking models answer once per request
        out_of_time = False  # an attempt was cut off by the request's deadline
        ticket: Ticket | None = None
        try:
            plan = await self.planner.plan(who, body, mode, rid)
            deadline = plan.deadline(started)
            spec = plan.decision.cascade if plan.decision is not None else None
            ticket = await self._admit(who, body, plan.deployments, mode, cascade=spec)
            unasked_logprobs = bool(spec) and not body.get("logprobs") and spec["check"]["type"] == "logprob"
            if unasked_logprobs:
                body = {**body, "logprobs": True}  # the check needs them; the client is not sent them
            steps = plan.deployments
            for i, dep in enumerate(steps):
                t0 = time.perf_counter()
                if deadline is not None and t0 >= deadline:
                    break  # no further attempt: the request's time is up
                try:
                    raw, out = await self._call(dep, body, rid, mode, deadline)
                except UpstreamError as exc:
                    self._failed(attempts, dep, exc, time.perf_counter() - t0)
                    if exc.by_deadline:
                        out_of_time = True
                        break
                    if not exc.retryable:
                        break
                    continue
                answered = time.perf_counter() - t0
                own = self._priced(dep, body, raw, out, who)
                parts.append(own)
                last = i == len(steps) - 1
                if spec and not last:
                    if spec["check"]["type"] == "judge":  # judges read each step's own answer
                        ok = await self._judged(spec["check"], body, out, who, rid, attempts, parts, deadline)
                    else:
                        if votes is None and spec["check"]["type"] in ("agreement", "verifier"):
                            votes = await self._votes(spec["check"], body, who, rid, attempts, parts, deadline)
                        ok = self._check(plan, out, votes or [])
                    if not ok:
                        self._served(attempts, dep, time.perf_counter() - t0, note=ESCALATED)
                        continue
                self._served(attempts, dep, time.perf_counter() - t0)
                if unasked_logprobs:
                    for choice in out.get("choices") or ():
                        choice["logprobs"] = None
                priced = Priced.combine(parts)
                # the answer's own usage (a cascade's other calls are metered and charged, not reported here)
                out["usage"] = ({"prompt_tokens": priced.usage.prompt_tokens, "total_tokens": priced.usage.prompt_tokens}
                                if mode == "embedding" else own.usage.to_openai())
                dep_used, status = dep, 200
                self.health.observe_output(dep.model_name, own.usage.completion_tokens)
                if mode == "chat":  # no first-token time without a stream: the smoothed TTFT stands in
                    self.health.observe_rate(dep.id, own.usage.completion_tokens,
                                             answered - (self.health.ttft_ms(dep.id) or 0.0) / 1000)
                self.planner.remember(plan, dep)
                if len(attempts.items) > 1:
                    self.meter.metrics.fallbacks.labels(dep.model_name).inc()
                return Response(orjson.dumps(out), media_type=_JSON,
                                headers=self._headers(dep, plan, priced, attempts, ticket))
            error = final_error(requested, attempts, plan.deadline_s if out_of_time or late(deadline) else None)
            status, err_kind = error.status, error.code
            raise error
        except APIError as exc:
            status, err_kind = exc.status, exc.code
            raise
        finally:
            priced_all = Priced.combine(parts) if parts else None
            if ticket is not None:
                self.limiter.settle(ticket, priced_all.charge_usd if priced_all else 0.0,
                                    priced_all.usage.total_tokens if priced_all else 0)
            if attempts.items:  # reached a backend: always metered, every call of a cascade included
                self.meter.record(request_id=rid, principal=who, endpoint=endpoint, requested=requested,
                                  dep=dep_used, priced=priced_all, status=status, error=err_kind,
                                  attempts=attempts.items, started=started, first_chunk_at=None,
                                  upstream_seconds=attempts.upstream_seconds, stream=False,
                                  decision=self._decision(plan) if plan else None)

    async def _votes(self, check: dict[str, Any], body: dict[str, Any], who: Principal, rid: str,
                     attempts: Attempts, parts: list[Priced], deadline: float | None) -> list[dict[str, Any]]:
        """The checking models' answers (each called once, in parallel, metered); a failed one is missing."""
        voters = [d for name in check.get("with") or () for d in self.planner.registry.candidates(name, "chat")[:1]]
        t0 = time.perf_counter()
        if late(deadline):
            return []  # no time to check: the check fails
        results = await asyncio.gather(*(self._call(v, body, rid, "chat", deadline) for v in voters),
                                       return_exceptions=True)
        answers = []
        for v, res in zip(voters, results):
            if isinstance(res, UpstreamError):
                self._failed(attempts, v, res, time.perf_counter() - t0)
                continue
            if isinstance(res, BaseException):
                raise res
            raw, vout = res
            parts.append(self._priced(v, body, raw, vout, who))
            self._served(attempts, v, time.perf_counter() - t0, note="cascade check")
            answers.append(vout)
        return answers

    async def _judged(self, check: dict[str, Any], body: dict[str, Any], answer: dict[str, Any], who: Principal,
                      rid: str, attempts: Attempts, parts: list[Priced], deadline: float | None) -> bool:
        """Every judge model, asked about this answer, says yes (a judge that fails or is missing: no)."""
        verdicts = await self._votes(check, checks.judge_request(check, body, answer), who, rid, attempts, parts,
                                     deadline)
        return len(verdicts) == len(check.get("with") or ()) and checks.approved(verdicts)

    @staticmethod
    def _check(plan: Plan, out: dict[str, Any], answers: list[dict[str, Any]]) -> bool:
        check = plan.decision.cascade["check"]  # type: ignore[union-attr]
        if check["type"] == "rule":
            return checks.rule_ok(check, out)
        if check["type"] == "logprob":
            return checks.logprob_ok(check, out)
        if check["type"] == "verifier":
            return checks.verified(plan.verifiers[check["verifier"]], check, out, answers)
        want = len(check.get("with") or ())
        return want > 0 and len(answers) == want and checks.agree(out, answers)

    # -- streaming chat ------------------------------------------------------------------------------
    async def stream(self, who: Principal, body: dict[str, Any], rid: str) -> Response:
        requested = body["model"]
        client_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        started = time.perf_counter()
        attempts = Attempts()
        plan = await self.planner.plan(who, body, "chat", rid)
        ticket = await self._admit(who, body, plan.deployments, "chat")
        deadline = plan.deadline(started)
        out_of_time = False
        for dep in plan.deployments:
            up = upstream_body(body, dep.upstream_model, "chat", dep.pass_through)
            up["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
            call = Call(body=up, timeout=dep.stream_timeout, request_id=rid)
            t0 = time.perf_counter()
            if deadline is not None and t0 >= deadline:
                break
            chunks = dep.backend.chat_stream(call)
            try:
                # the deadline bounds the wait for the first chunk; once it flows, the stream's own timeout rules
                first = await (chunks.__anext__() if deadline is None else asyncio.wait_for(chunks.__anext__(), deadline - t0))
            except TimeoutError:
                self._failed(attempts, dep, UpstreamTimeout("no first chunk before the request's deadline"),
                             time.perf_counter() - t0)
                await chunks.aclose()
                out_of_time = True
                break
            except StopAsyncIteration:
                self._failed(attempts, dep, UpstreamBadResponse("upstream stream was empty"), time.perf_counter() - t0)
                continue
            except UpstreamError as exc:
                self._failed(attempts, dep, exc, time.perf_counter() - t0)
                await chunks.aclose()
                if not exc.retryable:
                    break
                continue
            self.health.observe_ttft(dep.id, time.perf_counter() - t0)
            if attempts.items:
                self.meter.metrics.fallbacks.labels(dep.model_name).inc()
            relay = self._relay(who, body, rid, dep, chunks, first, attempts, started, t0, client_usage, ticket, plan)
            return SSEResponse(relay, headers=self._headers(dep, plan, None, attempts, ticket, in_flight=1))
        if ticket is not None:
            self.limiter.settle(ticket, 0.0, 0)
        error = final_error(requested, attempts, plan.deadline_s if out_of_time or late(deadline) else None)
        self.meter.record(request_id=rid, principal=who, endpoint="chat", requested=requested, dep=None,
                          priced=None, status=error.status, error=error.code, attempts=attempts.items,
                          started=started, first_chunk_at=None, upstream_seconds=attempts.upstream_seconds,
                          stream=True, decision=self._decision(plan))
        raise error

    async def _relay(self, who: Principal, body: dict[str, Any], rid: str, dep: Deployment,
                     chunks: AsyncIterator[dict[str, Any]], first: dict[str, Any], attempts: Attempts,
                     started: float, t0: float, client_usage: bool, ticket: Ticket | None,
                     plan: Plan) -> AsyncIterator[bytes]:
        stream_id = first.get("id") if isinstance(first.get("id"), str) else f"chatcmpl-{uuid.uuid4().hex}"
        created = first.get("created") if isinstance(first.get("created"), int) else int(time.time())
        tally = StreamTally()
        usage: Usage | None = None
        priced: Priced | None = None
        status, err_kind = 200, None
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
            priced = self.meter.price(dep, usage or self.meter.estimate(dep, body, tally.text),
                                      tenant=who.tenant, requested=body["model"])
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
            attempts.items.append({"deployment": dep.id, "model": dep.model_name, "error": err_kind,
                                   "seconds": round(upstream_s, 6)})
            if priced is None:  # cut, failed or abandoned: what was relayed is counted here
                priced = self.meter.price(dep, usage or self.meter.estimate(dep, body, tally.text),
                                          tenant=who.tenant, requested=body["model"])
            if status == 200:
                self.health.success(dep.id)
                self.health.observe_output(dep.model_name, priced.usage.completion_tokens)
                if tally.first_chunk_at is not None:
                    self.health.observe_rate(dep.id, priced.usage.completion_tokens,
                                             time.perf_counter() - tally.first_chunk_at)
                self.planner.remember(plan, dep)
            if ticket is not None:
                self.limiter.settle(ticket, priced.charge_usd, priced.usage.total_tokens)
            self.meter.record(request_id=rid, principal=who, endpoint="chat", requested=body["model"], dep=dep,
                              priced=priced, status=status, error=err_kind, attempts=attempts.items,
                              started=started, first_chunk_at=tally.first_chunk_at,
                              upstream_seconds=attempts.upstream_seconds + upstream_s, stream=True,
                              decision=self._decision(plan))


def _error_event(message: str, code: str) -> bytes:
    err = {"error": {"message": message, "type": "api_error", "param": None, "code": code}}
    return b"data: " + orjson.dumps(err) + b"\n\n"
