"""The config's sections beside the model list: auth (keys and tenants), server, storage, pricing, billing, limits,
policies, cache, alerts, attribution, telemetry; and what every section shares (strict models,
secrets only as ``os.environ/VAR`` references). ``router/config.py`` assembles them into ``Config``."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pricing.plans import Plan


ENV_REF = re.compile(r"^os\.environ/([A-Za-z_][A-Za-z0-9_]*)$")


SECRET_HELP = "must be a reference to an environment variable, 'os.environ/VAR_NAME'; secrets never sit in the file"


def _secret_ref(v: Any) -> Any:
    if v is None:
        return v
    if not isinstance(v, str) or not ENV_REF.match(v):
        raise ValueError(SECRET_HELP)
    return v


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
    redis_client: Literal["lean", "redis-py"] = Field(
        default="lean",
        description="how the request path's Redis calls (admission, settlement, affinity, answer cache, feedback, "
        "the cardinality bound) are made: lean (one pipelined connection, replies read by "
        "hiredis: about a quarter of redis-py's CPU per call; used where the URL is redis:// or rediss:// without "
        "query options) or redis-py (the library, which serves every other Redis call either way)",
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


KEY_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


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
