"""Build or buy, from the ledger: each model's observed traffic (tokens by type, hour-of-day shape,
what its API charged) handed to ``pricing.advisor`` with a stack profile. Read by the dashboard's
"Build or buy" view (``/admin/insights/advise``) and ``switchyard advise``, which prints the same JSON.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from pricing import StackProfile
from pricing.loaders import load_profiles
from pricing.advisor import Traffic, advise
from router.ledger.queries import UsageQuery
from router.ledger.store import LedgerStore
from router.registry import Deployment
from router.services import Services

MAX_ROWS = 100_000


def model_class(svc: Services, dep: Deployment, profile: StackProfile) -> str:
    """The throughput class the ledger's attribution used for this deployment."""
    if dep.model_class:
        return dep.model_class
    price = dep.price(svc.meter.catalog)
    return profile.model_class(dep.price_key or dep.upstream_model, price.output * 1e6 if price is not None else None)


async def observed(svc: Services, store: LedgerStore, q: UsageQuery, profile: StackProfile) -> list[Traffic]:
    """Each chat model's traffic in the range, from hourly roll-ups of the ledger."""
    rows, _ = await store.usage(
        replace(
            q,
            bucket_seconds=3600,
            group_by=("model",),
            filters=(*q.filters, ("endpoint", "chat")),
            limit=MAX_ROWS,
            offset=0,
        )
    )
    days = max((min(q.end, time.time()) - q.start) / 86400, 1 / 24)
    acc: dict[str, dict[str, Any]] = {}
    for r in rows:
        if not r["model"] or not r["requests"]:
            continue
        a = acc.setdefault(
            r["model"],
            {
                "prompt": 0,
                "cached": 0,
                "completion": 0,
                "cost": 0.0,
                "unpriced": 0,
                "gpu_hours": 0.0,
                "hourly": [0.0] * 24,
            },
        )
        a["prompt"] += int(r["prompt_tokens"])
        a["cached"] += int(r["cached_tokens"])
        a["completion"] += int(r["completion_tokens"])
        a["cost"] += r["cost_usd"] or 0.0
        a["unpriced"] += int(r["unpriced"])
        a["gpu_hours"] += r["gpu_hours"] or 0.0
        a["hourly"][int(r["bucket"] % 86400 // 3600)] += int(r["prompt_tokens"]) + int(r["completion_tokens"])
    out = []
    for name, a in sorted(acc.items()):
        deps = svc.registry.candidates(name, "chat")
        total = sum(a["hourly"])
        if not deps or total <= 0:
            continue
        dep = deps[0]
        out.append(
            Traffic(
                model=name,
                model_class=model_class(svc, dep, profile),
                days=days,
                prompt_tokens=a["prompt"],
                cached_tokens=a["cached"],
                completion_tokens=a["completion"],
                hourly=tuple(h / total for h in a["hourly"]),
                api_cost_usd=None if a["unpriced"] else a["cost"],
                self_hosted=dep.self_hosted,
                gpu_hours=a["gpu_hours"],
                quality=dep.quality,
            )
        )
    return out


def substitutes(svc: Services) -> list[Deployment]:
    """Open-weights models the operator serves itself: what API traffic could move to."""
    seen, out = set(), []
    for dep in svc.registry.deployments:
        if dep.self_hosted and dep.mode == "chat" and dep.model_name not in seen:
            seen.add(dep.model_name)
            out.append(dep)
    return out


async def build_or_buy(
    svc: Services,
    store: LedgerStore,
    q: UsageQuery,
    *,
    profile_name: str | None,
    utilisation: float | None,
    rental: float | None,
    decline: float,
) -> dict[str, Any]:
    profiles = load_profiles()
    name = profile_name or svc.config.billing.profile
    if name not in profiles:
        raise LookupError(name)
    profile = profiles[name]
    now = time.time()
    models = []
    subs = substitutes(svc)
    for t in await observed(svc, store, q, profile):
        row = advise(t, profile, utilisation=utilisation, rental=rental, decline=decline, now=now)
        row["unpriced"] = t.api_cost_usd is None
        row["substitutes"] = []
        if not t.self_hosted:
            for dep in subs:
                alt = replace(t, model=dep.model_name, model_class=model_class(svc, dep, profile), quality=dep.quality)
                a = advise(alt, profile, utilisation=utilisation, rental=rental, decline=decline, now=now)
                row["substitutes"].append(
                    {
                        "model": dep.model_name,
                        "model_class": alt.model_class,
                        "quality": dep.quality,
                        "rent": _brief(a["rent"]),
                        "own": _brief(a["own"]),
                    }
                )
        models.append(row)
    return {
        "profile": name,
        "profiles": sorted(profiles),
        "economics": profile.economics().as_dict(),
        "gpus_per_server": profile.server.gpus_per_server,
        "server_capex_usd": profile.server.capex_usd,
        "depreciation_years": profile.server.depreciation_years,
        "params": {
            "utilisation": utilisation if utilisation is not None else profile.utilisation,
            "usd_per_gpu_hour": rental if rental is not None else profile.rental_usd_per_gpu_hour,
            "api_price_decline_per_year": decline,
            "start": q.start,
            "end": q.end,
        },
        "models": models,
    }


def _brief(option: dict[str, Any]) -> dict[str, Any]:
    return {k: option[k] for k in ("usd_per_day", "usd_per_mtok", "gpus", "break_even_tokens_per_day")}
