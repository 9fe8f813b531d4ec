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


Applying = list[tuple[int, Any, str]]  # (the rule's place in the config, the rule, the id it counts under)


class Rules:
    """The rules of one limits config, resolved per request."""

    def __init__(self, cfg: LimitsConfig):
        self.cfg = cfg
        self._rule_tags = {id(r): f"c{i}" for i, r in enumerate(cfg.rate_limits)}
        # which rules apply to a request depends only on these of its ids: remembered per combination.
        # Tag rules depend on the request's tags as well, so they are resolved per request, and only
        # they: the rest of the plan is still remembered (a tagged request no longer reads every rule)
        self._plans: dict[tuple[str, str, str, str | None], tuple[Applying, Applying, RulePlan]] = {}
        self._rates = [(i, r) for i, r in enumerate(cfg.rate_limits) if r.scope != "tag"]
        self._budgets = [(i, b) for i, b in enumerate(cfg.budgets) if b.scope != "tag"]
        self._tag_rates = [(i, r) for i, r in enumerate(cfg.rate_limits) if r.scope == "tag"]
        self._tag_budgets = [(i, b) for i, b in enumerate(cfg.budgets) if b.scope == "tag"]
        scopes = {r.scope for r in cfg.rate_limits} | {b.scope for b in cfg.budgets}
        self._by_user, self._by_tag = "user" in scopes, "tag" in scopes

    def applying(
        self, who: Principal, requested: str, attrs: Any = None
    ) -> tuple[list[tuple[RateLimitRule, str]], list[tuple[BudgetRule, str]]]:
        """The rate-limit and budget rules that apply to this request, each with the id it counts under:
        config rules in the config's order, then the key's own."""
        rates, budgets = self._applying(who, requested, attrs)
        return [(r, s) for _, r, s in rates], [(b, s) for _, b, s in budgets]

    def _applying(self, who: Principal, requested: str, attrs: Any) -> tuple[Applying, Applying]:
        rates, budgets, _ = self._base(who, requested, attrs)
        if self._tagged(attrs):
            ids = _ids(who, requested, attrs)
            tag_rates = [(i, r, s) for i, r in self._tag_rates if (s := _scope_id(r, ids, attrs)) is not None]
            tag_budgets = [(i, b, s) for i, b in self._tag_budgets if (s := _scope_id(b, ids, attrs)) is not None]
            if tag_rates:
                rates = sorted(rates + tag_rates, key=_place)
            if tag_budgets:
                budgets = sorted(budgets + tag_budgets, key=_place)
        if who.rules is not None:  # the key's own (set over HTTP), after the config's
            rates = [*rates, *((len(self.cfg.rate_limits), r, who.key_id) for r in who.rules[0])]
            budgets = [*budgets, *((len(self.cfg.budgets), b, who.key_id) for b in who.rules[1])]
        return rates, budgets

    def _tagged(self, attrs: Any) -> bool:
        """The request carries tags and the config has a tag rule: tag rules are read for it."""
        return self._by_tag and attrs is not None and bool(attrs.tags)

    def _base(self, who: Principal, requested: str, attrs: Any) -> tuple[Applying, Applying, RulePlan]:
        """The config's rules other than tag rules that apply (and their plan), remembered per key,
        tenant, model and (when a rule counts per user) user."""
        user = attrs.user if self._by_user and attrs is not None else None
        ck = (who.key_id, who.tenant, requested, user)
        held = self._plans.get(ck)
        if held is None:
            if len(self._plans) > 100_000:
                self._plans.clear()
            ids = _ids(who, requested, attrs)
            rates = [(i, r, s) for i, r in self._rates if (s := _scope_id(r, ids, attrs)) is not None]
            budgets = [(i, b, s) for i, b in self._budgets if (s := _scope_id(b, ids, attrs)) is not None]
            held = self._plans[ck] = (rates, budgets, self._build_plan(rates, budgets))
        return held

    def plan(self, who: Principal, requested: str, attrs: Any) -> RulePlan:
        """The rules that apply to this request and its rate counters' key prefixes: remembered per key,
        model and (when a rule counts per user) user; a key's own rules or a tag rule add to it per request."""
        if who.rules is None and not self._tagged(attrs):
            return self._base(who, requested, attrs)[2]
        rates, budgets = self._applying(who, requested, attrs)
        return self._build_plan(rates, budgets)

    def _build_plan(self, rates: Applying, budgets: Applying) -> RulePlan:
        specs: list[tuple[str, int, bool]] = []
        kinds: list[tuple[str, int]] = []
        for _, r, scope_id in rates:
            # each rule counts apart (a wildcard rule and one naming the same id, a key's own limits):
            # config rules by their place in the config, the same on every replica
            base = f"rl:{self._rule_tags.get(id(r), 'own')}:{r.scope}:{scope_id}"
            if r.rpm is not None:
                specs.append((f"{base}:req:", r.rpm, False))
                kinds.append(("requests", r.rpm))
            if r.tpm is not None:
                specs.append((f"{base}:tok:", r.tpm, True))
                kinds.append(("tokens", r.tpm))
        return RulePlan([(b, s) for _, b, s in budgets], specs, kinds)


def _place(item: tuple[int, Any, str]) -> int:
    return item[0]
