"""Serving one OpenAI request: plan the route, call deployments with fallback, relay, meter.

Fallback happens only before the first byte reaches the client: on a retryable failure the next
deployment in the plan is tried. After the first byte, a failure ends the stream with an
OpenAI-style error event and the partial usage is metered as estimated. A cascade (non-streaming)
answers with a cheaper model and escalates when its check fails; every call is metered.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from typing import Any, AsyncIterator

import orjson
from starlette.responses import Response

from pricing import Usage
from router import cascade as checks
from router.attempts import ESCALATED, final_error, late
from router.auth import Principal
from router.backends.base import Call, UpstreamBadResponse, UpstreamError, UpstreamTimeout
from router.errors import APIError
from router.health import Health
from router.exchange import Exchange
from router.limits import Limiter
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
    async def _admit(self, ex: Exchange, cands: list[Deployment], mode: str,
                     cascade: dict[str, Any] | None = None) -> dict[str, Any]:
        """Rate limits and budget reservation for this request; the body the upstream calls send (the
        client's, with an output bound added when nothing else bounds a budgeted answer). A cascade
        reserves for every call it may make: each step, and its checking models (judges: at every step
        but the last), each at the dearest step's worst case. A reasoning model reserves its reasoning
        allowance beyond the output bound."""
        body = ex.body
        if not self.limiter.active:
            return body
        who = ex.who
        if not self.limiter.counts_tokens:
            ex.ticket = await self.limiter.admit(who, body["model"], 0, None, request_id=ex.request_id,
                                                 now=ex.started_wall)
            return body
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
                    bound = asked = cfg.default_max_tokens
                    body = {**body, "max_tokens": bound}
                out = math.ceil(bound * (1 + dep.reasoning_allowance)) * n
            worst_out = max(worst_out, out)
            worst_charge = max(worst_charge, self.meter.worst_case(dep, who.tenant, body["model"], prompt, out))
        if cascade:
            checkers = len(cascade["check"].get("with") or ())
            worst_charge *= len(cands) + checkers * (len(cands) - 1 if cascade["check"]["type"] == "judge" else 1)
        ex.ticket = await self.limiter.admit(who, body["model"], prompt + worst_out, worst_charge,
                                             request_id=ex.request_id, now=ex.started_wall)
        return body

    @staticmethod
    def _headers(dep: Deployment, ex: Exchange, priced: Priced | None, in_flight: int = 0) -> dict[str, str]:
        """``in_flight``: attempts still running, not yet in the exchange's attempts (a stream being relayed)."""
        plan = ex.plan
        h = {"x-switchyard-model": dep.model_name, "x-switchyard-provider": dep.provider,
             "x-switchyard-attempts": str(len(ex.attempts.items) + in_flight)}
        if plan is not None and plan.decision is not None:
            h["x-switchyard-policy"] = _ascii(plan.decision.policy, 100)
            h["x-switchyard-reason"] = _ascii(plan.decision.reason)
        if priced is not None:
            h["x-switchyard-cost-usd"] = priced.header()
            h["x-switchyard-charge-usd"] = priced.charge_header()
            h["x-switchyard-usage-source"] = priced.usage.source
        if ex.ticket is not None:
            h.update(ex.ticket.headers)
        return h

    async def _call(self, ex: Exchange, dep: Deployment, body: dict[str, Any], mode: str,
                    deadline: float | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """One upstream call; its timeout is the deployment's, cut to what the request's deadline leaves."""
        timeout = dep.timeout if deadline is None else max(0.001, min(dep.timeout, deadline - time.perf_counter()))
        call = Call(body=upstream_body(body, dep.upstream_model, mode, dep.pass_through), timeout=timeout,
                    request_id=ex.request_id)
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

    def _priced(self, ex: Exchange, dep: Deployment, body: dict[str, Any], raw: dict[str, Any],
                out: dict[str, Any]) -> Priced:
        usage = Usage.from_openai(raw.get("usage")) or self.meter.estimate(dep, body, answer_text(out))
        return self.meter.price(dep, usage, tenant=ex.who.tenant, requested=ex.requested)

    # -- non-streaming chat and embeddings ----------------------------------------------------------
    async def unary(self, who: Principal, body: dict[str, Any], rid: str, *, endpoint: str) -> Response:
        mode = "embedding" if endpoint == "embeddings" else "chat"
        ex = Exchange(self, who, body, rid, endpoint)
        votes: list[dict[str, Any]] | None = None  # a cascade's checking models answer once per request
        out_of_time = False  # an attempt was cut off by the request's deadline
        try:
            ex.plan = plan = await self.planner.plan(who, body, mode, rid)
            deadline = plan.deadline(ex.started)
            spec = plan.decision.cascade if plan.decision is not None else None
            body = await self._admit(ex, plan.deployments, mode, cascade=spec)
            unasked_logprobs = bool(spec) and not body.get("logprobs") and spec["check"]["type"] == "logprob"
            if unasked_logprobs:
                body = {**body, "logprobs": True}  # the check needs them; the client is not sent them
            steps = plan.deployments
            for i, dep in enumerate(steps):
                if deadline is not None and time.perf_counter() >= deadline:
                    break  # no further attempt: the request's time is up
                t0 = ex.calling(dep)
                try:
                    raw, out = await self._call(ex, dep, body, mode, deadline)
                except UpstreamError as exc:
                    ex.failed(dep, exc, time.perf_counter() - t0)
                    if exc.by_deadline:
                        out_of_time = True
                        break
                    if not exc.retryable:
                        break
                    continue
                answered = time.perf_counter() - t0
                ex.in_flight = None
                own = self._priced(ex, dep, body, raw, out)
                at = len(ex.lines)
                ex.line(dep, "answer", own)  # a cascade step until its check passes
                last = i == len(steps) - 1
                if spec and not last:
                    if spec["check"]["type"] == "judge":  # judges read each step's own answer
                        ok = await self._judged(ex, spec["check"], body, out, deadline)
                    else:
                        if votes is None and spec["check"]["type"] in ("agreement", "verifier"):
                            votes = await self._votes(ex, spec["check"], body, deadline)
                        ok = self._check(plan, out, votes or [])
                    if not ok:
                        ex.lines[at] = (dep, "cascade_step", own)
                        ex.served(dep, time.perf_counter() - t0, note=ESCALATED)
                        continue
                ex.served(dep, time.perf_counter() - t0)
                if unasked_logprobs:
                    for choice in out.get("choices") or ():
                        choice["logprobs"] = None
                priced = ex.priced()
                # the answer's own usage (a cascade's other calls are metered and charged, not reported here)
                out["usage"] = ({"prompt_tokens": priced.usage.prompt_tokens, "total_tokens": priced.usage.prompt_tokens}
                                if mode == "embedding" else own.usage.to_openai())
                ex.dep, ex.status = dep, 200
                self.health.observe_output(dep.model_name, own.usage.completion_tokens - own.usage.reasoning_tokens)
                if mode == "chat":  # no first-token time without a stream: the smoothed TTFT stands in
                    self.health.observe_rate(dep.id, own.usage.completion_tokens,
                                             answered - (self.health.ttft_ms(dep.id) or 0.0) / 1000)
                self.planner.remember(plan, dep)
                if ex.attempts.last_error is not None:  # an attempt failed before this one answered
                    self.meter.metrics.fallbacks.labels(dep.model_name).inc()
                return Response(orjson.dumps(out), media_type=_JSON, headers=self._headers(dep, ex, priced))
            raise final_error(ex.requested, ex.attempts, plan.deadline_s if out_of_time or late(deadline) else None)
        except (APIError, asyncio.CancelledError) as exc:
            ex.ended(exc)
            raise
        finally:
            ex.close()

    async def _votes(self, ex: Exchange, check: dict[str, Any], body: dict[str, Any],
                     deadline: float | None) -> list[dict[str, Any]]:
        """The checking models' answers (each called once, in parallel, metered); a failed one is missing."""
        voters = [d for name in check.get("with") or () for d in self.planner.registry.candidates(name, "chat")[:1]]
        t0 = time.perf_counter()
        if late(deadline):
            return []  # no time to check: the check fails
        results = await asyncio.gather(*(self._call(ex, v, body, "chat", deadline) for v in voters),
                                       return_exceptions=True)
        answers = []
        for v, res in zip(voters, results):
            if isinstance(res, UpstreamError):
                ex.failed(v, res, time.perf_counter() - t0)
                continue
            if isinstance(res, BaseException):
                raise res
            raw, vout = res
            ex.line(v, "check", self._priced(ex, v, body, raw, vout))
            ex.served(v, time.perf_counter() - t0, note="cascade check")
            answers.append(vout)
        return answers

    async def _judged(self, ex: Exchange, check: dict[str, Any], body: dict[str, Any], answer: dict[str, Any],
                      deadline: float | None) -> bool:
        """Every judge model, asked about this answer, says yes (a judge that fails or is missing: no)."""
        verdicts = await self._votes(ex, check, checks.judge_request(check, body, answer), deadline)
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
        client_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        ex = Exchange(self, who, body, rid, "chat", stream=True)
        handed_off = False  # the response owns the exchange from here: it closes it
        out_of_time = False
        try:
            ex.plan = plan = await self.planner.plan(who, body, "chat", rid)
            body = await self._admit(ex, plan.deployments, "chat")
            deadline = plan.deadline(ex.started)
            for dep in plan.deployments:
                up = upstream_body(body, dep.upstream_model, "chat", dep.pass_through)
                up["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
                call = Call(body=up, timeout=dep.stream_timeout, request_id=rid)
                if deadline is not None and time.perf_counter() >= deadline:
                    break
                t0 = ex.calling(dep)
                chunks = dep.backend.chat_stream(call)
                try:
                    # the deadline bounds the wait for the first chunk; once it flows, the stream's own timeout rules
                    first = await (chunks.__anext__() if deadline is None
                                   else asyncio.wait_for(chunks.__anext__(), deadline - t0))
                except TimeoutError:
                    ex.failed(dep, UpstreamTimeout("no first chunk before the request's deadline"), time.perf_counter() - t0)
                    await chunks.aclose()
                    out_of_time = True
                    break
                except StopAsyncIteration:
                    ex.failed(dep, UpstreamBadResponse("upstream stream was empty"), time.perf_counter() - t0)
                    continue
                except UpstreamError as exc:
                    ex.failed(dep, exc, time.perf_counter() - t0)
                    await chunks.aclose()
                    if not exc.retryable:
                        break
                    continue
                self.health.observe_ttft(dep.id, time.perf_counter() - t0)
                if ex.attempts.last_error is not None:  # an attempt failed before this one started
                    self.meter.metrics.fallbacks.labels(dep.model_name).inc()
                relay = _Relay(self, ex, body, dep, chunks, first, t0, client_usage)
                handed_off = True
                return SSEResponse(relay.events(), headers=self._headers(dep, ex, None, in_flight=1),
                                   on_close=relay.abandon)
            raise final_error(ex.requested, ex.attempts, plan.deadline_s if out_of_time or late(deadline) else None)
        except (APIError, asyncio.CancelledError) as exc:
            ex.ended(exc)
            raise
        finally:
            if not handed_off:
                ex.close()


class _Relay:
    """A started upstream stream, relayed to the client as OpenAI chunks; closes the exchange when it
    ends, fails, is cut, or (``abandon``) is never read at all."""

    def __init__(self, gw: Gateway, ex: Exchange, body: dict[str, Any], dep: Deployment,
                 chunks: AsyncIterator[dict[str, Any]], first: dict[str, Any], t0: float, client_usage: bool):
        self.gw, self.ex, self.body, self.dep, self.chunks, self.first = gw, ex, body, dep, chunks, first
        self.t0, self.client_usage = t0, client_usage
        self.tally = StreamTally()
        self.usage: Usage | None = Usage.from_openai(first["usage"]) if first.get("usage") else None
        self.stream_id = first.get("id") if isinstance(first.get("id"), str) else f"chatcmpl-{uuid.uuid4().hex}"
        self.created = first.get("created") if isinstance(first.get("created"), int) else int(time.time())

    def _price(self) -> Priced:
        gw, ex = self.gw, self.ex
        usage = self.usage or gw.meter.estimate(self.dep, self.body, self.tally.text)
        return gw.meter.price(self.dep, usage, tenant=ex.who.tenant, requested=ex.requested)

    async def events(self) -> AsyncIterator[bytes]:
        gw, dep = self.gw, self.dep
        priced: Priced | None = None
        status, err_kind = 200, None
        chunk: dict[str, Any] | None = self.first
        # the per-chunk loop reads locals only (it runs once per token)
        chunks, add, dumps, name, sid, created = self.chunks, self.tally.add, orjson.dumps, dep.model_name, \
            self.stream_id, self.created
        try:
            while chunk is not None:
                if chunk.get("usage"):
                    self.usage = Usage.from_openai(chunk["usage"]) or self.usage
                norm = normalize_chunk(chunk, name, sid, created)
                if norm is not None:
                    add(norm)
                    yield b"data: " + dumps(norm) + b"\n\n"
                chunk = await anext(chunks, None)
            priced = self._price()
            if self.client_usage:
                tail = {"id": self.stream_id, "object": "chat.completion.chunk", "created": self.created,
                        "model": dep.model_name, "choices": [], "usage": priced.usage.to_openai(),
                        "switchyard": {"cost_usd": priced.cost_usd, "charge_usd": priced.charge_usd,
                                       "usage_source": priced.usage.source, "price_version": priced.price_version}}
                yield b"data: " + orjson.dumps(tail) + b"\n\n"
            yield b"data: [DONE]\n\n"
        except UpstreamError as exc:
            status, err_kind = exc.status, f"upstream_{exc.kind}"
            gw.meter.metrics.upstream_errors.labels(dep.model_name, dep.provider, exc.kind).inc()
            yield _error_event(f"The upstream stream failed after it started: {exc.message}.", err_kind)
        except ValueError as exc:
            status, err_kind = 502, "upstream_bad_response"
            yield _error_event(f"The upstream sent a malformed chunk ({exc}).", err_kind)
        except (asyncio.CancelledError, GeneratorExit):
            status, err_kind = 499, "client_disconnected"
            gw.meter.metrics.disconnects.labels(dep.model_name).inc()
            raise
        finally:
            await self._finish(priced, status, err_kind)

    async def _finish(self, priced: Priced | None, status: int, err_kind: str | None) -> None:
        gw, ex, dep = self.gw, self.ex, self.dep
        if ex.closed:
            return
        ex.in_flight = None
        await self.chunks.aclose()  # aborts the upstream request if it is still running
        if priced is None:  # cut, failed or abandoned: what was relayed is counted here
            priced = self._price()
        ex.served(dep, time.perf_counter() - self.t0, error=err_kind)
        ex.line(dep, "answer", priced)
        ex.dep, ex.first_chunk_at = dep, self.tally.first_chunk_at
        ex.fail(status, err_kind)
        if status == 200:
            gw.health.observe_output(dep.model_name, priced.usage.completion_tokens - priced.usage.reasoning_tokens)
            if self.tally.first_chunk_at is not None:
                gw.health.observe_rate(dep.id, priced.usage.completion_tokens,
                                       time.perf_counter() - self.tally.first_chunk_at)
            if ex.plan is not None:
                gw.planner.remember(ex.plan, dep)
        ex.close()

    async def abandon(self) -> None:
        """The response ended without the relay finishing (never started, or cut before its cleanup)."""
        if not self.ex.closed:
            self.gw.meter.metrics.disconnects.labels(self.dep.model_name).inc()
            await self._finish(None, 499, "client_disconnected")


def _error_event(message: str, code: str) -> bytes:
    err = {"error": {"message": message, "type": "api_error", "param": None, "code": code}}
    return b"data: " + orjson.dumps(err) + b"\n\n"
