"""Which rate limits and budgets a request counts against, and under which ids.

A rule applies by its scope: the request's key, tenant, model alias, end user or a tag (``key=value``,
``key=*`` for each value apart); ``*`` matches every id of its scope. A key issued over HTTP may carry
its own rules, counted under the key. Which config rules apply depends only on the request's key,
tenant, alias and (when a rule counts users) user, so the answer, with its rate counters' key
prefixes, is built once per combination and remembered (``Rules.plan``); a key's own rules and tag
rules are resolved per request. tests/test_admission_rules.py holds admissions equal to the rules'
definition for any sequence of requests.
"""

from __future__ import annotations

from typing import Any

from router.auth import Principal
from router.config_sections import BudgetRule, LimitsConfig, RateLimitRule
from router.accounting.state import CounterReq


def _matches(rule_id: str, value: str | None) -> bool:
    return value is not None and (rule_id == "*" or rule_id == value)


def _scope_id(rule: Any, ids: dict[str, str | None], attrs: Any) -> str | None:
    """The id a rule counts this request under, or None when the rule does not apply to it. A tag rule's
    id is ``key=value`` (``key=*``: each value of the tag separately)."""
    if rule.scope != "tag":
        value = ids[rule.scope]
        return value if _matches(rule.id, value) else None
    tag, _, want = rule.id.partition("=")
    value = attrs.tags.get(tag) if attrs is not None and attrs.tags else None
    return f"{tag}={value}" if value is not None and (want == "*" or want == value) else None


def _ids(who: Principal, requested: str, attrs: Any) -> dict[str, str | None]:
    return {
        "key": who.key_id,
        "tenant": who.tenant,
        "alias": requested,
        "user": attrs.user if attrs is not None else None,
    }


class RulePlan:
    """The rules that apply to one kind of request (its key, model and, where a rule asks, user)."""

    __slots__ = ("budgets", "specs", "kinds")

    def __init__(
        self, budgets: list[tuple[BudgetRule, str]], specs: list[tuple[str, int, bool]], kinds: list[tuple[str, int]]
    ):
        self.budgets = budgets
        self.specs = specs  # per rate counter: its key's prefix (the minute follows), its limit, counts tokens
        self.kinds = kinds  # per rate counter: what it counts (requests or tokens) and its limit

    def counters(self, minute: int, tokens: int) -> list[CounterReq]:
        """The counters this minute's request adds to."""
        m = str(minute)
        return [CounterReq(prefix + m, limit, tokens if tok else 1, 70) for prefix, limit, tok in self.specs]


class Rules:
    """The rules of one limits config, resolved per request."""

    def __init__(self, cfg: LimitsConfig):
        self.cfg = cfg
        self._rule_tags = {id(r): f"c{i}" for i, r in enumerate(cfg.rate_limits)}
        # which rules apply to a request depends only on these of its ids: remembered per combination
        self._plans: dict[tuple[str, str, str, str | None], RulePlan] = {}
        scopes = {r.scope for r in cfg.rate_limits} | {b.scope for b in cfg.budgets}
        self._by_user, self._by_tag = "user" in scopes, "tag" in scopes

    def applying(
        self, who: Principal, requested: str, attrs: Any = None
    ) -> tuple[list[tuple[RateLimitRule, str]], list[tuple[BudgetRule, str]]]:
        """The rate-limit and budget rules that apply to this request, each with the id it counts under."""
        ids = _ids(who, requested, attrs)
        rates = [(r, s) for r in self.cfg.rate_limits if (s := _scope_id(r, ids, attrs)) is not None]
        budgets = [(b, s) for b in self.cfg.budgets if (s := _scope_id(b, ids, attrs)) is not None]
        if who.rules is not None:  # the key's own (set over HTTP)
            rates += [(r, who.key_id) for r in who.rules[0]]
            budgets += [(b, who.key_id) for b in who.rules[1]]
        return rates, budgets

    def plan(self, who: Principal, requested: str, attrs: Any) -> RulePlan:
        """The rules that apply to this request and its rate counters' key prefixes: built once per key,
        model and (when a rule counts per user) user; a key's own rules or a tag rule build it each time."""
        if who.rules is not None or (self._by_tag and attrs is not None and attrs.tags):
            return self._build_plan(who, requested, attrs)
        user = attrs.user if self._by_user and attrs is not None else None
        ck = (who.key_id, who.tenant, requested, user)
        plan = self._plans.get(ck)
        if plan is None:
            if len(self._plans) > 100_000:
                self._plans.clear()
            plan = self._plans[ck] = self._build_plan(who, requested, attrs)
        return plan

    def _build_plan(self, who: Principal, requested: str, attrs: Any) -> RulePlan:
        rates, budgets = self.applying(who, requested, attrs)
        specs: list[tuple[str, int, bool]] = []
        kinds: list[tuple[str, int]] = []
        for r, scope_id in rates:
            # each rule counts apart (a wildcard rule and one naming the same id, a key's own limits):
            # config rules by their place in the config, the same on every replica
            base = f"rl:{self._rule_tags.get(id(r), 'own')}:{r.scope}:{scope_id}"
            if r.rpm is not None:
                specs.append((f"{base}:req:", r.rpm, False))
                kinds.append(("requests", r.rpm))
            if r.tpm is not None:
                specs.append((f"{base}:tok:", r.tpm, True))
                kinds.append(("tokens", r.tpm))
        return RulePlan(budgets, specs, kinds)
