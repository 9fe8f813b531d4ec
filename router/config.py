"""The configuration file: one YAML document, validated at start-up.

Deployments use LiteLLM's ``model_list`` shape so LiteLLM users can bring their file;
Switchyard's own sections (server, auth, storage, pricing, aliases) sit beside it. Secrets are
only ever references to environment variables (``os.environ/VAR``). Errors name the file, the
line, the field and what is wrong, and all of them are reported at once.
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from router.balancing import LITELLM_STRATEGIES
from router.config_errors import ConfigError, Problem, field_path, line_for, line_index
from router.config_sections import (
    AuthConfig,
    ENV_REF,
    AlertsConfig,
    AttributionConfig,
    BillingConfig,
    CacheConfig,
    LimitsConfig,
    PoliciesConfig,
    PricingConfig,
    ServerConfig,
    StorageConfig,
    TelemetryConfig,
    _secret_ref,
    _Strict,
)


class LiteLLMParams(BaseModel):
    """How to reach one deployment. Extra keys are provider parameters (or simulated knobs)."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(
        min_length=1, description="provider/name, e.g. openai/gpt-4o, anthropic/claude-3-5-haiku, simulated/mid"
    )
    api_base: str | None = None
    api_key: str | None = None
    api_version: str | None = None
    timeout: float = Field(default=600.0, gt=0)
    stream_timeout: float | None = Field(default=None, gt=0)
    backend: str = Field(
        default="auto",
        description="the backend kind that calls this deployment: openai (OpenAI-"
        "compatible servers, called directly), litellm (any provider litellm speaks), simulated; auto: "
        "simulated for simulated/, openai for the OpenAI-compatible providers, litellm otherwise",
    )
    pass_through_fields: list[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]] = Field(
        default_factory=list,
        description="request fields beyond OpenAI's own that reach this deployment "
        "(e.g. top_k); everything else a client sends that the API does not define is dropped",
    )
    weight: float = Field(
        default=1.0,
        gt=0,
        le=1000,
        description="share of the model's traffic among its "
        "deployments (with routing_strategy weighted); default: its rpm, else its tpm, else 1, as LiteLLM's",
    )
    rpm: int | None = Field(
        default=None,
        ge=1,
        description="requests per minute this deployment takes (across replicas "
        "with Redis); at its limit it is skipped until the minute ends",
    )
    tpm: int | None = Field(default=None, ge=1, description="tokens per minute this deployment takes, as rpm")
    max_parallel_requests: int | None = Field(
        default=None,
        ge=1,
        description="calls in flight to this deployment from one replica; at the limit it is skipped",
    )
    order: int | None = Field(
        default=None,
        ge=0,
        description="priority among the model's deployments: the lowest "
        "order is balanced and tried first, higher orders only after it fails (LiteLLM's order); "
        "deployments without one come last",
    )
    native_apis: list[Literal["responses"]] | None = Field(
        default=None,
        description="client APIs this OpenAI-compatible server also speaks itself: a /v1/responses "
        "request routed here goes through as it came (default: [responses] for OpenAI's own API, none otherwise)",
    )
    transport: Literal["auto", "lean", "httpx"] = Field(
        default="auto",
        description="how OpenAI-compatible calls travel: lean (Switchyard's HTTP/1.1 pool, the fastest), "
        "httpx (HTTP/2 where offered); auto: httpx for https, lean for http",
    )
    ssl_verify: bool | str = Field(
        default=True,
        description="verify the upstream's TLS certificate: true (the system's "
        "CAs), a CA bundle file (PEM) to trust instead, or false (never in production)",
    )
    ssl_certificate: str | None = Field(
        default=None,
        description="a client certificate (PEM file, with its key unless "
        "ssl_key names one) presented to upstreams that ask for one (mutual TLS)",
    )
    ssl_key: str | None = Field(default=None, description="the client certificate's private key (PEM file)")

    _check_key = field_validator("api_key")(classmethod(lambda cls, v: _secret_ref(v)))

    @field_validator("api_base")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not ENV_REF.match(v) and not re.match(r"^https?://[^\s/]+", v):
            raise ValueError("must be an http:// or https:// URL, or os.environ/VAR_NAME")
        return v


class ModelInfo(BaseModel):
    """Optional facts about a deployment; prices here override the catalog for it."""

    model_config = ConfigDict(extra="allow")
    id: str | None = None
    access_groups: list[str] = Field(
        default_factory=list,
        description="LiteLLM's model access groups: a key or "
        "tenant whose models list names a group may use every model in it",
    )
    base_model: str | None = None
    mode: Literal["chat", "embedding"] | None = None
    input_cost_per_token: float | None = Field(default=None, ge=0)
    output_cost_per_token: float | None = Field(default=None, ge=0)
    cache_read_input_token_cost: float | None = Field(default=None, ge=0)
    cache_creation_input_token_cost: float | None = Field(default=None, ge=0)
    max_input_tokens: int | None = Field(default=None, gt=0)
    region: str | None = None
    self_hosted: bool | None = Field(
        default=None, description="served on the operator's own GPUs: cost built from GPU-hours"
    )
    model_class: str | None = Field(
        default=None, description="stack profile throughput class (default: by name and price)"
    )
    capabilities: list[Literal["tools", "json_schema", "vision"]] | None = Field(
        default=None, description="what the model supports; default: everything (constraints cannot exclude it)"
    )
    quality: float | None = Field(default=None, ge=0, le=1, description="quality prior for routing policies")
    reasoning_allowance: float | None = Field(
        default=None,
        ge=0,
        le=100,
        description=(
            "reasoning tokens the model may bill beyond the output bound, as a multiple of it: budgets reserve "
            "them and routing expects them (default 0; a simulated model: its reasoning_ratio)"
        ),
    )


class DeploymentConfig(_Strict):
    model_name: str = Field(
        min_length=1,
        description="the name clients send; 'prefix/*' (a wildcard, as LiteLLM's) "
        "serves every name under the prefix, its litellm_params.model ending in '*' too",
    )
    litellm_params: LiteLLMParams
    model_info: ModelInfo = Field(default_factory=ModelInfo)

    @model_validator(mode="after")
    def _wildcard(self) -> "DeploymentConfig":
        if "*" in self.model_name or "*" in self.litellm_params.model:
            if not (
                self.model_name.endswith("*")
                and self.litellm_params.model.endswith("*")
                and self.model_name.count("*") == 1
                and self.litellm_params.model.count("*") == 1
            ):
                raise ValueError(
                    "a wildcard deployment ends both model_name and litellm_params.model with one '*' "
                    "(e.g. model_name: openai/*, model: openai/*)"
                )
        return self


def access_groups(cfg: "Config") -> dict[str, list[str]]:
    """Each model access group and the model names in it."""
    out: dict[str, list[str]] = {}
    for d in cfg.model_list:
        for group in d.model_info.access_groups:
            if d.model_name not in out.setdefault(group, []):
                out[group].append(d.model_name)
    return out


class Config(_Strict):
    model_list: list[DeploymentConfig] = Field(min_length=1)
    aliases: dict[str, list[str]] = Field(default_factory=dict, description="alias -> model names, tried in order")
    server: ServerConfig = Field(default_factory=ServerConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    pricing: PricingConfig = Field(default_factory=PricingConfig)
    billing: BillingConfig = Field(default_factory=BillingConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    policies: PoliciesConfig = Field(default_factory=PoliciesConfig)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    attribution: AttributionConfig = Field(default_factory=AttributionConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    # Accepted so a LiteLLM proxy file loads; Switchyard honours router_settings.model_group_alias and
    # general_settings.master_key, and names every other setting as not honoured (ignored_litellm_settings).
    litellm_settings: dict[str, Any] | None = None
    general_settings: dict[str, Any] | None = None
    router_settings: dict[str, Any] | None = None
    fallbacks: dict[str, list[str]] = Field(
        default_factory=dict,
        description="model -> models tried, in order, when all of its deployments fail "
        "(a request's own fallbacks take their place); LiteLLM's fallbacks map here",
    )
    context_window_fallbacks: dict[str, list[str]] = Field(
        default_factory=dict,
        description="model -> larger-context models: a prompt that does not fit the model's "
        "context window goes to the first that fits it; LiteLLM's context_window_fallbacks map here",
    )

    @model_validator(mode="after")
    def _litellm_router(self) -> "Config":
        """LiteLLM's router settings, where the native ones are not set: fallbacks,
        context_window_fallbacks, num_retries, timeout, allowed_fails, cooldown_time and routing_strategy."""
        ll = {**(self.litellm_settings or {}), **(self.router_settings or {})}
        for name, target in (
            ("fallbacks", self.fallbacks),
            ("context_window_fallbacks", self.context_window_fallbacks),
        ):
            for entry in ll.get(name) or ():
                if not isinstance(entry, dict):
                    raise ValueError(
                        f"{name}: each entry maps a model to a list of models, e.g. {{gpt-4o: [gpt-4o-mini]}}"
                    )
                for model, others in entry.items():
                    target.setdefault(str(model), [others] if isinstance(others, str) else [str(o) for o in others])
        server = self.server
        for key, field_name in (
            ("num_retries", "num_retries"),
            ("allowed_fails", "breaker_threshold"),
            ("cooldown_time", "breaker_cooldown"),
        ):
            if key in ll and field_name not in server.model_fields_set:
                setattr(server, field_name, type(getattr(server, field_name))(ll[key]))
        strategy = LITELLM_STRATEGIES.get(str(ll.get("routing_strategy")))
        if strategy is not None and "routing_strategy" not in server.model_fields_set:
            server.routing_strategy = strategy  # type: ignore[assignment]
        timeout = ll.get("timeout", ll.get("request_timeout"))
        if timeout is not None:
            for d in self.model_list:
                if "timeout" not in d.litellm_params.model_fields_set:
                    d.litellm_params.timeout = float(timeout)
        return self

    @property
    def master_key(self) -> str | None:
        """LiteLLM's ``general_settings.master_key`` (an os.environ/ reference): the admin key unless
        ``auth.admin_key`` is set, and a key that may call every model (tenant ``default``)."""
        value = (self.general_settings or {}).get("master_key")
        return value if isinstance(value, str) and value else None


HONOURED_LITELLM = {
    "router_settings": {
        "model_group_alias",
        "fallbacks",
        "context_window_fallbacks",
        "num_retries",
        "timeout",
        "allowed_fails",
        "cooldown_time",
        "routing_strategy",
    },
    "litellm_settings": {"fallbacks", "context_window_fallbacks", "num_retries", "request_timeout"},
    "general_settings": {"master_key"},
}
# LiteLLM's per-deployment router fields: never sent to a provider, and named as not honoured
ROUTER_ONLY_PARAMS = frozenset({"tags"})


def ignored_litellm_settings(cfg: Config) -> list[str]:
    """The LiteLLM proxy settings in ``cfg`` that Switchyard does not act on, by name (said once at
    check-config and at start-up, never dropped silently)."""
    out = []
    for section in ("litellm_settings", "general_settings", "router_settings"):
        for key in getattr(cfg, section) or {}:
            if key not in HONOURED_LITELLM.get(section, set()):
                out.append(f"{section}.{key}")
            elif key == "routing_strategy" and str(cfg.router_settings[key]) not in LITELLM_STRATEGIES:  # type: ignore[index]
                out.append(f"{section}.{key}: {cfg.router_settings[key]}")  # type: ignore[index]
    for i, d in enumerate(cfg.model_list):
        out += [
            f"model_list[{i}].litellm_params.{k}"
            for k in sorted(ROUTER_ONLY_PARAMS & set(d.litellm_params.model_extra or {}))
        ]
    return out


def parse_config(text: str, source: str = "<config>", env: Mapping[str, str] | None = None) -> Config:
    """Validate a YAML document; raise ConfigError listing every problem found."""
    env = os.environ if env is None else env
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(
            source, [Problem("", mark.line + 1 if mark else None, f"not valid YAML: {getattr(exc, 'problem', exc)}")]
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(source, [Problem("", 1, "the file must be a YAML mapping with a model_list")])
    index = line_index(node)
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            loc = tuple(err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = f"unknown field '{loc[-1]}'"
            problems.append(Problem(field_path(loc), line_for(index, loc), msg))
        raise ConfigError(source, problems) from None
    from router.config_checks import semantic_problems  # they read the registries and the stack profiles

    semantic = semantic_problems(cfg, env)
    if semantic:
        raise ConfigError(source, [Problem(field_path(loc), line_for(index, loc), msg) for loc, msg in semantic])
    return cfg


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(p), [Problem("", None, f"cannot read the file: {exc.strerror}")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(p), [Problem("", None, f"not UTF-8 text (byte {exc.start})")]) from None
    return parse_config(text, str(p), env)


def embedded_default() -> Config:
    """The no-config default: simulated providers only, loopback, no keys needed from anyone."""
    text = resources.files("router.defaults").joinpath("embedded.yaml").read_text()
    return parse_config(text, "<embedded default>", env={})


def resolve_env(ref: str | None, env: Mapping[str, str] | None = None, *, literal_ok: bool = False) -> str | None:
    """The value behind an ``os.environ/VAR`` reference (or the literal, where one is allowed)."""
    if ref is None:
        return None
    m = ENV_REF.match(ref)
    if not m:
        if literal_ok:
            return ref
        raise ValueError("not an environment reference")  # validated earlier; never echo the value
    return (os.environ if env is None else env).get(m.group(1))
