"""A streamed answer: the plan's deployments in order until one starts streaming (fallback happens only
before the first chunk, the deadline bounds the wait for it); then its chunks are relayed to the
client as OpenAI chunks (or, through the request's surface, as that API's events). A failure after the first chunk ends the stream with an OpenAI-style error
event; a cut stream is metered at what was relayed (estimated). The relay closes the exchange when
the stream ends, fails, is cut, or is never read at all (``abandon``)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any, AsyncGenerator, AsyncIterator

from starlette.responses import Response

from pricing import Usage
from router.cache import keep
from router.backends.base import Call, UpstreamBadResponse, UpstreamError, UpstreamTimeout, chunk_batches
from router.accounting.metering import Priced, StreamTally
from router.wire import normalize_chunk, upstream_body
from router.registry import Deployment
from router.sse import SSEResponse
from router.strategies.base import Strategy, headers
from router.surfaces.base import NATIVE, finish_surface
from router.surfaces.chat import ChatEncoder


class Streamed(Strategy):
    name = "stream"
    handed_off = False  # the response owns the exchange from here: it closes it

    async def run(self) -> Response:
        ex, body, deadline = self.ex, self.body, self.deadline
        client_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        surface = ex.surface
        for dep in ex.plan.deployments:  # type: ignore[union-attr]
            native = surface.native_call(dep) if surface is not None else None
            if native is not None:  # the deployment speaks the client's API: its events are relayed as they come
                client, native_body = native
                call = Call(
                    body={**native_body, "stream": True},
                    timeout=dep.stream_timeout,
                    request_id=ex.request_id,
                    extra_headers=surface.native_headers,  # type: ignore[union-attr]
                )
            else:
                up = upstream_body(body, dep.upstream_model, "chat", dep.pass_through)
                up["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
                call = Call(body=up, timeout=dep.stream_timeout, request_id=ex.request_id)
            if deadline is not None and time.perf_counter() >= deadline:
                break
            t0 = ex.calling(dep)
            if ex.trace is not None:  # the call's span, its context sent upstream as traceparent
                call.extra_headers = ex.trace.calling(dep, "chat", call.extra_headers)
            groups = (
                surface.native_groups(client.stream(call), dep.model_name)  # type: ignore[union-attr]
                if native is not None
                else chunk_batches(dep.backend, call)
            )
            try:
                # the deadline bounds the wait for the first chunk; once it flows, the stream's own timeout rules
                # (a timeout scope, not wait_for: on 3.11 wait_for runs the wait in a task of its own)
                if deadline is None:
                    first = await groups.__anext__()
                else:
                    async with asyncio.timeout(deadline - t0):
                        first = await groups.__anext__()
            except TimeoutError:
                ex.failed(
                    dep, UpstreamTimeout("no first chunk before the request's deadline"), time.perf_counter() - t0
                )
                await groups.aclose()
                self.out_of_time = True
                break
            except StopAsyncIteration:
                ex.failed(dep, UpstreamBadResponse("upstream stream was empty"), time.perf_counter() - t0)
                continue
            except UpstreamError as exc:
                ex.failed(dep, exc, time.perf_counter() - t0)
                await groups.aclose()
                if not exc.retryable:
                    break
                continue
            self.gw.health.observe_ttft(dep.id, time.perf_counter() - t0)
            if ex.attempts.last_error is not None:  # an attempt failed before this one started
                self.gw.meter.metrics.fallbacks.labels(dep.model_name).inc()
            relay = Relay(self, dep, groups, first, t0, client_usage, native=native is not None)
            self.handed_off = True
            return SSEResponse(relay.events(), headers=headers(dep, ex, None, in_flight=1), on_close=relay.abandon)
        raise self.exhausted()


class Relay:
    """A started upstream stream, relayed to the client as OpenAI chunks (or, through the request's surface, as that API's events)."""

    def __init__(
        self,
        strategy: Streamed,
        dep: Deployment,
        groups: AsyncGenerator[list[dict[str, Any]], None],
        first: list[dict[str, Any]],
        t0: float,
        client_usage: bool,
        native: bool = False,
    ):
        self.gw, self.ex, self.body = strategy.gw, strategy.ex, strategy.body
        self.native = native  # the chunks carry the upstream's own events, relayed as they are
        self.dep, self.groups, self.first, self.t0, self.client_usage = dep, groups, first, t0, client_usage
        self.tally = StreamTally()
        self.usage: Usage | None = Usage.from_openai(first[0]["usage"]) if first[0].get("usage") else None
        given_id, given_created = first[0].get("id"), first[0].get("created")
        self.stream_id: str = given_id if isinstance(given_id, str) else f"chatcmpl-{uuid.uuid4().hex}"
        self.created: int = given_created if isinstance(given_created, int) else int(time.time())

    def _price(self, complete: bool = True) -> Priced:
        """The stream's price: by the upstream's usage, else by what was relayed; a stream that did
        not complete is charged at least for the text it relayed (the upstream's count so far may
        be a placeholder)."""
        gw, ex = self.gw, self.ex
        usage = self.usage
        if usage is None or not complete:
            counted = gw.meter.estimate(self.dep, self.body, self.tally.text)
            usage = counted if usage is None else usage.relayed_at_least(counted.completion_tokens)
        return gw.meter.price(self.dep, usage, tenant=ex.who.tenant, requested=ex.requested)

    async def events(self) -> AsyncIterator[bytes]:
        gw, dep = self.gw, self.dep
        priced: Priced | None = None
        status, err_kind = 200, None
        group: list[dict[str, Any]] | None = self.first
        surface = self.ex.surface
        enc = (surface.encoder if surface is not None else ChatEncoder)(
            self.stream_id, self.created, dep.model_name, self.client_usage
        )
        # the per-chunk loop reads locals only (it runs once per token)
        groups, add, encode, name, sid, created = (
            self.groups,
            self.tally.add,
            enc.chunk,
            dep.model_name,
            self.stream_id,
            self.created,
        )
        native = self.native
        try:
            head = b"" if native else enc.begin()
            out: list[bytes] = [head] if head else []
            while group is not None:
                # the chunks that arrived together go out together: one write, not one per chunk
                for chunk in group:
                    if chunk.get("usage"):
                        self.usage = Usage.from_openai(chunk["usage"]) or self.usage
                    norm = normalize_chunk(chunk, name, sid, created)
                    if norm is not None:
                        add(norm)
                    if native:
                        out.append(chunk[NATIVE])
                    elif norm is not None:
                        encoded = encode(norm)
                        if encoded:
                            out.append(encoded)
                if out:
                    yield out[0] if len(out) == 1 else b"".join(out)
                    out = []
                group = await anext(groups, None)
            priced = self._price()
            tail = (
                b""
                if native
                else enc.end(
                    priced.usage.to_openai(),
                    {
                        "cost_usd": priced.cost_usd,
                        "charge_usd": priced.charge_usd,
                        "usage_source": priced.usage.source,
                        "price_version": priced.price_version,
                    },
                )
            )
            if surface is not None:
                await finish_surface(surface)  # before the end event: a client may continue from it at once
            if tail:
                yield tail
        except UpstreamError as exc:
            status, err_kind = exc.status, f"upstream_{exc.kind}"
            gw.meter.metrics.upstream_errors.labels(dep.model_name, dep.provider, exc.kind).inc()
            yield enc.fail(f"The upstream stream failed after it started: {exc.message}.", err_kind)
        except ValueError as exc:
            status, err_kind = 502, "upstream_bad_response"
            yield enc.fail(f"The upstream sent a malformed chunk ({exc}).", err_kind)
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
        await self.groups.aclose()  # aborts the upstream request if it is still running
        if priced is None:  # cut, failed or abandoned: what was relayed is counted here
            priced = self._price(complete=False)
        ex.served(dep, time.perf_counter() - self.t0, error=err_kind)
        ex.line(dep, "answer", priced)
        ex.dep, ex.first_chunk_at = dep, self.tally.first_chunk_at
        ex.fail(status, err_kind)
        if status == 200 and ex.cache_key is not None:
            self._keep(priced)
        if status == 200:
            gw.health.observe_output(dep.model_name, priced.usage.completion_tokens - priced.usage.reasoning_tokens)
            if self.tally.first_chunk_at is not None:
                gw.health.observe_rate(
                    dep.id, priced.usage.completion_tokens, time.perf_counter() - self.tally.first_chunk_at
                )
            if ex.plan is not None:
                gw.planner.remember(ex.plan, dep)
        ex.close()

    def _keep(self, priced: Priced) -> None:
        """A streamed miss: its answer is kept as a chat completion when it is plain text in one choice
        (a tool call's or several choices' chunks are not assembled)."""
        tally, body = self.tally, self.body
        if self.native or tally.tools or tally.finish is None or (body.get("n") or 1) != 1:
            return
        usage = priced.usage.to_openai()
        out = {
            "id": self.stream_id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.dep.model_name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(tally.text)},
                    "finish_reason": tally.finish,
                }
            ],
            "usage": usage,
        }
        keep(self.gw, self.ex, self.dep, out, priced)

    async def abandon(self) -> None:
        """The response ended without the relay finishing (never started, or cut before its cleanup)."""
        if not self.ex.closed:
            self.gw.meter.metrics.disconnects.labels(self.dep.model_name).inc()
            await self._finish(None, 499, "client_disconnected")
