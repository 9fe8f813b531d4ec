"""What the dashboard computes beyond plain aggregates: savings against a baseline model, margin
under each plan, budget burn-down with a forecast, and a policy what-if over recorded traffic.

Everything here reads ledger aggregates (``LedgerStore.usage``), never row by row, so it stays
fast on a ledger of millions of rows. Token sums per (alias, model) group are priced with the
catalog; tiered prices are applied to the group's sums, which the results mark as estimates.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace
from typing import Any

from policies.decide import PolicyRouter, RequestFeatures
from pricing import Traffic, Usage, booked, cost_of, under_plan
from router.config_sections import BudgetRule
from router.ledger.schema import PROMPT_SIZE_MIDPOINTS
from router.ledger.queries import UsageQuery
from router.ledger.store import LedgerStore
from router.accounting.budgets import period_bounds
from router.services import Services

MAX_GROUPS = 10_000


def _usage(row: dict[str, Any]) -> Usage:
    return Usage(
        prompt_tokens=int(row["prompt_tokens"]),
        completion_tokens=int(row["completion_tokens"]),
        cached_tokens=int(row["cached_tokens"]),
        cache_write_tokens=int(row["cache_write_tokens"]),
        reasoning_tokens=int(row["reasoning_tokens"]),
    )


def chat_models(svc: Services) -> list[str]:
    """Concrete chat models that have a price: the baselines a user can pick."""
    out = []
    for name in svc.registry.names():
        deps = svc.registry.candidates(name, "chat")
        if name not in svc.registry.aliases and deps and deps[0].price(svc.meter.catalog) is not None:
            out.append(name)
    return sorted(out)


def _chat_price(svc: Services, name: str) -> Any:
    deps = svc.registry.candidates(name, "chat")
    return deps[0].price(svc.meter.catalog) if deps else None


def _priced(r: dict[str, Any]) -> bool:
    """Whether a usage group has priced traffic: some priced request, or only the cost lines of
    requests answered by another model (no request of its own; lines are moved only when priced)."""
    return r["requests"] > r["unpriced"] or (r["requests"] == 0 and r["prompt_tokens"] > 0)


def _traffic(svc: Services, r: dict[str, Any]) -> Traffic:
    """A usage group (one alias, one model) as priced traffic. A plan marks up the API list cost; for a
    self-hosted model that is its catalog price, while its cost (the ledger's) is its GPU time."""
    u = _usage(r)
    cost = r["cost_usd"] if _priced(r) else None
    list_cost = cost
    deps = svc.registry.candidates(r["model"], "chat") if r["model"] else []
    if cost is not None and deps and deps[0].self_hosted:
        price = deps[0].price(svc.meter.catalog)
        list_cost = cost_of(u, price).total if price is not None else None
    return Traffic(
        r["alias"] or "",
        u,
        list_cost,
        cost,
        r["charge_usd"] if cost is not None else None,
        r["requests"] - r["unpriced"],
    )


async def savings(
    svc: Services, store: LedgerStore, q: UsageQuery, baseline: str | None, *, operator: bool = True
) -> dict[str, Any]:
    """Actual API cost against "had every chat request gone to ``baseline``", and margin per plan
    (pricing.margins: the one definition of a margin).

    Usage is read per (alias, model) cost line group, so a cascade's calls count at their own models.
    ``baseline`` None: the model that would have cost the most for the range's traffic, among the
    priced chat models that served some of it (else among all of them). A plan's margin at baseline
    is what the plan would have charged for the baseline's calls less their cost (a markup plan:
    the markup on the baseline cost); routing earned the difference. ``operator`` False (a tenant):
    its own charge and cost only, no plan margins."""
    rows, _ = await store.usage(
        replace(
            q,
            bucket_seconds=None,
            group_by=("alias", "model"),
            filters=(*q.filters, ("endpoint", "chat")),
            limit=MAX_GROUPS,
            offset=0,
        )
    )
    priced_rows = [r for r in rows if _priced(r)]
    if not baseline:
        names = chat_models(svc)
        served = [n for n in names if any(r["model"] == n for r in rows)] or names
        if not served:
            raise ValueError("")

        def cost_at(name: str) -> float:
            price = _chat_price(svc, name)
            return sum(cost_of(_usage(r), price).total for r in priced_rows)

        baseline = max(served, key=lambda n: (cost_at(n), n))
    price = _chat_price(svc, baseline)
    if price is None:
        raise ValueError(baseline)
    traffic = [_traffic(svc, r) for r in priced_rows]
    at_base = []
    by_model: list[dict[str, Any]] = []
    for r, t in zip(priced_rows, traffic):
        base = cost_of(t.usage, price).total
        at_base.append(Traffic(t.alias, t.usage, base, base, None, t.requests))
        by_model.append(
            {
                "alias": r["alias"],
                "model": r["model"],
                "requests": r["requests"],
                "cost_usd": t.cost,
                "baseline_cost_usd": base,
            }
        )
    actual = booked(traffic)
    unpriced = sum(r["requests"] for r in rows) - actual.requests
    baseline_cost = math.fsum(t.cost for t in at_base)  # type: ignore[misc]
    plan_rows = []
    for name, plan in svc.config.billing.plans.items() if operator else ():
        now, then = under_plan(plan, traffic), under_plan(plan, at_base)
        plan_rows.append(
            {
                "plan": name,
                "charge_usd": now.charge_usd,
                "baseline_charge_usd": then.charge_usd,
                "unpriced": now.unpriced,
                "margin_usd": now.margin_usd,
                "margin_at_baseline_usd": then.margin_usd,
                "routing_margin_usd": now.margin_usd - then.margin_usd,
            }
        )
    hits, cache_saved = await store.cache_savings(q)
    return {
        "baseline": baseline,
        "requests": actual.requests,
        "unpriced": unpriced,
        "cost_usd": actual.cost_usd,
        "cache_hits": hits,
        "cache_saved_usd": cache_saved,
        "baseline_cost_usd": baseline_cost,
        "savings_usd": baseline_cost - actual.cost_usd,
        "savings_pct": (baseline_cost - actual.cost_usd) / baseline_cost * 100 if baseline_cost else 0.0,
        "charge_usd": actual.charge_usd,
        **({"margin_usd": actual.margin_usd} if operator else {}),
        "by_model": by_model,
        "plans": plan_rows,
        "estimate": True,
    }


SHARED_SCOPES = ("alias", "user", "tag")  # budgets that span tenants: the admin's to see


def _rule_visible(svc: Services, rule: BudgetRule, tenant: str | None, admin: bool = False) -> bool:
    """Whether a budget rule belongs to ``tenant`` (None: everyone's). A tenant sees its own tenant's
    rule, the rules of its own keys and the wildcard rules (filtered to its spend); alias, user and tag rules are
    shared across tenants, so only the admin sees them."""
    if tenant is None or rule.id == "*":
        return tenant is None or rule.scope not in SHARED_SCOPES or admin
    if rule.scope == "tenant":
        return rule.id == tenant
    if rule.scope == "key":
        return svc.keys.tenant_of(rule.id) == tenant
    return admin


async def budgets(
    svc: Services, store: LedgerStore, tenant: str | None, now: float, only_tenant: str | None = None
) -> list[dict[str, Any]]:
    """Per budget rule and id: spend so far this period by day, the limit, and a run-rate forecast.

    ``tenant`` scopes a tenant key to its own tenant and keys; alias budgets are shared across
    tenants and shown to the admin only.
    """
    out: list[dict[str, Any]] = []
    rules: list[BudgetRule] = list(svc.config.limits.budgets)
    for rule in rules:
        if not _rule_visible(svc, rule, tenant) or not _rule_visible(svc, rule, only_tenant, admin=True):
            continue
        start, end = period_bounds(rule.period, now)
        bucket = 3600 if rule.period == "day" else 86400
        want = rule.id
        if rule.scope == "tag":  # id key=value (key=*: each value)
            tag, _, want = rule.id.partition("=")
            dim = "tag:" + tag
        else:
            dim = {"key": "key", "tenant": "tenant", "alias": "alias", "user": "user"}[rule.scope]
        filters: list[tuple[str, str]] = []
        if want != "*":
            filters.append((dim, want))
        scope_tenant = tenant if tenant is not None else only_tenant
        rows, _ = await store.usage(
            UsageQuery(
                start=start,
                end=end,
                bucket_seconds=bucket,
                group_by=(dim,),
                tenant=scope_tenant,
                filters=tuple(filters),
                limit=MAX_GROUPS,
            )
        )
        series: dict[str, list[tuple[float, float]]] = {}
        for r in rows:
            if r[dim] is None:
                continue
            ident = f"{tag}={r[dim]}" if rule.scope == "tag" else str(r[dim])
            series.setdefault(ident, []).append((r["bucket"], r["charge_usd"]))
        if want != "*" and not series and (tenant is None or rule.scope != "tenant" or rule.id == tenant):
            series[rule.id] = []
        elapsed = max(min(now, end) - start, 60.0)
        for ident, points in sorted(series.items()):
            cumulative, total = [], 0.0
            for ts, spend in sorted(points):
                total += spend
                cumulative.append({"t": ts + bucket, "spent_usd": total})
            forecast = total * (end - start) / elapsed
            out.append(
                {
                    "scope": rule.scope,
                    "id": ident,
                    "rule_id": rule.id,
                    "period": rule.period,
                    "limit_usd": rule.usd,
                    "soft": rule.soft,
                    "start": start,
                    "end": end,
                    "spent_usd": total,
                    "remaining_usd": rule.usd - total,
                    "forecast_usd": forecast,
                    "forecast_over": forecast > rule.usd,
                    "burn": cumulative,
                }
            )
    return out


def _router_for(svc: Services, name: str | None, yaml_text: str | None) -> PolicyRouter:
    if yaml_text is not None:
        from policies.schema import parse_policy

        policy = parse_policy(yaml_text, "what-if")
        return svc.policies.build(policy, None)  # checks the pool against this gateway's models
    for x in svc.policies.loaded:
        if x.policy.name == name:
            return x.router
    raise LookupError(name)


async def whatif(
    svc: Services, store: LedgerStore, q: UsageQuery, policy: str | None, yaml_text: str | None = None
) -> dict[str, Any]:
    """Replay recorded chat traffic's features (alias, category, prompt size, tokens) through a policy.

    Requests are grouped by (alias, category, prompt size class, served model); each group is
    decided once with the group's mean prompt length, and its recorded tokens are priced at the
    model the policy picks. Quality is the policy's own prediction for the served and the picked
    model (the ledger keeps no per-request feedback scores).
    """
    router = _router_for(svc, policy, yaml_text)
    rows, truncated = await store.usage(
        replace(
            q,
            bucket_seconds=None,
            limit=MAX_GROUPS,
            offset=0,
            group_by=("alias", "category", "prompt_size", "model"),
            filters=(*q.filters, ("endpoint", "chat")),
        )
    )
    infos = [i for i in (svc.planner.info(n, "chat") for n in router.policy.models) if i is not None]
    prices = {i.name: i.price for i in infos}
    rng = random.Random(0)
    actual = estimated = 0.0
    q_actual = q_new = 0.0
    q_weight = 0
    replayed = skipped = 0
    picks: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["model"] is None or r["requests"] == r["unpriced"]:
            skipped += r["requests"]
            continue
        n = r["requests"] - r["unpriced"]
        skipped += r["unpriced"]
        mean_prompt = r["prompt_tokens"] // n if n else PROMPT_SIZE_MIDPOINTS.get(r["prompt_size"], 0)
        f = RequestFeatures(prompt="", prompt_tokens=mean_prompt, category=r["category"] or "general")
        d = router.decide(f, infos, rng)
        if not d.order:
            skipped += n
            continue
        quality = {c["model"]: c.get("quality") for c in d.candidates}
        if d.cascade is not None and d.cascade.get("name"):  # a named cascade: its expected cost per request
            pick = d.cascade["name"]
            each = next((c.get("expected_cost_usd") for c in d.candidates if c["model"] == pick), None)
            if each is None:
                skipped += n
                continue
            new = each * n
        else:
            pick = d.order[0]
            price = prices.get(pick)
            if price is None:
                skipped += n
                continue
            new = cost_of(_usage(r), price).total
        replayed += n
        actual += r["cost_usd"]
        estimated += new
        if quality.get(pick) is not None and quality.get(r["model"]) is not None:
            q_actual += quality[r["model"]] * n
            q_new += quality[pick] * n
            q_weight += n
        p = picks.setdefault(pick, {"model": pick, "requests": 0, "estimated_cost_usd": 0.0, "reasons": {}})
        p["requests"] += n
        p["estimated_cost_usd"] += new
        p["reasons"][d.reason] = p["reasons"].get(d.reason, 0) + n
    for p in picks.values():
        p["reasons"] = sorted(
            ({"reason": k, "requests": v} for k, v in p["reasons"].items()), key=lambda x: -x["requests"]
        )[:5]
    return {
        "policy": router.policy.name,
        "requests": replayed,
        "skipped": skipped,
        "truncated": truncated,
        "actual_cost_usd": actual,
        "estimated_cost_usd": estimated,
        "change_usd": estimated - actual,
        "change_pct": (estimated - actual) / actual * 100 if actual else 0.0,
        "quality_actual": q_actual / q_weight if q_weight else None,
        "quality_estimated": q_new / q_weight if q_weight else None,
        "quality_requests": q_weight,
        "picks": sorted(picks.values(), key=lambda x: -x["requests"]),
        "estimate": True,
    }
