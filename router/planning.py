"""From a request to an ordered list of deployments: the policy's decision, or the static route.

Builds the request's features (prompt text, token count, needed capabilities, task category,
prompt-cache affinity) and each candidate's live facts (price, health, TTFT, output history),
asks the matching policy, and maps the chosen models to deployments that are not circuit-open.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import orjson

from policies.decide import CandidateInfo, Decision, RequestFeatures
from policies.draws import SeededDraws
from policies.features import categorize
from policies.verifier import Verifier
from router.auth import Principal
from router.errors import APIError, model_not_found, permission_error
from router.health import Health
from router.accounting.metering import Meter
from router.policy_store import PolicyStore
from router.protocol import client_fallbacks
from router.wire import content_text
from router.registry import Deployment, Registry
from router.accounting.state import StateStore

log = logging.getLogger("switchyard.planning")
AFFINITY_MEMORY = 100_000  # conversations whose serving deployment this process remembers
AFFINITY_TTL = 600  # seconds the shared store keeps it: providers keep a prompt cache for minutes
CACHEABLE_TOKENS = 1024  # providers cache prompt prefixes from 1,024 tokens; shorter ones are not shared


@dataclass
class RoutePlan:
    deployments: list[Deployment]
    decision: Decision | None = None
    category: str = "general"
    prefix_key: bytes | None = None
    verifiers: dict[str, Verifier] = field(default_factory=dict)  # for a cascade's verifier check
    deadline_s: float | None = None  # the request's time budget: the client's ``timeout`` or the policy's, the shorter
    cacheable: bool = False  # long enough for providers to cache its prefix: where it is served is shared

    def deadline(self, started: float) -> float | None:
        """The time.perf_counter() reading by which the answer must start (None: no deadline)."""
        return started + self.deadline_s if self.deadline_s else None


def _units(who: Principal, body: dict[str, Any]) -> dict[str, str]:
    """Who asks, for a split's sticky arms: the end user the client names (within its tenant), the key, the tenant."""
    units = {"key": who.key_id, "tenant": who.tenant}
    if body.get("user"):
        units["user"] = f"{who.tenant}\x1f{body['user']}"
    return units


def _deadline(client: float | None, policy: float | None) -> float | None:
    given = [float(x) for x in (client, policy) if x]
    return min(given) if given else None


def prompt_text(messages: list[dict[str, Any]]) -> str:
    """The text a quality predictor reads: the last user turn (text parts)."""
    for msg in reversed(messages):
        if msg.get("role") == "user":
            c = msg.get("content")
            if isinstance(c, (str, list)):
                return content_text(c)
    return ""


def needs(body: dict[str, Any]) -> frozenset[str]:
    out = set()
    if body.get("tools"):
        out.add("tools")
    if (body.get("response_format") or {}).get("type") == "json_schema":
        out.add("json_schema")
    for msg in body.get("messages") or ():
        c = msg.get("content")
        if isinstance(c, list) and any(
            isinstance(p, dict) and p.get("type") in ("image_url", "input_image") for p in c
        ):
            out.add("vision")
    return frozenset(out)


def _keys(messages: list[dict[str, Any]]) -> dict[int, bytes]:
    """The prompt-cache affinity keys of the conversation and of its two shorter prefixes, by their
    number of messages: one running hash over each message's JSON (sorted keys), so a long history
    is serialised and hashed once rather than once per prefix."""
    n, h, out = len(messages), hashlib.sha256(), {}
    for i, msg in enumerate(messages, 1):
        h.update(orjson.dumps(msg, option=orjson.OPT_SORT_KEYS))
        h.update(b"\x1e")
        if i >= n - 2:
            out[i] = h.digest()  # (digest leaves the hash open to more updates)
    return out


class Planner:
    def __init__(
        self,
        registry: Registry,
        policies: PolicyStore,
        health: Health,
        meter: Meter,
        num_retries: int,
        shared: StateStore | None = None,
        fallbacks: dict[str, list[str]] | None = None,
        context_fallbacks: dict[str, list[str]] | None = None,
    ):
        self.registry = registry
        self.fallbacks = fallbacks or {}  # model -> models tried when all of its deployments fail (config)
        self.context_fallbacks = context_fallbacks or {}  # model -> larger-context models (config)
        self.policies = policies
        self.health = health
        self.meter = meter
        self.num_retries = num_retries
        self._affinity: OrderedDict[bytes, str] = OrderedDict()  # conversation prefix -> deployment id
        self._by_id = {d.id: d for d in registry.deployments}
        self.shared = shared  # where other replicas learn where a conversation was served (Redis)
        self._writes: set[asyncio.Task[None]] = set()

    async def _holder(self, messages: list[dict[str, Any]], keyed: dict[int, bytes]) -> tuple[Deployment | None, int]:
        """The deployment that served this conversation's earlier turns, and how many of its tokens are
        cached there. A conversation continues as messages + [assistant reply, new user turn], so its
        cached prefix is an earlier request's whole message list (what ``remember`` stores). This
        process's memory first; the shared store for prefixes it has not seen (another replica's)."""
        prefixes = [messages[:-cut] for cut in (2, 1) if len(messages) > cut]
        keys = [keyed[len(p)] for p in prefixes]
        unseen = [k for k in keys if k not in self._affinity]
        if self.shared is not None and unseen:
            try:
                found = await self.shared.affinity_get([k.hex() for k in unseen])
            except Exception as exc:  # noqa: BLE001 - no shared memory: route by price alone
                log.debug("affinity lookup failed: %s", type(exc).__name__)
                self.meter.metrics.state_errors.inc()
                found = []
            for k, dep in zip(unseen, found):
                if dep is not None and dep in self._by_id:
                    self._note(k, dep)
        for prefix, key in zip(prefixes, keys):
            holder = self._by_id.get(self._affinity.get(key, ""))
            if holder is not None:  # (its cached tokens discount the expected costs: an estimate serves)
                return holder, self.meter.tokenizer.count_messages(holder.upstream_model, prefix, sample=True)
        return None, 0

    def knows(self, name: str) -> bool:
        return self.registry.knows(name) or name in self.policies.aliases()

    def _router(self, who: Principal, requested: str, mode: str) -> tuple[bool, Any]:
        """Whether ``requested`` names a concrete model, and the policy router bound to it (chat only)."""
        concrete = requested not in self.registry.aliases and bool(self.registry.candidates(requested, mode))
        return concrete, self.policies.match(requested, who.tenant, concrete) if mode == "chat" else None

    def policy_for(self, who: Principal, requested: str) -> str | None:
        """The name of the policy a chat request for ``requested`` would be routed by, if any."""
        router = self._router(who, requested, "chat")[1]
        return router.policy.name if router is not None else None

    def names(self) -> list[str]:
        return list(dict.fromkeys(self.registry.names() + self.policies.aliases()))

    def info(self, name: str, mode: str) -> CandidateInfo | None:
        deps = self.registry.candidates(name, mode)
        if not deps:
            return None
        d = deps[0]
        ttfts = [t for t in (self.health.ttft_ms(x.id) for x in deps) if t is not None]
        rates = [r for r in (self.health.tokens_per_s(x.id) for x in deps) if r is not None]
        return CandidateInfo(
            name=name,
            provider=d.provider,
            price=d.price(self.meter.catalog),
            region=d.region,
            self_hosted=d.self_hosted,
            capabilities=d.capabilities,
            context_window=d.context_window,
            ttft_ms=min(ttfts) if ttfts else None,
            tokens_per_s=max(rates) if rates else None,
            healthy=any(self.health.state(x.id) != "open" for x in deps),
            expected_output=self.health.expected_output(name),
            reasoning_allowance=d.reasoning_allowance,
        )

    async def plan(self, who: Principal, body: dict[str, Any], mode: str, rid: str) -> RoutePlan:
        """The route for one request: the policy's (or the alias's) deployments in the order to try,
        then the deployments of the models the request names as its own fallbacks."""
        if mode == "chat" and body["model"] in self.context_fallbacks:
            body = self._fitting(who, body)
        extra: list[Deployment] = []
        if mode == "chat" and ("fallbacks" in body or "models" in body):
            extra = self._fallbacks(who, body, mode)
        elif mode == "chat" and body["model"] in self.fallbacks:
            extra = self._configured(who, body["model"])
        plan = await self._plan(who, body, mode, rid)
        if extra and (plan.decision is None or plan.decision.cascade is None):  # a cascade's steps stay its own
            have = {d.id for d in plan.deployments}
            plan.deployments = [*plan.deployments, *(d for d in extra if d.id not in have)]
        if not plan.deployments:
            raise self._saturated(body["model"])
        return plan

    def _configured(self, who: Principal, model: str) -> list[Deployment]:
        """The config's fallbacks for ``model`` this key may use (the others are skipped: the operator's
        list, not the client's)."""
        out: list[Deployment] = []
        for name in self.fallbacks[model]:
            if name != model and (who.models is None or name in who.models):
                out.extend(self._available(self.registry.route(name, "chat")))
        return out

    def _fitting(self, who: Principal, body: dict[str, Any]) -> dict[str, Any]:
        """The request, for the model whose context window holds its prompt: the model asked for, else the
        first of its context-window fallbacks that fits (a 400 when none does)."""
        model = body["model"]
        names = [model, *self.context_fallbacks[model]]
        counted: int | None = None
        for name in names:
            deps = self.registry.candidates(name, "chat")
            window = max((d.context_window or 0) for d in deps) if deps else 0
            if counted is None and deps and window and self.meter.prompt_bound(deps[0], body) > window:
                counted = self.meter.estimate(deps[0], body).prompt_tokens  # the bound does not show it fits
            if (
                deps
                and (not window or counted is None or counted <= window)
                and (name == model or who.models is None or name in who.models)
            ):
                return body if name == model else {**body, "model": name}
        raise APIError(
            400,
            f"The prompt ({counted} tokens) fits neither '{model[:256]}' nor its context-window fallbacks.",
            param="messages",
            code="context_length_exceeded",
        )

    def _fallbacks(self, who: Principal, body: dict[str, Any], mode: str) -> list[Deployment]:
        """The deployments of the request's own fallback models: each one known and allowed to this key
        (a clear 404 or 403 naming it otherwise, never skipped silently)."""
        out: list[Deployment] = []
        for name in client_fallbacks(body):
            if not self.knows(name):
                raise APIError(
                    404,
                    f"The fallback model '{name[:256]}' does not exist.",
                    type="invalid_request_error",
                    param="fallbacks",
                    code="model_not_found",
                )
            if who.models is not None and name not in who.models:
                raise permission_error(f"This key is not allowed to use the fallback model '{name[:256]}'.")
            deps = self._available(self.registry.route(name, mode))
            if not deps and self.registry.candidates(name, mode):
                continue  # at capacity: the other fallbacks are tried
            if not deps:
                raise APIError(
                    400,
                    f"The fallback model '{name[:256]}' is not a chat model.",
                    param="fallbacks",
                    code="wrong_model_type",
                )
            out.extend(deps)
        return out

    async def _plan(self, who: Principal, body: dict[str, Any], mode: str, rid: str) -> RoutePlan:
        requested = body["model"]
        if not self.knows(requested):
            raise model_not_found(requested)
        if who.models is not None and requested not in who.models:
            raise permission_error(f"This key is not allowed to use the model '{requested}'.")
        concrete, router = self._router(who, requested, mode)
        if router is None:
            deps = self.registry.route(requested, mode)
            if not deps and self.registry.candidates(requested, mode):
                return RoutePlan([], deadline_s=_deadline(body.get("timeout"), None))  # at capacity: fallbacks only
            if not deps:
                kind = "an embeddings" if mode == "embedding" else "a chat"
                raise APIError(
                    400, f"The model '{requested}' is not {kind} model.", param="model", code="wrong_model_type"
                )
            return RoutePlan(
                self._available(deps)[: 1 + self.num_retries], deadline_s=_deadline(body.get("timeout"), None)
            )
        messages = body["messages"]
        pool = [requested] if concrete else router.models
        infos = [i for i in (self.info(n, mode) for n in pool) if i is not None]
        text = prompt_text(messages)
        category = categorize(text, (body.get("response_format") or {}).get("type") in ("json_object", "json_schema"))
        first = self.registry.candidates(infos[0].name, mode)[0] if infos else None
        prompt_tokens = self._prompt_tokens(first, body, infos) if first is not None else 0
        keyed = _keys(messages)
        holder, cached = await self._holder(messages, keyed)
        affinity = holder.model_name if holder is not None else None
        features = RequestFeatures(
            prompt=text,
            prompt_tokens=prompt_tokens,
            max_tokens=body.get("max_completion_tokens") or body.get("max_tokens"),
            needs=needs(body),
            category=category,
            stream=bool(body.get("stream")),
            affinity=affinity,
            cached_prefix_tokens=cached,
            concrete=concrete,
            unit=_units(who, body),
            sold_at=self._sold_at(who, requested),
        )
        decision = router.decide(features, infos, SeededDraws(rid))  # seeded by the request id, on a first draw
        if not decision.order:
            reasons = "; ".join(f"{c['model']}: {c['removed_by']}" for c in decision.candidates)
            raise APIError(
                400,
                f"No model satisfies policy '{decision.policy}' for this request ({reasons}).",
                param="model",
                code="no_eligible_model",
            )
        deps = []
        pin = holder is not None and router.policy.constraints.cache_affinity
        for name in decision.order:
            group = self._available(self.registry.route(name, mode))
            if pin and holder in group:  # the replica that holds the conversation's prefix cache first
                group = [holder] + [d for d in group if d is not holder]
            deps.extend(group)
        if not deps and self.registry.limited:  # every deployment at its rpm, tpm or max_parallel_requests
            raise self._saturated(requested)
        if not deps:  # every circuit open: try the first choice anyway
            deps = self.registry.candidates(decision.order[0], mode)
        return RoutePlan(
            deps[: router.policy.max_attempts] if decision.cascade is None else deps,
            decision,
            category,
            keyed[len(messages)],
            router.verifiers,
            _deadline(body.get("timeout"), router.policy.deadline_s),
            prompt_tokens >= CACHEABLE_TOKENS,
        )

    def _prompt_tokens(self, dep: Deployment, body: dict[str, Any], infos: list[CandidateInfo]) -> int:
        """The prompt's tokens for the decision. Counted where a candidate's context window is at
        stake (the prompt's byte bound and the output asked for exceed the smallest window), so no
        candidate is kept or dropped on an estimate; otherwise, for the expected costs, estimated
        from slices of its long texts (``Meter.decision_tokens``): a 100 KB prompt is not tokenised
        whole to be routed (6-12 ms of CPU, against about 1 ms for the rest of the request)."""
        windows = [i.context_window for i in infos if i.context_window]
        if windows:
            out = body.get("max_completion_tokens") or body.get("max_tokens") or 0
            if self.meter.prompt_bound(dep, body) + out > min(windows):
                return self.meter.estimate(dep, body).prompt_tokens
        return self.meter.decision_tokens(dep, body)

    def _sold_at(self, who: Principal, requested: str) -> tuple[float, float] | None:
        """The tenant's fixed price for what it asked for (USD per prompt and completion token), if its plan has one."""
        fixed = self.meter.billing.plan(who.tenant).fixed.get(requested)
        return None if fixed is None else (fixed.input_per_mtok / 1e6, fixed.output_per_mtok / 1e6)

    def _saturated(self, requested: str) -> APIError:
        wait = self.registry.load.seconds_to_room()
        return APIError(
            429,
            f"Every deployment of '{requested[:256]}' is at its requests, tokens or parallel calls "
            f"limit (rpm, tpm, max_parallel_requests); try again in {wait} s.",
            type="rate_limit_error",
            code="deployments_at_capacity",
            headers={"retry-after": str(wait)},
        )

    def _available(self, deps: list[Deployment]) -> list[Deployment]:
        ok = [d for d in deps if self.health.state(d.id) != "open"]
        return ok or deps

    def remember(self, plan: RoutePlan, dep: Deployment) -> None:
        """The conversation's prefix is now cached where ``dep`` served it (shared with the other
        replicas, off the request's path, when the prompt is long enough to be cached at all)."""
        if plan.prefix_key is None:
            return
        self._note(plan.prefix_key, dep.id)
        if self.shared is not None and plan.cacheable:
            task = asyncio.get_running_loop().create_task(self._share(plan.prefix_key.hex(), dep.id))
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)

    def _note(self, key: bytes, dep_id: str) -> None:
        self._affinity[key] = dep_id
        self._affinity.move_to_end(key)
        if len(self._affinity) > AFFINITY_MEMORY:
            self._affinity.popitem(last=False)

    async def _share(self, key: str, dep_id: str) -> None:
        try:
            await self.shared.affinity_set(key, dep_id, AFFINITY_TTL)  # type: ignore[union-attr]
        except Exception as exc:  # noqa: BLE001 - the next turn routes by price alone
            log.debug("affinity write failed: %s", type(exc).__name__)
            self.meter.metrics.state_errors.inc()
