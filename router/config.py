"""The configuration file: one YAML document, validated at start-up.

Deployments use LiteLLM's ``model_list`` shape so LiteLLM users can bring their file;
Switchyard's own sections (server, auth, storage, pricing, aliases) sit beside it. Secrets are
only ever references to environment variables (``os.environ/VAR``). Errors name the file, the
line, the field and what is wrong, and all of them are reported at once.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pricing.plans import Plan
from router.balancing import LITELLM_STRATEGIES

ENV_REF = re.compile(r"^os\.environ/([A-Za-z_][A-Za-z0-9_]*)$")
KEY_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
SECRET_HELP = "must be a reference to an environment variable, 'os.environ/VAR_NAME'; secrets never sit in the file"


def _secret_ref(v: Any) -> Any:
    if v is None:
        return v
    if not isinstance(v, str) or not ENV_REF.match(v):
        raise ValueError(SECRET_HELP)
    return v


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


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


class KeyConfig(_Strict):
    id: str
    tenant: str = Field(min_length=1)
    hash: str | None = Field(default=None, description="sha256$<salt-hex>$<digest-hex>, from `switchyard keys create`")
    key: str | None = Field(default=None, description="os.environ/VAR holding the key itself")
    models: list[str] | None = Field(
        default=None, description="allow-list of models and aliases; default: the tenant's"
    )
    revoked: bool = False
    tenant_admin: bool = Field(
        default=False,
        description="may issue, list, change, rotate and revoke its own "
        "tenant's keys over HTTP (POST /admin/keys...), within the tenant's models",
    )

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not KEY_ID.match(v):
            raise ValueError("must be 1-40 characters of a-z, 0-9 and '-', starting with a letter or digit")
        return v

    @field_validator("hash")
    @classmethod
    def _hash(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^sha256\$[0-9a-f]{16,64}\$[0-9a-f]{64}$", v):
            raise ValueError("must look like sha256$<salt-hex>$<64 hex digits> (see `switchyard keys create`)")
        return v

    _check_key = field_validator("key")(classmethod(lambda cls, v: _secret_ref(v)))


class TenantConfig(_Strict):
    id: str = Field(min_length=1)
    name: str | None = None
    models: list[str] | None = None
    plan: str | None = Field(default=None, description="a plan name from billing.plans; default: billing.default_plan")


class AuthConfig(_Strict):
    admin_key: str | None = None
    keys: list[KeyConfig] = Field(default_factory=list)
    tenants: list[TenantConfig] = Field(default_factory=list)

    _check_admin = field_validator("admin_key")(classmethod(lambda cls, v: _secret_ref(v)))


def access_groups(cfg: "Config") -> dict[str, list[str]]:
    """Each model access group and the model names in it."""
    out: dict[str, list[str]] = {}
    for d in cfg.model_list:
        for group in d.model_info.access_groups:
            if d.model_name not in out.setdefault(group, []):
                out[group].append(d.model_name)
    return out


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=4000, ge=1, le=65535)
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    max_messages: int = Field(default=4096, ge=1)
    max_tokens_limit: int = Field(default=1_000_000, ge=1, description="largest max_tokens a request may ask for")
    max_response_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    num_retries: int = Field(default=2, ge=0, le=10, description="other deployments tried after a retryable failure")
    cors_origins: list[str] = Field(default_factory=list)
    keepalive_timeout: float = Field(default=5.0, gt=0, description="seconds an idle client connection stays open")
    graceful_shutdown: float = Field(
        default=30.0, gt=0, description="seconds in-flight requests get to finish on SIGTERM"
    )
    body_timeout: float = Field(
        default=30.0, gt=0, description="seconds a client may take to send its request body (408)"
    )
    max_header_bytes: int = Field(
        default=32768, ge=1024, le=1048576, description="request line and headers, in bytes, before a 431"
    )
    max_headers: int = Field(default=100, ge=8, le=1000, description="headers in one request before a 431")
    header_timeout: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="seconds a request line and headers may take to arrive once started (408)",
    )
    max_incomplete_requests: int = Field(
        default=1024,
        ge=1,
        description="request heads read at once that came in more than one read, per process (503 beyond)",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="addresses or CIDRs (e.g. 10.0.0.0/8) of the "
        "reverse proxies whose X-Forwarded-For names the client; no other peer's is "
        "believed, loopback included",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        import ipaddress

        for n in v:
            try:
                ipaddress.ip_network(n, strict=False)
            except ValueError:
                raise ValueError(f"'{n}' is not an IP address or CIDR network") from None
        return v

    auth_failures_per_minute: int = Field(
        default=20, ge=1, description="failed authentications per client address before 429"
    )
    breaker_threshold: int = Field(default=5, ge=1, description="consecutive failures that open a deployment's circuit")
    breaker_cooldown: float = Field(default=10.0, gt=0, description="seconds a circuit stays open before a probe")
    routing_strategy: Literal["weighted", "least-busy", "latency", "usage"] = Field(
        default="weighted",
        description="which of a model's deployments leads a request: weighted (round robin by "
        "weight), least-busy (fewest calls in flight), latency (lowest smoothed latency), usage (fewest tokens this "
        "minute); LiteLLM's router_settings.routing_strategy maps here",
    )


class StorageConfig(_Strict):
    data_dir: str = Field(
        default=".switchyard", description="SQLite ledger, spill files; relative to the working directory"
    )
    database_url: str | None = Field(
        default=None, description="PostgreSQL for the ledger, e.g. os.environ/DATABASE_URL; default: SQLite in data_dir"
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis for limits and budgets across workers, e.g. os.environ/REDIS_URL; default: in memory",
    )
    ledger_flush_interval: float = Field(
        default=0.2, gt=0, le=10, description="seconds a ledger batch may wait; also what a hard kill can lose"
    )
    responses_retention_days: float = Field(
        default=30.0,
        ge=0,
        le=3650,
        description="days a Responses-API answer stored with store: true is kept "
        "for previous_response_id and GET /v1/responses/{id}; 0: never stored",
    )
    redis_timeout: float = Field(
        default=1.0,
        gt=0,
        le=30,
        description="seconds a Redis call may take before the "
        "gateway treats Redis as down (fail_mode decides what then); includes time the "
        "event loop is busy, so leave room on loaded hosts",
    )

    @field_validator("database_url", "redis_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is None or ENV_REF.match(v):
            return v
        if re.match(r"^[a-z0-9+]+://[^/@]*:[^/@]*@", v):
            raise ValueError("a URL with a password must come from the environment: os.environ/VAR_NAME")
        if not re.match(r"^(postgres|postgresql|sqlite|redis|rediss)(\+[a-z0-9]+)?://", v):
            raise ValueError("must be a postgresql://, sqlite://, redis:// or rediss:// URL, or os.environ/VAR_NAME")
        return v


class PricingConfig(_Strict):
    overrides: list[str] = Field(default_factory=list, description="extra price override files, applied in order")


class BillingConfig(_Strict):
    profile: str = Field(default="h200", description="stack profile used to attribute cost and margin")
    default_plan: str = "pass-through"
    plans: dict[str, Plan] = Field(default_factory=lambda: {"pass-through": Plan()})


class RateLimitRule(_Strict):
    scope: Literal["key", "tenant", "user", "tag"]
    id: str = Field(
        min_length=1,
        description="a key id, tenant id or user; for tag, key=value ('feature=search'); "
        "'*' (a tag: 'feature=*') applies to each one separately",
    )
    rpm: int | None = Field(default=None, ge=0, description="requests per minute")
    tpm: int | None = Field(default=None, ge=0, description="tokens per minute (prompt + max output at admission)")


class BudgetRule(_Strict):
    scope: Literal["key", "tenant", "alias", "user", "tag"]
    id: str = Field(
        min_length=1,
        description="a key id, tenant id, alias or user; for tag, key=value "
        "('feature=search'); '*' (a tag: 'feature=*') applies to each one separately",
    )
    period: Literal["day", "month"]
    usd: float = Field(gt=0, description="limit on the tenant charge in the period (UTC calendar)")
    soft: bool = Field(default=False, description="alert (log line and metric) instead of blocking")


class LimitsConfig(_Strict):
    fail_mode: Literal["open", "closed"] = Field(
        default="open", description="when Redis is unreachable: local limits, or 503"
    )
    default_max_tokens: int = Field(
        default=4096, ge=1, description="output bound assumed when a request and the catalog give none"
    )
    max_request_usd: float | None = Field(default=None, gt=0, description="per-request cap on the worst-case charge")
    prompt_safety: float = Field(default=1.25, ge=1.0, description="prompt-token estimate multiplier for reservations")
    reservation_lease: float = Field(
        default=120.0,
        gt=0,
        le=86400,
        description=(
            "seconds a budget reservation lives without its replica renewing it (renewed while the request runs); "
            "a killed replica's reservations return within this time"
        ),
    )
    reconcile_interval: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description=("seconds between reconciliations of each active budget with the ledger (one replica does each)"),
    )
    settled_horizon: float = Field(
        default=300.0,
        gt=0,
        le=86400,
        description=(
            "seconds after which a settlement the ledger does not hold is dropped (its record was lost, e.g. a "
            "killed replica's unwritten batch): the ledger is the truth"
        ),
    )
    fail_open_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description=(
            "with fail_mode open and Redis down: the share of each budget's remaining room one replica may spend "
            "on its own (set it to 1/replicas or less)"
        ),
    )
    rate_limits: list[RateLimitRule] = Field(default_factory=list)
    budgets: list[BudgetRule] = Field(default_factory=list)


class PoliciesConfig(_Strict):
    files: list[str] = Field(default_factory=list, description="policy YAML files")
    dirs: list[str] = Field(default_factory=list, description="directories whose *.yaml files are policies")
    builtin: bool = Field(
        default=False, description="also load the packaged default policies (router/defaults/policies)"
    )
    watch_interval: float = Field(
        default=2.0, ge=0, description="seconds between checks for changed files; 0: no watching"
    )


class CacheConfig(_Strict):
    models: list[str] = Field(default_factory=list, description="models and aliases whose requests are cached")
    keys: list[str] = Field(default_factory=list, description="key ids whose requests are cached")
    policies: list[str] = Field(default_factory=list, description="policies whose requests are cached")
    ttl: float = Field(default=3600.0, gt=0, le=30 * 86400, description="seconds an answer is kept")
    max_entries: int = Field(
        default=10_000,
        ge=1,
        description="answers kept in memory (the embedded default; with Redis, Redis's own maxmemory policy bounds it)",
    )
    max_entry_bytes: int = Field(default=256 * 1024, ge=1024, description="larger answers are not cached")
    shared_across_tenants: bool = Field(
        default=False,
        description="one tenant's request may be answered with "
        "another's cached answer (off: each tenant's cache is its own)",
    )


class WebhookConfig(_Strict):
    url: str = Field(description="where alerts are POSTed: an http(s) URL or os.environ/VAR")
    secret: str | None = Field(
        default=None,
        description="os.environ/VAR: the HMAC-SHA256 key that signs each body "
        "(x-switchyard-signature: v1=hex(hmac(secret, timestamp + '.' + body)))",
    )
    format: Literal["json", "slack"] = Field(
        default="json", description="json: the alert object; slack: {text: ...} for a Slack-compatible incoming webhook"
    )

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not ENV_REF.match(v) and not re.match(r"^https?://[^\s/]+", v):
            raise ValueError("must be an http:// or https:// URL, or os.environ/VAR_NAME")
        return v

    _check_secret = field_validator("secret")(classmethod(lambda cls, v: _secret_ref(v)))


class AlertsConfig(_Strict):
    thresholds: list[Annotated[int, Field(ge=1, le=1000)]] = Field(
        default_factory=lambda: [50, 80, 100],
        description="percent of each budget (hard and soft) that raises an "
        "alert, once per budget, threshold and period across all replicas",
    )
    forecast: bool = Field(
        default=True,
        description="also alert once per period when the run-rate forecast "
        "(spend so far x period / elapsed) exceeds the budget",
    )
    forecast_after: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="share of the period that must have passed "
        "before a forecast alert (a run-rate from the first minutes says little)",
    )
    webhooks: list[WebhookConfig] = Field(default_factory=list)
    retries: int = Field(
        default=5,
        ge=0,
        le=20,
        description="delivery attempts after the first; then the alert is "
        "dead-lettered (status dead in the alert history)",
    )
    backoff: float = Field(default=1.0, gt=0, le=600, description="seconds before the first retry, doubling after")
    timeout: float = Field(default=5.0, gt=0, le=60, description="seconds a webhook may take to answer")


class AttributionConfig(_Strict):
    tags: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]] = Field(
        default_factory=list,
        max_length=10,
        description="request metadata keys recorded as tags (e.g. feature, "
        "team, env), from the body's metadata or the x-switchyard-tags header (key=value,key=value)",
    )
    max_values: int = Field(
        default=10_000,
        ge=1,
        le=1_000_000,
        description="distinct users, and distinct values "
        "of each tag, recorded per tenant per UTC day; the rest are recorded as '(other)'",
    )


class TelemetryConfig(_Strict):
    enabled: bool | None = Field(
        default=None,
        description="OpenTelemetry traces and GenAI metrics over OTLP/HTTP "
        "(router.telemetry; needs switchyard[otel]); default: on when an endpoint is set here or "
        "OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set",
    )
    endpoint: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="the collector's OTLP/HTTP base URL "
        "(e.g. http://127.0.0.1:4318); default: the OTEL_EXPORTER_OTLP_* variables",
    )
    service_name: str = Field(default="switchyard", min_length=1, description="service.name (OTEL_SERVICE_NAME wins)")
    capture_content: bool = Field(
        default=False,
        description="put the request's messages on its span "
        "(gen_ai.input.messages); off: no prompt or answer is ever recorded",
    )


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


@dataclass(frozen=True)
class Problem:
    path: str
    line: int | None
    message: str


class ConfigError(Exception):
    def __init__(self, source: str, problems: list[Problem]):
        self.source = source
        self.problems = problems
        super().__init__(self.render())

    def render(self) -> str:
        lines = [f"{self.source}: {len(self.problems)} problem(s) in the configuration"]
        for p in self.problems:
            where = f"{self.source}:{p.line}" if p.line else self.source
            lines.append(f"  {where}: {p.path or '(top level)'}: {p.message}")
        return "\n".join(lines)


def _fmt_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line_index(node: yaml.Node | None) -> dict[tuple[Any, ...], int]:
    """Maps each path in the YAML document to its 1-based line."""
    index: dict[tuple[Any, ...], int] = {}

    def walk(n: yaml.Node, path: tuple[Any, ...]) -> None:
        index[path] = n.start_mark.line + 1
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                key = k.value
                index[path + (key,)] = k.start_mark.line + 1
                walk(v, path + (key,))
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                walk(v, path + (i,))

    if node is not None:
        walk(node, ())
    return index


def _line_for(index: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int | None:
    while loc:
        if loc in index:
            return index[loc]
        loc = loc[:-1]
    return index.get(())


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
    index = _line_index(node)
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            loc = tuple(err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = f"unknown field '{loc[-1]}'"
            problems.append(Problem(_fmt_path(loc), _line_for(index, loc), msg))
        raise ConfigError(source, problems) from None
    from router.config_checks import semantic_problems  # they read the registries and the stack profiles

    semantic = semantic_problems(cfg, env)
    if semantic:
        raise ConfigError(source, [Problem(_fmt_path(loc), _line_for(index, loc), msg) for loc, msg in semantic])
    return cfg


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(str(p), [Problem("", None, f"cannot read the file: {exc.strerror}")]) from None
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
