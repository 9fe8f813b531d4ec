"""The gateway's services built from a config: prices, keys, deployments, shared state, ledger,
limiter, policies and the gateway itself, wired into one ``Services`` (router/services.py)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Mapping

from pricing import PriceCatalog
from pricing import loaders as pricing_data
from router.accounting.alerts import Alerter
from router.accounting.attribution import Attribution, rule_values
from router.cache import ResponseCache
from router.config import Config, resolve_env
from router.ledger.conversations import ResponseStore
from router.ledger.keys import KeyTable
from router.ledger.store import LedgerStore, redact_url, sqlite_url
from router.ledger.writer import LedgerWriter
from router.accounting.limits import Limiter
from router.accounting.metering import Billing, Meter, RecordSink
from router.metrics import Metrics
from router.health import Health
from router.planning import Planner
from router.policy_store import PolicyStore
from router.proxy import Gateway
from router.registry import Registry
from router.accounting.redis_state import RedisState
from router.accounting.state import MemoryState, StateStore
from router.telemetry import build_telemetry
from router.tokens import Tokenizer
from router.keyring import build_keys
from router.services import Services, load_catalog

log = logging.getLogger("switchyard")


def build_services(
    cfg: Config,
    *,
    env: Mapping[str, str] | None = None,
    sink: RecordSink | None = None,
    catalog: PriceCatalog | None = None,
) -> Services:
    """``sink`` replaces the ledger (tests and the demo keep records in memory)."""
    env = os.environ if env is None else env

    def resolve(ref: str | None) -> str | None:
        return resolve_env(ref, env)

    tokenizer = Tokenizer()
    catalog = catalog or load_catalog(cfg)
    registry = Registry.build(cfg, catalog, tokenizer, resolve)
    keys = build_keys(cfg, env)
    metrics = Metrics()
    plans = cfg.billing.plans
    billing = Billing(
        profile=pricing_data.load_profiles()[cfg.billing.profile],
        default_plan=plans[cfg.billing.default_plan],
        tenant_plans={t.id: plans[t.plan] for t in cfg.auth.tenants if t.plan},
    )

    store = writer = None
    if sink is None:
        db_url = resolve_env(cfg.storage.database_url, env, literal_ok=True) or sqlite_url(cfg.storage.data_dir)
        store = LedgerStore(db_url)
        log.info("ledger: %s", redact_url(store.url))
        writer = LedgerWriter(
            store, Path(cfg.storage.data_dir) / "spill", metrics, flush_interval=cfg.storage.ledger_flush_interval
        )
        sink = writer
    redis_url = resolve_env(cfg.storage.redis_url, env, literal_ok=True)
    state: StateStore = (
        RedisState(redis_url, timeout=cfg.storage.redis_timeout, client=cfg.storage.redis_client)
        if redis_url
        else MemoryState()
    )
    limiter = Limiter(
        cfg.limits, state, metrics, ledger=store, writer=writer, flush_interval=cfg.storage.ledger_flush_interval
    )
    limiter.alerter = Alerter(cfg.alerts, state, store, metrics, resolve)
    meter = Meter(catalog, tokenizer, metrics, sink, billing)
    policies = PolicyStore(cfg.policies, registry)
    ok, problems = policies.reload()
    if not ok:
        raise PolicyStartupError(problems)
    health = Health(threshold=cfg.server.breaker_threshold, cooldown=cfg.server.breaker_cooldown)
    planner = Planner(
        registry,
        policies,
        health,
        meter,
        cfg.server.num_retries,
        shared=state if state.shared else None,
        fallbacks=cfg.fallbacks,
        context_fallbacks=cfg.context_window_fallbacks,
    )
    exempt = rule_values(cfg.limits.budgets, cfg.limits.rate_limits)
    gateway = Gateway(
        planner,
        meter,
        limiter,
        health,
        build_telemetry(cfg.telemetry, env),
        Attribution(cfg.attribution, state, exempt),
        ResponseCache(cfg.cache, state),
    )
    responses = ResponseStore(store, cfg.storage.responses_retention_days * 86400) if store is not None else None
    return Services(
        cfg,
        keys,
        registry,
        gateway,
        meter,
        metrics,
        tokenizer,
        limiter,
        state,
        store,
        writer,
        policies,
        planner,
        int(time.time()),
        responses,
        KeyTable(store) if store is not None else None,
    )


class PolicyStartupError(ValueError):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid policy files:\n  " + "\n  ".join(problems))
