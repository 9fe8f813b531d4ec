"""Builds everything the gateway needs from a config, and starts and stops what runs in the background."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pricing import PriceCatalog
from pricing import loaders as pricing_data
from policies.quality import decided_prior
from router import memory
from router.auth import KeyStore
from router.balancing import USAGE_SYNC_INTERVAL
from router.config import Config
from router.ledger.conversations import ResponseStore
from router.ledger.keys import KeyTable
from router.ledger.store import LedgerStore
from router.ledger.writer import LedgerWriter
from router.accounting.limits import Limiter
from router.accounting.metering import Meter
from router.metrics import Metrics
from router.planning import Planner
from router.policy_store import PolicyStore
from router.proxy import Gateway
from router.registry import Registry
from router.accounting.state import StateStore
from router.tokens import Tokenizer
from router.keyring import build_keys, model_lists

log = logging.getLogger("switchyard")
KEY_SYNC_INTERVAL = 1.0  # seconds between a replica's checks for keys changed on another replica
UNSHARED_MAX = 10_000  # feedback kept for the shared store while it is down; the oldest is dropped beyond
STOP_TASKS_S = 10.0  # longest a background task may take to end once cancelled, at shutdown


@dataclass
class Services:
    """Everything the routes need, built once per app from the config."""

    config: Config
    keys: KeyStore
    registry: Registry
    gateway: Gateway
    meter: Meter
    metrics: Metrics
    tokenizer: Tokenizer
    limiter: Limiter
    state: StateStore
    store: LedgerStore | None
    writer: LedgerWriter | None
    policies: PolicyStore
    planner: Planner
    started_at: int
    responses: ResponseStore | None = None  # stored Responses-API answers (in the ledger database)
    key_table: KeyTable | None = None  # keys issued over HTTP, and the audit log (in the ledger database)
    key_rows: list[dict[str, Any]] = field(default_factory=list)
    _key_version: tuple[float | None, int] | None = None
    _key_sync: asyncio.Task[None] | None = None
    draining: bool = False
    _watcher: asyncio.Task[None] | None = None
    _config_watcher: asyncio.Task[None] | None = None
    _trimmer: asyncio.Task[None] | None = None
    _bandit_sync: asyncio.Task[None] | None = None
    _usage_sync: asyncio.Task[None] | None = None
    _pruner: asyncio.Task[None] | None = None
    _config_mtime: float = 0.0
    # feedback the shared store did not take (it was down): (policy, model, category, score, request id, prior),
    # handed to it again before the next sync, so that it is not lost when the sync replaces local totals
    _unshared: deque[tuple[str, str, str, float, str, float]] = field(
        default_factory=lambda: deque(maxlen=UNSHARED_MAX)
    )

    async def start(self) -> None:
        # only the encodings the configured models use (each costs 30-70 MB of memory)
        await asyncio.to_thread(self.tokenizer.warm, {d.upstream_model for d in self.registry.deployments})
        if self.store is not None and self.writer is not None:
            await self.store.migrate()
            await self.writer.start()
            await self.writer.replay()
        self.limiter.start()
        self._watcher = asyncio.create_task(self.policies.watch(), name="policy-watch")
        self._config_watcher = asyncio.create_task(self.watch_config(), name="config-watch")
        self._trimmer = asyncio.create_task(memory.trim_periodically(), name="memory-trim")
        self._bandit_sync = asyncio.create_task(self.sync_bandits(), name="bandit-sync")
        if self.state.shared and self.registry.limited:
            self._usage_sync = asyncio.create_task(self.sync_usage(), name="usage-sync")
        if self.key_table is not None:
            await self.sync_keys()  # before the first request: keys issued over HTTP answer at once
            self._key_sync = asyncio.create_task(self.watch_keys(), name="key-sync")
        if self.responses is not None and self.responses.enabled:
            self._pruner = asyncio.create_task(self.prune_responses(), name="responses-prune")
        memory.freeze_startup()

    async def stop(self) -> None:
        """Flush: settle budgets, write every queued ledger record, close connections."""
        tasks = [
            t
            for t in (
                self._watcher,
                self._config_watcher,
                self._trimmer,
                self._bandit_sync,
                self._pruner,
                self._key_sync,
                self._usage_sync,
            )
            if t is not None
        ]
        for task in tasks:
            task.cancel()
        if tasks:  # let them end before their connections close under them (a query in flight that
            # loses its connection never ends, and asyncio's exit waits for it: the process hung)
            await asyncio.wait(tasks, timeout=STOP_TASKS_S)
        await self.limiter.aclose()
        if self.limiter.alerter is not None:
            await self.limiter.alerter.drain()
        if self.writer is not None:
            await self.writer.close()
        if self.responses is not None:
            await self.responses.close()
        if self.store is not None:
            await self.store.dispose()
        await self.registry.aclose()
        if self.gateway.telemetry is not None:
            await asyncio.to_thread(self.gateway.telemetry.shutdown)

    def model_lists(self) -> tuple[Callable[[list[str] | None], list[str] | None], dict[str, frozenset[str] | None]]:
        return model_lists(self.config)

    def reload_keys(self) -> int:
        """Re-read the config file's auth section: new, changed and revoked keys apply at once.
        (Other sections need a restart.) Returns the number of keys."""
        path = os.environ.get("SWITCHYARD_CONFIG")
        if path:
            from router.config import load_config

            fresh = load_config(path)
            self.keys = build_keys(fresh, os.environ, self.key_rows)
            self._config_mtime = _mtime(path)
        return len(self.keys)

    async def watch_config(self, interval: float = 2.0) -> None:
        """Apply key changes (revocations) when the config file changes, without a restart."""
        path = os.environ.get("SWITCHYARD_CONFIG")
        if not path:
            return
        self._config_mtime = _mtime(path)
        while True:
            await asyncio.sleep(interval)
            if _mtime(path) != self._config_mtime:
                try:
                    self.reload_keys()
                    log.warning("config file changed: keys reloaded")
                except Exception as exc:  # an invalid file keeps the current keys
                    self._config_mtime = _mtime(path)
                    log.warning("config file changed but is invalid; keys unchanged: %s", str(exc)[:500])

    def reload_catalog(self) -> int:
        """Re-read the price files; requests metered before keep the prices they were metered at."""
        catalog = load_catalog(self.config)
        self.meter.catalog = catalog
        return len(catalog)

    async def feedback(self, request_id: str, tenant: str, score: float) -> tuple[bool, bool]:
        """Score a routed request of this tenant: updates the policy's bandit. Returns (found, whether
        it replaced an earlier score of the same request: one request counts once)."""
        if self.store is None:
            return False, False
        for _ in range(20):  # the record may still be in the writer's queue
            row = await self.store.get(request_id, tenant)
            if row is not None:
                break
            await asyncio.sleep(0.05)
        else:
            return False, False
        decision = row.get("decision") or {}
        bandit = self.policies.bandits.get(decision.get("policy") or "")
        if bandit is None or not row.get("model"):
            return False, False
        category = decision.get("category", "general")
        previous = None
        # the candidate the policy chose is what earned the score: a named cascade's own arm (the
        # answering step's quality depends on the check), else the model that answered
        arm = (decision.get("cascade") or {}).get("name") or row["model"]
        # what the policy expected of the arm when it decided: feedback corrects that estimate (a record
        # from before priors were kept has the estimate it used; none at all: taken as no surprise)
        prior = decided_prior(decision.get("candidates") or [], arm)
        prior = score if prior is None else prior
        entry = (decision["policy"], arm, category, score, request_id, prior)
        try:  # shared with the other replicas (Redis), which also says whether it was scored before
            previous = await self.state.bandit_add(*entry)
        except Exception as exc:  # noqa: BLE001 - the store being down must not fail the feedback
            log.warning("feedback not shared with other replicas yet (kept to retry): %s", type(exc).__name__)
            self._unshared.append(entry)
        bandit.record(arm, category, score, replaces=previous, prior=prior)
        self.metrics.feedback.labels(decision["policy"]).inc()
        return True, previous is not None

    async def sync_bandits(self) -> None:
        """Every policy reload interval, take the shared feedback totals (all replicas') as each
        bandit's state. Nothing to do without a shared store."""
        if not self.state.shared:
            return
        interval = self.config.policies.watch_interval if self.config.policies.watch_interval > 0 else 2.0
        while True:
            await self._share_unshared()
            for name, bandit in list(self.policies.bandits.items()):
                try:
                    totals = await self.state.bandit_totals(name)
                except Exception as exc:  # noqa: BLE001 - keep the local state until the store is back
                    log.debug("bandit sync failed: %s", type(exc).__name__)
                    continue
                if totals is not None:
                    bandit.replace(totals)
            await asyncio.sleep(interval)

    async def sync_usage(self) -> None:
        """Every USAGE_SYNC_INTERVAL, hand this replica's requests and tokens per deployment to the shared
        state and take every replica's totals, so rpm/tpm hold across replicas (router.balancing)."""
        load = self.registry.load
        while True:
            await asyncio.sleep(USAGE_SYNC_INTERVAL)
            window, deltas = load.take_unsynced()
            try:
                totals = await self.state.usage_sync(window, deltas)
            except Exception as exc:  # noqa: BLE001 - counted locally until the store is back
                log.debug("usage sync failed: %s", type(exc).__name__)
                self.metrics.state_errors.inc()
                load.give_back(window, deltas)
                continue
            load.synced(window, totals)

    # -- keys issued over HTTP ---------------------------------------------------------------------
    async def sync_keys(self, force: bool = False) -> bool:
        """Take the key table's rows when they changed (or ``force``); whether they did."""
        assert self.key_table is not None
        version = await self.key_table.version()
        if version == self._key_version and not force:
            return False
        rows = await self.key_table.rows()
        self._key_version = version
        self.apply_key_rows(rows)
        return True

    def apply_key_rows(self, rows: list[dict[str, Any]]) -> None:
        self.key_rows = rows
        self.keys = build_keys(self.config, os.environ, rows)
        self.limiter.key_limits(
            rates=any(r["rpm"] is not None or r["tpm"] is not None for r in rows),
            budgets=any(r["budget_usd"] is not None for r in rows),
            tokens=any(r["tpm"] is not None for r in rows),
        )

    async def watch_keys(self, interval: float = KEY_SYNC_INTERVAL) -> None:
        """Every replica: a key created, changed or revoked on any replica applies here within ``interval``."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sync_keys()
            except Exception as exc:  # noqa: BLE001 - the database down: keep the keys we have
                log.debug("key sync failed: %s", type(exc).__name__)

    async def audit(
        self, actor: str, action: str, target: str | None = None, detail: dict[str, Any] | None = None
    ) -> None:
        """Record an admin action; a database that is down costs the record, never the action."""
        if self.key_table is None:
            return
        try:
            await self.key_table.record(actor, action, target, detail)
        except Exception as exc:  # noqa: BLE001 - see above
            log.warning("audit record of %s failed: %s", action, type(exc).__name__)

    async def prune_responses(self, interval: float = 3600.0) -> None:
        """Hourly, delete stored responses past their retention (any replica may; deleting twice is harmless)."""
        assert self.responses is not None
        while True:
            try:
                n = await self.responses.prune(time.time())
                if n:
                    log.info("deleted %d stored responses past their retention", n)
            except Exception as exc:  # noqa: BLE001 - the database being down must not end the loop
                log.warning("pruning stored responses failed: %s", type(exc).__name__)
            await asyncio.sleep(interval)

    async def _share_unshared(self) -> None:
        """Hand the shared store the feedback it missed while it was down (oldest first; a score it
        already holds is replaced by the same score, so a retry cannot count twice)."""
        while self._unshared:
            try:
                await self.state.bandit_add(*self._unshared[0])
            except Exception:  # noqa: BLE001 - still down: keep them for the next round
                return
            self._unshared.popleft()

    async def readiness(self) -> tuple[str, dict[str, Any], list[str]]:
        """("ready" | "degraded" | "not_ready", the checks, what is degraded). Ready means "can serve":
        a ledger database that is down spills records to disk and a shared state that is down under
        ``fail_mode: open`` falls back to local limits, so both leave the gateway serving, degraded;
        only a gateway that cannot answer (no deployments, draining, state down under
        ``fail_mode: closed``) is not ready."""
        checks: dict[str, Any] = {
            "config": True,
            "deployments": len(self.registry.deployments) > 0,
            "draining": self.draining,
        }
        degraded: list[str] = []
        if self.store is not None:
            checks["ledger"] = await self.store.ping()
            if not checks["ledger"]:
                degraded.append("ledger database unreachable: records spill to local disk and replay later")
        checks["state"] = await self.state.ping()
        serving = checks["deployments"] and not self.draining
        if not checks["state"]:
            if self.config.limits.fail_mode == "closed" and self.limiter.active:
                serving = False
            else:
                degraded.append("shared state unreachable: limits and budgets enforced locally (fail_mode: open)")
        for component in ("ledger", "state"):
            if component in checks:
                self.metrics.component_up.labels(component).set(1 if checks[component] else 0)
        status = "not_ready" if not serving else ("degraded" if degraded else "ready")
        return status, checks, degraded


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return -1.0


def load_catalog(cfg: Config) -> PriceCatalog:
    return pricing_data.load_catalog([pricing_data.DEFAULT_OVERRIDES, *(Path(p) for p in cfg.pricing.overrides)])
