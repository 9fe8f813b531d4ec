"""Deployments built from the config: which backend serves each model name, at what price,
and the order in which a model name or alias tries its deployments."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from pricing import ModelPrice, PriceCatalog
from pricing.catalog import price_from_litellm_entry
from router.backends.base import Backend
from router.balancing import BALANCERS, Balancer, Load
from router.backends.kind import BACKENDS, BuildContext
from router.backends.litellm_backend import LiteLLMKind
from router.backends.openai_compat import OpenAIKind
from router.backends.simulated import SimulatedKind
from router.config import ROUTER_ONLY_PARAMS, Config, DeploymentConfig, LiteLLMParams
from router.tokens import Tokenizer

# the built-in backend kinds, in the order `backend: auto` asks whether they serve a provider
# (litellm: what none of them claims)
for _kind in (SimulatedKind(), OpenAIKind(), LiteLLMKind()):
    BACKENDS.register(_kind)

_PARAM_FIELDS = {
    "model",
    "api_base",
    "api_key",
    "api_version",
    "timeout",
    "stream_timeout",
    "backend",
    "transport",
    "pass_through_fields",
    "weight",
    "native_apis",
    "rpm",
    "tpm",
    "max_parallel_requests",
    "order",
}


@dataclass
class Deployment:
    id: str
    model_name: str
    provider: str
    upstream_model: str
    backend: Backend
    mode: str
    timeout: float
    stream_timeout: float
    price_key: str | None
    fixed_price: ModelPrice | None = None
    region: str | None = None
    self_hosted: bool = False
    model_class: str | None = None
    capabilities: frozenset[str] = frozenset({"tools", "json_schema", "vision"})
    context_window: int | None = None
    quality: float | None = None
    info: dict[str, Any] = field(default_factory=dict)
    pass_through: frozenset[str] = frozenset()  # request fields beyond the API's own that reach it
    weight: float = 1.0  # share of its model's traffic (routing_strategy weighted)
    rpm: int | None = None  # requests per minute it takes (router.balancing)
    tpm: int | None = None  # tokens per minute it takes
    max_parallel: int | None = None  # calls in flight from one replica
    order: int | None = None  # priority among its model's deployments (lowest first; None last)
    reasoning_allowance: float = 0.0  # reasoning tokens billed beyond the output bound, per output token

    def price(self, catalog: PriceCatalog, at: datetime | None = None) -> ModelPrice | None:
        if self.fixed_price is not None:
            return self.fixed_price
        return catalog.price(self.price_key, at or datetime.now(timezone.utc)) if self.price_key else None


def _limited(d: Deployment) -> bool:
    return d.rpm is not None or d.tpm is not None or d.max_parallel is not None


def tls_context(p: LiteLLMParams, i: int) -> ssl.SSLContext | None:
    """The deployment's TLS settings as an SSL context (None: the system's defaults)."""
    if p.ssl_verify is True and p.ssl_certificate is None:
        return None
    try:
        if p.ssl_verify is False:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        else:
            ctx = ssl.create_default_context(cafile=p.ssl_verify if isinstance(p.ssl_verify, str) else None)
        if p.ssl_certificate is not None:
            ctx.load_cert_chain(p.ssl_certificate, p.ssl_key)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(
            f"model_list[{i}]: TLS settings (ssl_verify, ssl_certificate, ssl_key): "
            f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}"
        ) from None
    return ctx


def split_model(model: str) -> tuple[str, str]:
    provider, sep, name = model.partition("/")
    return (provider, name) if sep else ("openai", model)


MAX_WILDCARD_NAMES = 1000  # distinct names one gateway serves through wildcard deployments


class Registry:
    def __init__(
        self,
        deployments: list[Deployment],
        aliases: dict[str, list[str]],
        wildcards: list[tuple[str, Callable[[str], Deployment]]] | None = None,
        strategy: str = "weighted",
    ):
        self.deployments = deployments
        self.aliases = aliases
        self._by_name: dict[str, list[Deployment]] = {}
        for d in deployments:
            self._by_name.setdefault(d.model_name, []).append(d)
        self.load = Load()  # what the balancer reads: calls in flight, latency, this minute's usage
        self.balancer: Balancer = BALANCERS[strategy](self.load)
        self.limited = any(_limited(d) for d in deployments)
        # wildcard deployments ('openai/*'): (name prefix, builder of the deployment for one name); a name is
        # built the first time a request asks for it, then served like any configured model
        self._wildcards = wildcards or []
        self._wild_names = 0

    def _materialize(self, name: str) -> bool:
        """Whether ``name`` matches a wildcard deployment (building its deployments on first use)."""
        if not self._wildcards or "*" in name:
            return False
        built = [make(name) for prefix, make in self._wildcards if name.startswith(prefix) and len(name) > len(prefix)]
        if not built or self._wild_names >= MAX_WILDCARD_NAMES:
            return False
        self._wild_names += 1
        self.deployments.extend(built)
        self._by_name[name] = built
        self.limited = self.limited or any(_limited(d) for d in built)
        return True

    @classmethod
    def build(
        cls, cfg: Config, catalog: PriceCatalog, tokenizer: Tokenizer, resolve: Callable[[str | None], str | None]
    ) -> "Registry":
        deps, wildcards = [], []
        for i, dc in enumerate(cfg.model_list):
            if dc.model_name.endswith("*"):
                wildcards.append((dc.model_name[:-1], _wildcard_builder(i, dc, cfg, catalog, tokenizer, resolve)))
                continue
            deps.append(_build_deployment(i, dc, cfg, catalog, tokenizer, resolve))
        litellm_aliases = (cfg.router_settings or {}).get("model_group_alias") or {}
        aliases = {a: [t] if isinstance(t, str) else list(t) for a, t in litellm_aliases.items()}
        aliases.update(cfg.aliases)
        reg = cls(deps, aliases, wildcards, cfg.server.routing_strategy)
        p = [dc.litellm_params for dc in cfg.model_list if dc.model_name.endswith("*")]
        reg.limited = reg.limited or any(x.rpm or x.tpm or x.max_parallel_requests for x in p)
        return reg

    def by_id(self, dep_id: str) -> Deployment | None:
        return next((d for d in self.deployments if d.id == dep_id), None)

    def names(self) -> list[str]:
        return list(self._by_name) + [a for a in self.aliases if a not in self._by_name]

    def knows(self, name: str) -> bool:
        return name in self._by_name or name in self.aliases or self._materialize(name)

    def candidates(self, name: str, mode: str) -> list[Deployment]:
        """Deployments of a model or alias, in configured order (a look-up: nothing rotates)."""
        out: list[Deployment] = []
        for model_name in self.aliases.get(name, [name]):
            if model_name not in self._by_name:
                self._materialize(model_name)
            out.extend(d for d in self._by_name.get(model_name, ()) if d.mode == mode)
        return out

    def route(self, name: str, mode: str) -> list[Deployment]:
        """Deployments to try for one request, in order: for each model, those with room (under their
        rpm, tpm and max_parallel_requests), the lowest ``order`` first and ordered by the balancer
        (``server.routing_strategy``), the other orders after them as fallbacks. Call it once per request."""
        out: list[Deployment] = []
        load = self.load
        for model_name in self.aliases.get(name, [name]):
            if model_name not in self._by_name:
                self._materialize(model_name)
            group = [d for d in self._by_name.get(model_name, ()) if d.mode == mode and load.has_room(d)]
            if len(group) > 1 and any(d.order is not None for d in group):
                group.sort(key=lambda d: (d.order is None, d.order or 0))
                first = [d for d in group if d.order == group[0].order]
                out.extend(self.balancer.order(model_name, first))
                out.extend(group[len(first) :])
            else:
                out.extend(self.balancer.order(model_name, group))
        return out

    def describe(self, d: Deployment, breaker: str) -> dict[str, Any]:
        """One deployment's live state for operators (GET /admin/deployments): its limits and load."""
        requests, tokens = self.load.used(d.id)
        latency = self.load.latency.get(d.id)
        return {
            "id": d.id,
            "model": d.model_name,
            "provider": d.provider,
            "mode": d.mode,
            "weight": d.weight,
            "order": d.order,
            "rpm": d.rpm,
            "tpm": d.tpm,
            "max_parallel_requests": d.max_parallel,
            "in_flight": self.load.in_flight.get(d.id, 0),
            "latency_s": round(latency, 6) if latency else None,
            "minute": {"requests": requests, "tokens": tokens},
            "has_room": self.load.has_room(d),
            "breaker": breaker,
        }

    async def aclose(self) -> None:
        for d in self.deployments:
            await d.backend.aclose()


def _wildcard_builder(
    i: int,
    dc: DeploymentConfig,
    cfg: Config,
    catalog: PriceCatalog,
    tokenizer: Tokenizer,
    resolve: Callable[[str | None], str | None],
) -> Callable[[str], Deployment]:
    """Builds the deployment a wildcard serves one name with: the name's suffix after the wildcard's
    prefix is the upstream model's (model_name 'openai/*', model 'openai/*': 'openai/gpt-4o' is
    'openai/gpt-4o' upstream, priced at the catalog's price for it)."""
    prefix, upstream = dc.model_name[:-1], dc.litellm_params.model[:-1]

    def build(name: str) -> Deployment:
        params = dc.litellm_params.model_copy(update={"model": upstream + name[len(prefix) :]})
        one = dc.model_copy(update={"model_name": name, "litellm_params": params})
        dep = _build_deployment(i, one, cfg, catalog, tokenizer, resolve)
        dep.id = f"{name}#{i}"
        return dep

    return build


def _build_deployment(
    i: int,
    dc: DeploymentConfig,
    cfg: Config,
    catalog: PriceCatalog,
    tokenizer: Tokenizer,
    resolve: Callable[[str | None], str | None],
) -> Deployment:
    p = dc.litellm_params
    provider, name = split_model(p.model)
    extra = {k: v for k, v in (p.model_extra or {}).items() if k not in _PARAM_FIELDS and k not in ROUTER_ONLY_PARAMS}
    try:
        kind = BACKENDS.choose(p.backend, provider)
    except KeyError:
        raise ValueError(f"model_list[{i}]: backend '{p.backend}' is not one of {', '.join(BACKENDS.names)}") from None
    built = kind.build(
        BuildContext(
            i,
            provider,
            name,
            p,
            extra,
            cfg,
            catalog,
            tokenizer,
            resolve,
            dc.model_info.base_model,
            lambda: tls_context(p, i),
        )
    )
    backend, price_key = built.backend, built.price_key
    mi = dc.model_info

    def fact(key: str, default: Any = None) -> Any:  # the config's value, else what the backend knows, else the default
        own = getattr(mi, key)
        if own is not None:
            return own
        return built.facts.get(key, default)

    mode, region, self_hosted, caps = (
        fact("mode", "chat"),
        fact("region"),
        bool(fact("self_hosted", False)),
        fact("capabilities"),
    )
    context, quality, reasoning = fact("max_input_tokens"), fact("quality"), fact("reasoning_allowance")
    info = dc.model_info.model_dump(exclude_none=True)
    if context is None and price_key:
        listed = catalog.price(price_key, datetime.now(timezone.utc))
        context = listed.max_input_tokens if listed is not None else None
    fixed = (
        price_from_litellm_entry(info, source=f"config:{dc.model_name}")
        if (dc.model_info.input_cost_per_token is not None or dc.model_info.output_cost_per_token is not None)
        else None
    )
    return Deployment(
        id=dc.model_info.id or f"{dc.model_name}#{i}",
        model_name=dc.model_name,
        provider=provider,
        upstream_model=name,
        backend=backend,
        mode=mode,
        timeout=p.timeout,
        stream_timeout=p.stream_timeout or p.timeout,
        price_key=price_key,
        fixed_price=fixed,
        region=region,
        self_hosted=self_hosted,
        model_class=dc.model_info.model_class,
        capabilities=frozenset(caps) if caps is not None else Deployment.capabilities,
        context_window=context,
        quality=quality,
        info=info,
        pass_through=frozenset(p.pass_through_fields),
        weight=p.weight if "weight" in p.model_fields_set else float(p.rpm or p.tpm or 1),
        rpm=p.rpm,
        tpm=p.tpm,
        max_parallel=p.max_parallel_requests,
        order=p.order,
        reasoning_allowance=reasoning or 0.0,
    )
