"""The routing decision: constraints first, then the policy's objective, and an explanation.

``PolicyRouter.decide`` is the one scoring method: given the request's features and the live
facts about each candidate, it returns the deployments to try in order and why. Pure: prices
come in through ``pricing``, health and latency come in as data; nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from policies.draws import Draws
from policies.objectives import Choice, Context
from policies.quality import QualityModel
from policies.schema import Policy
from policies.verifier import Verifier
from pricing import ModelPrice, estimate_usd


@dataclass(frozen=True)
class CandidateInfo:
    name: str
    provider: str
    price: ModelPrice | None
    region: str | None = None
    self_hosted: bool = False
    capabilities: frozenset[str] = frozenset()
    context_window: int | None = None
    ttft_ms: float | None = None  # live, smoothed
    tokens_per_s: float | None = None  # live output rate after the first token, smoothed
    healthy: bool = True  # circuit breaker closed (or half-open and probing)
    expected_output: float | None = None  # from history
    expected_cost_usd: float | None = None  # known outright (offline replays without token prices)
    reasoning_allowance: float = 0.0  # reasoning tokens billed per output token, beyond the output bound


@dataclass(frozen=True)
class RequestFeatures:
    prompt: str
    prompt_tokens: int
    max_tokens: int | None = None
    needs: frozenset[str] = frozenset()
    category: str = "general"
    stream: bool = False
    affinity: str | None = None  # the model holding this conversation's prompt cache
    cached_prefix_tokens: int = 0
    concrete: bool = False  # the client named a model: constraints only, no objective
    unit: dict[str, str] = field(default_factory=dict)  # who asks, for a split's sticky arms: user, key, tenant
    # the tenant's fixed price for what it asked for (USD per prompt token, per completion token), when its
    # plan sells the alias at one: what a margin objective weighs each candidate's expected cost against
    sold_at: tuple[float, float] | None = None


@dataclass
class Decision:
    policy: str
    rule: str
    order: list[str]
    reason: str
    candidates: list[dict[str, Any]] = field(default_factory=list)
    arm: str | None = None
    explored: bool = False
    cascade: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        cascade = None if self.cascade is None else {**self.cascade, "check": self.cascade["check"].as_config}
        return {
            "policy": self.policy,
            "rule": self.rule,
            "order": self.order,
            "reason": self.reason,
            "candidates": self.candidates,
            "arm": self.arm,
            "explored": self.explored,
            "cascade": cascade,
        }


def expected_cost(
    price: ModelPrice | None, prompt_tokens: int, output_tokens: float, cached: int = 0, reasoning: float = 0.0
) -> float | None:
    """``output_tokens``: the visible answer; ``reasoning``: reasoning tokens billed on top of it."""
    if price is None:
        return None
    return estimate_usd(price, prompt_tokens, int(output_tokens), cached, reasoning=int(reasoning))


class PolicyRouter:
    def __init__(self, policy: Policy, quality: QualityModel, verifiers: dict[str, Verifier] | None = None):
        self.policy = policy
        self.quality = quality
        self.verifiers = verifiers or {}  # by the name the policy's checks give them
        # the named cascades as a decision that runs one carries them
        self.cascade_specs = {n: c.plan(name=n) for n, c in policy.cascades.items()}
        self.listed = frozenset(policy.pool)
        self.models = policy.models  # every concrete model it may call: the candidates a decision is given
        self.pool_cascades = [n for n in policy.pool if n in policy.cascades]
        k = policy.constraints  # whether the policy's own constraints need checking per candidate
        self.constrained = bool(
            k.capabilities
            or k.regions
            or k.no_third_party
            or k.providers_allow
            or k.providers_deny
            or k.max_ttft_ms is not None
            or k.max_latency_ms is not None
        )

    def _removed(self, c: CandidateInfo, f: RequestFeatures, out_bound: int) -> str | None:
        if f.needs:
            missing = f.needs - c.capabilities
            if missing:
                return f"lacks {', '.join(sorted(missing))}"
        if c.context_window is not None and f.prompt_tokens + out_bound > c.context_window:
            return f"context window {c.context_window} < {f.prompt_tokens + out_bound} tokens"
        if not self.constrained:
            return None
        k = self.policy.constraints
        for cap in k.capabilities:
            if cap not in c.capabilities:
                return f"lacks {cap} (policy)"
        if k.regions and (c.region or "") not in k.regions:
            return f"region {c.region or 'unknown'} not allowed"
        if k.no_third_party and not c.self_hosted:
            return "third-party processing not allowed"
        if k.providers_allow and c.provider not in k.providers_allow:
            return f"provider {c.provider} not allowed"
        if c.provider in k.providers_deny:
            return f"provider {c.provider} denied"
        if k.max_ttft_ms is not None and c.ttft_ms is not None and c.ttft_ms > k.max_ttft_ms:
            return f"live TTFT {c.ttft_ms:.0f} ms > {k.max_ttft_ms:.0f} ms"
        if k.max_latency_ms is not None and c.tokens_per_s:
            out = min(f.max_tokens or 10**9, c.expected_output or self.policy.default_output_tokens)
            total = (c.ttft_ms or 0.0) + 1000.0 * out / c.tokens_per_s
            if total > k.max_latency_ms:
                return (
                    f"expected latency {total:.0f} ms > {k.max_latency_ms:.0f} ms "
                    f"({out:.0f} tokens at {c.tokens_per_s:.0f}/s after {c.ttft_ms or 0:.0f} ms)"
                )
        return None

    def decide(self, f: RequestFeatures, candidates: list[CandidateInfo], rng: Draws) -> Decision:
        """``candidates``: the live facts of every model the policy may call (``policy.models``); an
        entry named after one of the policy's cascades may carry its expected cost (offline replays)."""
        p = self.policy
        out_bound = f.max_tokens or 0
        known: dict[str, CandidateInfo] = {}
        if p.cascades:
            known = {c.name: c for c in candidates if c.name in p.cascades}
            candidates = [c for c in candidates if c.name not in p.cascades]
        feasible: list[CandidateInfo] = []
        table: list[dict[str, Any]] = []
        for c in candidates:
            why = self._removed(c, f, out_bound)
            table.append({"model": c.name, "removed_by": why})
            if why is None:
                feasible.append(c)
        healthy = [c for c in feasible if c.healthy] or feasible  # every circuit open: try anyway
        up = {c.name for c in healthy}
        for row in table:
            if row["removed_by"] is None and row["model"] not in up:
                row["removed_by"] = "circuit open"
        listed = self.listed
        names = [c.name for c in healthy if f.concrete or c.name in listed]
        cascades = [] if f.concrete or not p.cascades else self._cascades(f, table, up)
        names += cascades
        if not names:
            return Decision(p.name, "constraints", [], "no candidate satisfies the constraints", table)
        parts = [m for n in cascades for m in p.cascades[n].models if m not in names]
        q, explored, prior = self.quality.estimate(names + parts, f.prompt, f.category, rng)
        costs: dict[str, float] = {}
        outs: dict[str, float] = {}  # expected output tokens (what a per-token price charges)
        cache = p.constraints.cache_affinity  # the conversation's cached prefix priced at the cache rate
        for c in healthy:
            out = outs[c.name] = min(f.max_tokens or 10**9, c.expected_output or p.default_output_tokens)
            cached = f.cached_prefix_tokens if cache and c.name == f.affinity else 0
            cost = (
                c.expected_cost_usd
                if c.expected_cost_usd is not None
                else expected_cost(c.price, f.prompt_tokens, out, cached, reasoning=out * c.reasoning_allowance)
            )
            costs[c.name] = float("inf") if cost is None else cost
        for n in cascades:
            given = known[n].expected_cost_usd if n in known else None
            costs[n] = given if given is not None else self._cascade_cost(n, q, costs)
            table.append({"model": n, "removed_by": None, "cascade": p.cascades[n].steps})
        learning = self.quality.cfg.bandit.enabled  # (the quality model's: replays switch it on)
        for row in table:
            if row["model"] in q and row["model"] in costs:
                row["quality"] = round(q[row["model"]], 4)
                if learning:  # the estimate before feedback (what feedback on this request is measured against)
                    row["prior"] = round(prior[row["model"]], 4)
                row["expected_cost_usd"] = costs[row["model"]] if costs[row["model"]] != float("inf") else None
        choice = self._objective(f, names, q, costs, rng, outs)
        order, rule, reason, arm, cascade = choice.order, choice.rule, choice.reason, choice.arm, choice.cascade
        if cache and f.cached_prefix_tokens and order and order[0] == f.affinity:
            reason += f"; its prompt cache holds {f.cached_prefix_tokens} tokens of this conversation"
        if cascades:
            if order[0] in p.cascades:  # a named cascade won: run it
                spec = self.cascade_specs[order[0]]
                return Decision(
                    p.name,
                    rule,
                    list(spec["steps"]),
                    f"{reason}; escalate on a failed {spec['check'].type} check",
                    table,
                    arm,
                    explored,
                    spec,
                )
            # fallbacks never run a cascade: one stands in as its last (strongest) step
            order = list(dict.fromkeys(p.cascades[n].steps[-1] if n in p.cascades else n for n in order))
        order = order[: p.max_attempts]
        return Decision(p.name, rule, order, reason, table, arm, explored, cascade)

    def _cascades(self, f: RequestFeatures, table: list[dict[str, Any]], up: set[str]) -> list[str]:
        """The policy's named cascades this request can use: each of their models is available."""
        out = []
        for name in self.pool_cascades:
            spec = self.policy.cascades[name]
            if not f.stream and all(m in up for m in spec.models):
                out.append(name)
                continue
            if f.stream:
                why = "a stream cannot be checked before it is sent"
            else:
                removed = {row["model"]: row["removed_by"] for row in table}
                why = next(f"{m}: {removed.get(m) or 'not offered'}" for m in spec.models if m not in up)
            table.append({"model": name, "removed_by": why, "cascade": list(spec.steps)})
        return out

    def _cascade_cost(self, name: str, q: dict[str, float], costs: dict[str, float]) -> float:
        """Expected cost of a named cascade: each step is reached when the steps before it failed their
        check, taken as likely as their predicted quality says. Checking models answer once per
        request (agreement, verifier), judges once per checked step."""
        spec = self.policy.cascades[name]
        voters = sum(costs.get(v, float("inf")) for v in spec.check.models)
        per_step = spec.check.asks == "about_answer"
        total, reach = voters if spec.check.models and not per_step else 0.0, 1.0
        for i, step in enumerate(spec.steps):
            last = i == len(spec.steps) - 1
            total += reach * (costs.get(step, float("inf")) + (voters if per_step and not last else 0.0))
            reach *= 1.0 - q.get(step, 0.5)
        return total

    def _objective(
        self,
        f: RequestFeatures,
        names: list[str],
        q: dict[str, float],
        cost: dict[str, float],
        rng: Draws,
        outs: dict[str, float],
    ) -> Choice:
        if f.concrete:
            return Choice(names, "concrete", f"requested {names[0]}")
        ctx = Context(self.policy.name, f, names, q, cost, outs, rng, self.policy.default_output_tokens)
        return self.policy.objective_for(f.category).choose(ctx)
