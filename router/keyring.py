"""The keys a gateway accepts: from the config file (its environment references resolved) and
from the ledger (keys issued over HTTP, with their model lists and limits), into one ``KeyStore``."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

from router.auth import KeyStore, hash_key
from router.config import Config, access_groups, resolve_env
from router.config_sections import BudgetRule, RateLimitRule

ENV_DEMO_KEY_HASH = "SWITCHYARD_DEMO_KEY_HASH"
ENV_ADMIN_KEY_HASH = "SWITCHYARD_ADMIN_KEY_HASH"


def model_lists(cfg: Config) -> tuple[Callable[[list[str] | None], list[str] | None], dict[str, frozenset[str] | None]]:
    """How a models list reads (access groups name their models), and each tenant's allow-list (None: every model)."""
    groups = access_groups(cfg)

    def expand(models: list[str] | None) -> list[str] | None:
        return None if models is None else [m for name in models for m in groups.get(name, [name])]

    return expand, {
        t.id: (frozenset(expand(t.models) or ()) if t.models is not None else None) for t in cfg.auth.tenants
    }


def build_keys(cfg: Config, env: Mapping[str, str], rows: Iterable[Mapping[str, Any]] = ()) -> KeyStore:
    def resolve(ref: str | None) -> str | None:
        return resolve_env(ref, env)

    expand, tenants = model_lists(cfg)
    key_maps: list[dict[str, Any]] = [{**k.model_dump(), "models": expand(k.models)} for k in cfg.auth.keys]
    demo_hash = env.get(ENV_DEMO_KEY_HASH)
    if demo_hash:
        key_maps.append({"id": "demo", "tenant": "demo", "hash": demo_hash, "models": None})
    admin_hash = env.get(ENV_ADMIN_KEY_HASH)
    master = resolve(cfg.master_key) if cfg.master_key else None
    if master:  # LiteLLM's master key: calls every model (tenant "default") and is the admin key by default
        key_maps.append({"id": "master-key", "tenant": "default", "key": cfg.master_key, "models": None})
        admin_hash = hash_key(master)
    if cfg.auth.admin_key:
        admin_hash = hash_key(resolve(cfg.auth.admin_key) or "")
    taken = {k["id"] for k in key_maps}
    key_maps += [
        {**r, "models": expand(r.get("models")), "rules": key_rules(r)}  # issued over HTTP
        for r in rows
        if r["id"] not in taken
    ]
    return KeyStore.build(key_maps, tenants, resolve, admin_hash)


def key_rules(row: Mapping[str, Any]) -> tuple[tuple[Any, ...], tuple[Any, ...]] | None:
    """A key's own limits as config rules (scoped to the key)."""
    rates = (
        (RateLimitRule(scope="key", id=row["id"], rpm=row["rpm"], tpm=row["tpm"]),)
        if row.get("rpm") is not None or row.get("tpm") is not None
        else ()
    )
    budgets = (
        (
            BudgetRule(
                scope="key",
                id=row["id"],
                period=row["budget_period"] or "month",
                usd=row["budget_usd"],
                soft=bool(row.get("budget_soft")),
            ),
        )
        if row.get("budget_usd") is not None
        else ()
    )
    return (rates, budgets) if rates or budgets else None
