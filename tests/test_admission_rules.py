"""Which rate limits and budgets a request counts against: every scope (key, tenant, model alias, user,
tag, a key's own limits) keeps its own count, however requests of different keys, models, users and
tags interleave. The limiter remembers which rules apply per kind of request (router/accounting/
limits.py, ``Limiter._plan``); this test holds its admissions equal to a plain model of the rules
written from their definition, for any sequence of requests (Hypothesis)."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from router.accounting.attribution import Attributes
from router.accounting.limits import Limiter
from router.accounting.state import NANO, MemoryState
from router.auth import Principal
from router.config_sections import LimitsConfig, RateLimitRule
from router.errors import APIError
from router.metrics import Metrics

OWN = RateLimitRule(scope="key", id="*", rpm=2)
OWN_LOWERED = RateLimitRule(scope="key", id="*", rpm=1)
WHO = [
    Principal(key_id="k1", tenant="t1", models=None),
    Principal(key_id="k2", tenant="t1", models=None),
    Principal(key_id="k3", tenant="t2", models=None),
    Principal(key_id="k4", tenant="t2", models=None, rules=((OWN,), ())),  # a key issued with its own limit
    Principal(key_id="k4", tenant="t2", models=None, rules=((OWN_LOWERED,), ())),  # the same key, its limit lowered
]
RATES = [
    {"scope": "key", "id": "k1", "rpm": 2},
    {"scope": "key", "id": "*", "rpm": 4},
    {"scope": "tenant", "id": "t2", "rpm": 3},
    {"scope": "user", "id": "u1", "rpm": 1},
    {"scope": "user", "id": "*", "rpm": 3},
    {"scope": "tag", "id": "team=x", "rpm": 2},
    {"scope": "tag", "id": "team=*", "rpm": 3},
    {"scope": "tenant", "id": "*", "tpm": 900},
]
BUDGETS = [
    {"scope": "alias", "id": "m1", "period": "day", "usd": 0.025},
    {"scope": "user", "id": "*", "period": "day", "usd": 0.035},
    {"scope": "tag", "id": "team=y", "period": "day", "usd": 0.015},
]
RESERVE = 0.01  # each request's worst case: m1 admits two, a user three, team y one, while none settles
TOKENS = 100


class NoSpend:
    """The ledger as a budget's first use reads it: nothing spent yet."""

    async def budget_sums(self, scope: str, scope_id: str, start: float, end: float, among: Any, since: Any = None):
        return 0, {}


def _id(rule: dict[str, Any], who: Principal, model: str, user: str | None, tags: dict[str, str] | None) -> Any:
    """The id the rule counts this request under, or None: the rule's definition, written out."""
    if rule["scope"] == "tag":
        tag, _, want = rule["id"].partition("=")
        value = (tags or {}).get(tag)
        return f"{tag}={value}" if value is not None and want in ("*", value) else None
    value = {"key": who.key_id, "tenant": who.tenant, "alias": model, "user": user}[rule["scope"]]
    return value if value is not None and rule["id"] in ("*", value) else None


request = st.tuples(
    st.sampled_from(range(len(WHO))),
    st.sampled_from(["m1", "m2"]),
    st.sampled_from([None, "u1", "u2"]),
    st.sampled_from([None, {}, {"team": "x"}, {"team": "y"}, {"team": "x", "other": "z"}]),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(request, min_size=1, max_size=30))
def test_admissions_follow_the_rules_for_any_sequence(requests: list[Any]) -> None:
    async def run() -> None:
        cfg = LimitsConfig(rate_limits=RATES, budgets=BUDGETS)
        limiter = Limiter(cfg, MemoryState(), Metrics(), ledger=NoSpend(), flush_interval=0.0)
        now = time.time()
        counts: dict[Any, int] = {}
        spent: dict[Any, int] = {}
        reserve = math.ceil(RESERVE * NANO)
        for i, (w, model, user, tags) in enumerate(requests):
            who = WHO[w]
            rates = [(j, r, _id(r, who, model, user, tags)) for j, r in enumerate(RATES)]
            rates = [(("cfg", j, s), r) for j, r, s in rates if s is not None]
            if who.rules is not None:
                rates.append((("own", who.key_id), {"rpm": who.rules[0][0].rpm}))
            budgets = [(j, b, _id(b, who, model, user, tags)) for j, b in enumerate(BUDGETS)]
            budgets = [((j, s), b) for j, b, s in budgets if s is not None]
            fits = all(
                counts.get(c, 0) + (1 if r.get("rpm") is not None else TOKENS) <= (r.get("rpm") or r.get("tpm"))
                for c, r in rates
            ) and all(spent.get(k, 0) + reserve <= b["usd"] * NANO for k, b in budgets)
            try:
                await limiter.admit(
                    who, model, TOKENS, RESERVE, request_id=f"r{i}", now=now, attrs=Attributes(user, tags)
                )
                admitted = True
            except APIError as exc:
                assert exc.status == 429
                admitted = False
            assert admitted == fits, (i, who.key_id, model, user, tags)
            if admitted:
                for c, r in rates:
                    counts[c] = counts.get(c, 0) + (1 if r.get("rpm") is not None else TOKENS)
                for k, _ in budgets:
                    spent[k] = spent.get(k, 0) + reserve
        await limiter.aclose()

    asyncio.run(run())


def test_a_tagged_request_reads_only_the_tag_rules_and_keeps_the_configs_order(monkeypatch) -> None:
    """The rules other than tag rules that apply to a key, model and user are remembered; a request that
    carries tags reads only the tag rules on top of them (it read every rule of the config before), and
    its counters and budgets keep the config's order."""
    from router.accounting import rules as rules_mod
    from router.accounting.rules import Rules

    n = 500
    rates = [{"scope": "key", "id": f"k{i}", "rpm": 10} for i in range(n)]
    rates.insert(3, {"scope": "tag", "id": "team=*", "rpm": 5})
    rates.append({"scope": "key", "id": "*", "tpm": 1000})
    budgets = [
        {"scope": "tenant", "id": "t1", "period": "day", "usd": 1.0},
        {"scope": "tag", "id": "team=x", "period": "day", "usd": 0.5},
    ]
    budgets.append({"scope": "alias", "id": "*", "period": "month", "usd": 9.0})
    rules = Rules(LimitsConfig(rate_limits=rates, budgets=budgets))
    who = Principal(key_id="k7", tenant="t1", models=None)
    tagged = Attributes(user=None, tags={"team": "x"})
    first = rules.plan(who, "m1", tagged)
    calls = [0]
    real = rules_mod._scope_id

    def counting(rule: Any, ids: Any, attrs: Any) -> Any:
        calls[0] += 1
        return real(rule, ids, attrs)

    monkeypatch.setattr(rules_mod, "_scope_id", counting)
    again = rules.plan(who, "m1", Attributes(user=None, tags={"team": "y"}))
    assert calls[0] == 2  # the two tag rules, not the 504 rules of the config
    # config order: key k7 (c8, after the tag rule at c3), then the wildcard tpm rule; the tag rule between
    assert [p for p, _, _ in first.specs] == ["rl:c3:tag:team=x:req:", "rl:c8:key:k7:req:", f"rl:c{n + 1}:key:k7:tok:"]
    assert [p for p, _, _ in again.specs] == ["rl:c3:tag:team=y:req:", "rl:c8:key:k7:req:", f"rl:c{n + 1}:key:k7:tok:"]
    assert [(b.scope, s) for b, s in first.budgets] == [("tenant", "t1"), ("tag", "team=x"), ("alias", "m1")]
    assert [(b.scope, s) for b, s in again.budgets] == [("tenant", "t1"), ("alias", "m1")]
    # and what applies is what the rules' definition says, in the same order
    r_all, b_all = rules.applying(who, "m1", tagged)
    assert [(r.scope, s) for r, s in r_all] == [("tag", "team=x"), ("key", "k7"), ("key", "k7")]
    assert [(b.scope, s) for b, s in b_all] == [(b.scope, s) for b, s in first.budgets]
