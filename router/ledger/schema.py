"""The ledger tables (SQLAlchemy Core), how a meter record becomes a row, and how a row read back
is typed (tokens as integers, money as floats, JSON columns decoded)."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Boolean, Column, Float, Index, Integer, MetaData, String, Table, Text, case

metadata = MetaData()

# The stack slices, in pricing.attribution.SLICES order, as ledger columns.
SLICE_COLUMNS = {
    "application_margin": "app_margin_usd",
    "paas_margin": "paas_margin_usd",
    "model_lab": "model_lab_usd",
    "iaas_margin": "iaas_margin_usd",
    "electricity": "electricity_usd",
    "colocation": "colocation_usd",
    "other_capex": "other_capex_usd",
    "chip_vendor_cost": "chip_cost_usd",
    "chip_vendor_margin": "chip_margin_usd",
}

# API cost lines (pricing.catalog.cost_of) as ledger columns.
LINE_COLUMNS = {
    "input": "cost_input_usd",
    "cached_input": "cost_cached_input_usd",
    "cache_write": "cost_cache_write_usd",
    "output": "cost_output_usd",
    "reasoning": "cost_reasoning_usd",
}

requests = Table(
    "requests",
    metadata,
    Column("request_id", String(64), primary_key=True),
    Column("ts", Float, nullable=False),  # start, UNIX seconds (portable bucketing in SQLite and PostgreSQL)
    Column("tenant", String(128)),
    Column("key_id", String(64)),
    Column("endpoint", String(32), nullable=False),
    Column("alias", String(256)),  # the model name the client asked for
    Column("policy", String(128)),
    Column("rule", String(64)),  # the policy rule that picked the model (objective type, cascade, constraints)
    Column("category", String(32)),  # the request category the policy saw
    Column("decision", Text),  # JSON: candidates, reasons, fallbacks
    Column("model", String(256)),
    Column("deployment", String(256)),
    Column("provider", String(64)),
    Column("stream", Boolean, nullable=False, default=False),
    Column("status", Integer, nullable=False),
    Column("error", String(64)),
    Column("attempts", Text),  # JSON list
    Column("fallbacks", Integer, nullable=False, default=0),
    Column("prompt_tokens", Integer, nullable=False, default=0),
    Column("completion_tokens", Integer, nullable=False, default=0),
    Column("cached_tokens", Integer, nullable=False, default=0),
    Column("cache_write_tokens", Integer, nullable=False, default=0),
    Column("reasoning_tokens", Integer, nullable=False, default=0),
    Column("usage_source", String(16)),
    Column("latency_s", Float),
    Column("ttft_s", Float),
    Column("upstream_s", Float),
    Column("overhead_s", Float),
    Column("price_version", String(128)),
    Column("cost_usd", Float),  # API cost at list price; NULL: unpriced
    Column("charge_usd", Float),  # the tenant's charge; NULL: unpriced
    Column("serving", String(16)),
    Column("model_class", String(32)),
    Column("gpu_hours", Float),
    *[Column(col, Float) for col in SLICE_COLUMNS.values()],
    *[Column(col, Float) for col in LINE_COLUMNS.values()],
    Column(
        "end_user", String(128)
    ),  # the request's user (bounded per tenant and day: router/accounting/attribution.py)
    Column("tags", Text),  # JSON object: the request's tags, tag key -> value (bounded likewise)
    Column("cache", String(8)),  # 'hit': answered from the response cache (no upstream call, no cost or charge)
    Column("saved_usd", Float),  # a cache hit: the API cost of the answer it replayed
    # (ts, charge, id) and (tenant, ts, charge, id) cover the top-cost queries: the costliest
    # requests in a range are found in the index without reading the wide rows.
    Index("ix_requests_ts_charge", "ts", "charge_usd", "request_id"),
    Index("ix_requests_tenant_ts_charge", "tenant", "ts", "charge_usd", "request_id"),
    Index("ix_requests_model_ts", "model", "ts"),
    Index("ix_requests_alias_ts", "alias", "ts"),
    Index("ix_requests_user_ts", "end_user", "ts"),
)

# A request's cost lines, one per priced upstream call, when it made several (a cascade's steps and
# checks, a call cut off when the client left after another had answered): each at its own model,
# deployment and price. A request with one priced call is its own line (its row in ``requests``), so
# the common case writes one row. The request's row is the sum of its lines (migration 0005).
ROLES = ("answer", "cascade_step", "check", "cut")
calls = Table(
    "calls",
    metadata,
    Column("request_id", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True),  # the order the calls were made in
    Column("ts", Float, nullable=False),  # the request's start (a line is dated with its request)
    Column("tenant", String(128)),
    Column("key_id", String(64)),
    Column("alias", String(256)),
    Column("role", String(16), nullable=False),  # ROLES
    Column("model", String(256)),
    Column("deployment", String(256)),
    Column("provider", String(64)),
    Column("prompt_tokens", Integer, nullable=False, default=0),
    Column("completion_tokens", Integer, nullable=False, default=0),
    Column("cached_tokens", Integer, nullable=False, default=0),
    Column("cache_write_tokens", Integer, nullable=False, default=0),
    Column("reasoning_tokens", Integer, nullable=False, default=0),
    Column("usage_source", String(16)),
    Column("price_version", String(128)),
    Column("cost_usd", Float),
    Column("charge_usd", Float),
    Column("serving", String(16)),
    Column("model_class", String(32)),
    Column("gpu_hours", Float),
    *[Column(col, Float) for col in SLICE_COLUMNS.values()],
    *[Column(col, Float) for col in LINE_COLUMNS.values()],
    Index("ix_calls_ts", "ts"),
)

# Stored Responses-API answers (``store: true``), so a conversation can continue by
# ``previous_response_id``; tenant-scoped, kept until ``expires_at`` (storage.responses_retention_days).
responses = Table(
    "responses",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("tenant", String(128), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("response", Text, nullable=False),  # JSON: the Response object as the client got it
    Column("conversation", Text, nullable=False),  # JSON: the chat messages a continuation starts from
    Index("ix_responses_expires", "expires_at"),
)

# Virtual keys issued over HTTP (POST /admin/keys): every replica reads them (router/ledger/keys.py);
# only the salted hash of a secret is kept. Config-file keys live beside them, in the config.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant", String(128), nullable=False),
    Column("name", String(128)),
    Column("hash", String(200), nullable=False),
    Column("previous_hash", String(200)),  # a rotated key's old secret, valid until previous_until
    Column("previous_until", Float),
    Column("models", Text),  # JSON list; NULL: the tenant's models
    Column("rpm", Integer),
    Column("tpm", Integer),
    Column("budget_usd", Float),
    Column("budget_period", String(8)),  # day | month
    Column("budget_soft", Boolean, nullable=False, default=False),
    Column("expires_at", Float),
    Column("metadata", Text),  # JSON object
    Column("revoked", Boolean, nullable=False, default=False),
    Column("tenant_admin", Boolean, nullable=False, default=False),  # may manage its own tenant's keys
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_api_keys_updated", "updated_at"),
)

# Who did what to the gateway: keys created, changed, rotated, revoked; prices, policies and keys reloaded.
audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),
    Column("actor", String(64), nullable=False),  # the key id that acted ("admin": the admin key)
    Column("action", String(64), nullable=False),
    Column("target", String(128)),
    Column("detail", Text),  # JSON
    Index("ix_audit_ts", "ts"),
)

# Budget alerts raised (router/accounting/alerts.py) and their delivery: sent, or dead-lettered after its retries.
alerts = Table(
    "alerts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("ts", Float, nullable=False),
    Column("kind", String(16), nullable=False),  # threshold | forecast | test
    Column("budget", String(300), nullable=False),
    Column("threshold", Integer),
    Column("payload", Text, nullable=False),
    Column("status", String(16), nullable=False),  # pending | sent | dead
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", String(300)),
    Column("updated_at", Float, nullable=False),
    Index("ix_alerts_ts", "ts"),
)

PROMPT_SIZES = (256, 1024, 4096, 16384, 65536, 1048576)


DIMENSIONS = {
    "tenant": requests.c.tenant,
    "key": requests.c.key_id,
    "alias": requests.c.alias,
    "user": requests.c.end_user,
    "model": requests.c.model,
    "provider": requests.c.provider,
    "status": requests.c.status,
    "policy": requests.c.policy,
    "rule": requests.c.rule,
    "category": requests.c.category,
    "endpoint": requests.c.endpoint,
    # prompt size class: the upper bound of the request's prompt tokens (what-if replays group by it)
    "prompt_size": case(*[(requests.c.prompt_tokens < b, b) for b in PROMPT_SIZES[:-1]], else_=PROMPT_SIZES[-1]),
}
PROMPT_SIZE_MIDPOINTS = {256: 128, 1024: 640, 4096: 2560, 16384: 10240, 65536: 40960, 1048576: 100000}


def _money_columns(rec: dict[str, Any]) -> dict[str, Any]:
    """The token and money columns of a record or of one of its lines (the same fields in both)."""
    usage = rec.get("usage") or {}
    stack = rec.get("stack") or {}
    slices = stack.get("slices") or {}
    row = {
        "prompt_tokens": usage.get("prompt_tokens", 0),
        "completion_tokens": usage.get("completion_tokens", 0),
        "cached_tokens": usage.get("cached_tokens", 0),
        "cache_write_tokens": usage.get("cache_write_tokens", 0),
        "reasoning_tokens": usage.get("reasoning_tokens", 0),
        "usage_source": rec.get("usage_source"),
        "price_version": rec.get("price_version"),
        "cost_usd": rec.get("cost_usd"),
        "charge_usd": rec.get("charge_usd"),
        "serving": stack.get("serving"),
        "model_class": stack.get("model_class"),
        "gpu_hours": stack.get("gpu_hours"),
    }
    for name, col in SLICE_COLUMNS.items():
        row[col] = slices.get(name)
    lines = rec.get("cost_lines") or {}
    for name, col in LINE_COLUMNS.items():
        row[col] = lines.get(name)
    return row


def to_row(rec: dict[str, Any]) -> dict[str, Any]:
    """A record as its ``requests`` row; its lines (when it has several) ride along under ``_calls``."""
    latency, upstream = rec.get("latency_s"), rec.get("upstream_s")
    decision = rec.get("decision") or {}
    row = {
        "request_id": rec["request_id"],
        "ts": rec["ts"],
        "tenant": rec.get("tenant"),
        "key_id": rec.get("key_id"),
        "endpoint": rec["endpoint"],
        "alias": rec.get("requested_model"),
        "policy": rec.get("policy"),
        "rule": str(decision["rule"]).split("(")[0][:64] if decision.get("rule") else None,
        "category": str(decision["category"])[:32] if decision.get("category") else None,
        "decision": orjson.dumps(rec["decision"]).decode() if rec.get("decision") is not None else None,
        "model": rec.get("model"),
        "deployment": rec.get("deployment"),
        "provider": rec.get("provider"),
        "stream": bool(rec.get("stream")),
        "status": rec["status"],
        "error": rec.get("error"),
        "attempts": orjson.dumps(rec.get("attempts") or []).decode(),
        # attempts that failed before another was made; a cascade's escalations and checks are not fallbacks
        "fallbacks": sum(1 for a in (rec.get("attempts") or [])[:-1] if a.get("error")),
        "latency_s": latency,
        "ttft_s": rec.get("ttft_s"),
        "upstream_s": upstream,
        "overhead_s": None if latency is None or upstream is None else max(0.0, latency - upstream),
        "end_user": rec.get("user"),
        "cache": rec.get("cache"),
        "saved_usd": rec.get("saved_usd"),
        "tags": orjson.dumps(rec["tags"], option=orjson.OPT_SORT_KEYS).decode() if rec.get("tags") else None,
        **_money_columns(rec),
    }
    if rec.get("lines"):
        row["_calls"] = [
            {
                "request_id": row["request_id"],
                "seq": i,
                "ts": row["ts"],
                "tenant": row["tenant"],
                "key_id": row["key_id"],
                "alias": row["alias"],
                "role": line["role"],
                "model": line.get("model"),
                "deployment": line.get("deployment"),
                "provider": line.get("provider"),
                **_money_columns(line),
            }
            for i, line in enumerate(rec["lines"])
        ]
    return row


# Roll-ups of the ledger by hour and by UTC day, kept by an insert trigger (migration 0004):
# the usage API reads whole days from ``usage_daily``, whole hours at a range's edges from
# ``usage_hourly``, and only the partial hours at the very edges from ``requests``, so a query
# over a month of traffic reads thousands of narrow rows, not a million wide ones.
# Text dimensions store '' for NULL so the unique key (and the upsert on it) sees them as equal.
ROLLUP_DIMS = {
    "tenant": "tenant",
    "key": "key_id",
    "alias": "alias",
    "model": "model",
    "provider": "provider",
    "status": "status",
    "policy": "policy",
    "rule": "rule",
    "category": "category",
    "endpoint": "endpoint",
    "prompt_size": "prompt_size",
}
ROLLUP_COUNTS = ("requests", "errors", "unpriced", "estimated", "fallbacks", "unpriced_tokens")  # (migration 0006)
ROLLUP_TOKENS = ("prompt_tokens", "completion_tokens", "cached_tokens", "cache_write_tokens", "reasoning_tokens")
ROLLUP_MONEY = ("cost_usd", "charge_usd", *SLICE_COLUMNS.values(), "gpu_hours", "latency_s_sum")


def _rollup_table(name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("t", Float, nullable=False),  # period start, UNIX seconds
        *[
            Column(col, Integer if col in ("status", "prompt_size") else String(256), nullable=False)
            for col in ROLLUP_DIMS.values()
        ],
        *[Column(col, Integer, nullable=False) for col in (*ROLLUP_COUNTS, *ROLLUP_TOKENS)],
        *[Column(col, Float, nullable=False) for col in ROLLUP_MONEY],
        Column("latency_s_max", Float, nullable=False),
        Index(f"ux_{name}", "t", *ROLLUP_DIMS.values(), unique=True),
    )


usage_hourly = _rollup_table("usage_hourly")
usage_daily = _rollup_table("usage_daily")
ROLLUPS = ((86400, usage_daily), (3600, usage_hourly))  # coarsest first


def decode_row(row: dict[str, Any]) -> dict[str, Any]:
    row = {str(k): v for k, v in row.items()}
    for key in ("decision", "attempts", "tags"):
        if isinstance(row.get(key), str):
            row[key] = orjson.loads(row[key])
    return row


TOKEN_COLUMNS = ("prompt_tokens", "completion_tokens", "cached_tokens", "cache_write_tokens", "reasoning_tokens")


MONEY_COLUMNS = ("cost_usd", "charge_usd", *SLICE_COLUMNS.values())


def clean_row(row: dict[str, Any]) -> dict[str, Any]:
    row = {str(k): v for k, v in row.items()}  # plain str keys (SQLAlchemy may hand back str subclasses)
    for k, v in row.items():
        if k in TOKEN_COLUMNS or k in (
            "requests",
            "errors",
            "unpriced",
            "estimated",
            "status",
            "fallbacks",
            "prompt_size",
            "unpriced_tokens",
        ):
            row[k] = int(v or 0)
        elif k in MONEY_COLUMNS or k in ("bucket", "gpu_hours", "latency_s_sum", "latency_s_max"):
            row[k] = float(v or 0.0)
    return row
