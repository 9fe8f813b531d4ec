"""The objectives a policy can state, decided on fixed qualities and prices, and the bandit's
bounded exploration."""

from __future__ import annotations

import random

import pytest

from policies.decide import CandidateInfo, PolicyRouter, RequestFeatures
from policies.quality import BanditState, QualityModel
from policies.schema import PolicyError, parse_policy
from pricing import ModelPrice

# per 1,000 prompt + 100 output tokens: cheap $0.00011, mid $0.0011, best $0.011
MODELS = {"cheap": (0.5, 1e-7), "mid": (0.8, 1e-6), "best": (0.95, 1e-5)}
F = RequestFeatures(prompt="hi", prompt_tokens=1000, max_tokens=100)


INFOS = [CandidateInfo(m, "p", ModelPrice(p, p)) for m, (_, p) in MODELS.items()]


def router(objective: str, bandit: str = "{enabled: false}", state: BanditState | None = None) -> PolicyRouter:
    priors = ", ".join(f"{m}: {q}" for m, (q, _) in MODELS.items())
    policy = parse_policy(
        f"name: o\nbind: {{aliases: [x]}}\ncandidates: [cheap, mid, best]\nobjective: {objective}\n"
        f"quality: {{priors: {{{priors}}}, bandit: {bandit}}}\n"
    )
    return PolicyRouter(policy, QualityModel(policy.quality, {}, bandit=state))


def decide(objective: str, bandit: str = "{enabled: false}", state: BanditState | None = None):
    return router(objective, bandit, state).decide(F, INFOS, random.Random(0))


@pytest.mark.parametrize(
    "cap, pick, reason",
    [
        (0.02, "best", "best of 3 under the cap"),
        (0.005, "mid", "best of 2 under the cap"),
        (0.0005, "cheap", "best of 1 under the cap"),
        (0.00001, "cheap", "none under the cap; cheapest"),
    ],
)
def test_best_under_takes_the_best_quality_within_the_cap(cap: float, pick: str, reason: str) -> None:
    d = decide(f"{{type: best_under, max_cost_usd: {cap}}}")
    assert d.order[0] == pick and reason in d.reason and d.rule == f"best_under(${cap:g})"


@pytest.mark.parametrize("lam, pick", [(0, "best"), (10, "best"), (100, "mid"), (1000, "cheap")])
def test_utility_trades_quality_for_cost_by_lambda(lam: float, pick: str) -> None:
    # quality - lambda x cost: at 100, mid 0.8 - 0.11 = 0.69 beats best 0.95 - 1.1 and cheap 0.5 - 0.011
    assert decide(f"{{type: utility, lambda: {lam}}}").order[0] == pick


@pytest.mark.parametrize(
    "target, pick, reason",
    [(0.7, "mid", "cheapest of 2 at or above target"), (0.99, "best", "none reaches 0.99; best")],
)
def test_cheapest_above_and_the_fallback_order(target: float, pick: str, reason: str) -> None:
    d = decide(f"{{type: cheapest_above, target: {target}}}")
    assert d.order[0] == pick and reason in d.reason
    assert d.order == (["mid", "best", "cheap"] if target == 0.7 else ["best", "mid", "cheap"])


def test_exploration_is_bounded_by_the_policy_share() -> None:
    rng = random.Random(7)
    for share in (0.0, 0.1, 0.3):
        r = router(
            "{type: cheapest_above, target: 0.7}", f"{{enabled: true, exploration: {share}, prior_strength: 20}}"
        )
        explored = sum(r.decide(F, INFOS, rng).explored for _ in range(3000))
        assert abs(explored / 3000 - share) < 0.03, (share, explored)


def test_feedback_moves_the_posterior_and_a_rescore_replaces() -> None:
    state = BanditState()
    bandit = "{enabled: true, exploration: 0, prior_strength: 10}"
    assert decide("{type: cheapest_above, target: 0.7}", bandit, state=state).order[0] == "mid"
    for _ in range(3):
        state.record("mid", "general", 0.0)  # (8 + 0) / 13 = 0.62 < 0.7
    assert decide("{type: cheapest_above, target: 0.7}", bandit, state=state).order[0] == "best"
    for _ in range(3):  # the same three requests scored again, now 1.0: (8 + 3) / 13 = 0.85
        state.record("mid", "general", 1.0, replaces=0.0)
    assert state.get("mid", "general") == (3.0, 3.0, 0.0)  # no prior given: the first scores stood for it
    assert decide("{type: cheapest_above, target: 0.7}", bandit, state=state).order[0] == "mid"


@pytest.mark.parametrize("bar, pick", [(0.0, "best"), (0.14, "best"), (0.16, "mid"), (-0.2, "best")])
def test_gain_calls_the_strong_model_when_its_predicted_gain_clears_the_bar(bar: float, pick: str) -> None:
    # best 0.95 - mid 0.8 = +0.15
    d = decide(f"{{type: gain, strong: best, weak: mid, min_gain: {bar}}}")
    assert d.order[:2] == ([pick, "mid" if pick == "best" else "best"]) and d.order[2] == "cheap"
    assert d.rule == f"gain({bar:g})" and "predicted gain of best +0.150" in d.reason


def test_gain_without_one_of_its_models_takes_the_best_remaining() -> None:
    sick = [i if i.name != "best" else CandidateInfo("best", "p", i.price, healthy=False) for i in INFOS]
    infos = [i for i in sick if i.name != "best"]
    d = router("{type: gain, strong: best, weak: mid, min_gain: 0}").decide(F, infos, random.Random(0))
    assert d.order == ["mid", "cheap"] and "best unavailable" in d.reason


# a fixed price of $2 / $4 per 1M tokens: 1,000 prompt + 100 output tokens earn $0.0024; cheap costs
# $0.00011, mid $0.0011, best $0.011 (a loss)
SOLD = RequestFeatures(prompt="hi", prompt_tokens=1000, max_tokens=100, sold_at=(2e-6, 4e-6))


@pytest.mark.parametrize(
    "q, pick, reason",
    [
        (0.5, "cheap", "highest expected margin $0.002290 of 3 at or above 0.50"),
        (0.7, "mid", "highest expected margin $0.001300 of 2 at or above 0.70"),
        (0.9, "best", "highest expected margin $-0.008600 of 1 at or above 0.90"),
        (0.99, "mid", "none reaches 0.99; best that keeps the margin: mid"),
    ],
)
def test_margin_maximises_the_plan_margin_above_the_quality_bar(q: float, pick: str, reason: str) -> None:
    d = router(f"{{type: margin, min_quality: {q}}}").decide(SOLD, INFOS, random.Random(0))
    assert d.order[0] == pick and reason in d.reason, d.reason
    assert d.rule == f"margin(q>={q:.2f})"
    if q == 0.99:  # nothing reaches it: the best quality that does not lose money, never the loss-maker first
        assert d.order == ["mid", "cheap", "best"]


def test_margin_without_a_fixed_price_is_the_cheapest_above_the_bar() -> None:
    d = router("{type: margin, min_quality: 0.7}").decide(F, INFOS, random.Random(0))
    assert d.order[0] == "mid" and "no fixed price for this request: cheapest" in d.reason
    # and nothing reaching the bar, with no price to keep: the cheapest (the smallest loss)
    d = router("{type: margin, min_quality: 0.99}").decide(F, INFOS, random.Random(0))
    assert d.order == ["cheap", "mid", "best"] and "highest margin: cheap" in d.reason


def test_a_category_takes_its_own_objective() -> None:
    priors = ", ".join(f"{m}: {q}" for m, (q, _) in MODELS.items())
    policy = parse_policy(
        "name: o\nbind: {aliases: [x]}\ncandidates: [cheap, mid, best]\n"
        "objective: {type: cheapest_above, target: 0.7}\n"
        "categories:\n  choice: {type: fixed, model: best}\n  code: {type: utility, lambda: 1000}\n"
        f"quality: {{priors: {{{priors}}}, bandit: {{enabled: false}}}}\n"
    )
    r = PolicyRouter(policy, QualityModel(policy.quality, {}))
    pick = {
        c: r.decide(
            RequestFeatures(prompt="q", prompt_tokens=1000, max_tokens=100, category=c), INFOS, random.Random(0)
        ).order[0]
        for c in ("general", "choice", "code", "math")
    }
    assert pick == {"general": "mid", "choice": "best", "code": "cheap", "math": "mid"}
    with pytest.raises(PolicyError) as e:
        parse_policy(
            "name: o\nbind: {aliases: [x]}\ncandidates: [cheap, mid]\nobjective: {type: utility, lambda: 1}\n"
            "categories: {choice: {type: fixed, model: best}}\n"
        )
    assert "outside candidates: best" in str(e.value)
    with pytest.raises(PolicyError) as e:
        parse_policy(
            "name: o\nbind: {aliases: [x]}\ncandidates: [cheap]\nobjective: {type: utility, lambda: 1}\n"
            "categories: {poetry: {type: fixed, model: cheap}}\n"
        )
    assert "categories.poetry" in str(e.value)


def test_a_margin_policy_sees_the_price_its_tenants_plan_sells_the_alias_at(tmp_path) -> None:
    """Two tenants send the same request to `auto`: the one whose plan sells `auto` at a fixed price
    high enough for the frontier model to keep a margin gets it (nothing reaches the quality bar;
    the best that keeps the margin); the pass-through tenant, with no price to weigh, the cheapest."""
    import httpx

    from tests.conftest import KEY_A, KEY_B, ledger_record, start_gateway

    (tmp_path / "pol").mkdir()
    (tmp_path / "pol" / "auto.yaml").write_text(
        "name: auto\nbind: {aliases: [auto]}\ncandidates: [small, frontier]\n"
        "objective: {type: margin, min_quality: 0.95}\n"
        "quality: {priors: {small: 0.6, frontier: 0.9}, bandit: {enabled: false}}\n"
    )
    gw = start_gateway(
        tmp_path / "gw",
        f"""
model_list:
  - {{model_name: small, litellm_params: {{model: simulated/small, speed: 1000}}}}
  - {{model_name: frontier, litellm_params: {{model: simulated/frontier, speed: 1000}}}}
policies: {{dirs: ['{tmp_path / "pol"}']}}
billing:
  default_plan: pass-through
  plans:
    pass-through: {{}}
    flat: {{fixed: {{auto: {{input_per_mtok: 20.0, output_per_mtok: 40.0}}}}}}
auth:
  tenants: [{{id: a, plan: flat}}, {{id: b}}]
  keys:
    - {{id: key-a, tenant: a, key: os.environ/TEST_KEY_A}}
    - {{id: key-b, tenant: b, key: os.environ/TEST_KEY_B}}
""",
    )
    try:
        picks = {}
        for tenant, key in (("a", KEY_A), ("b", KEY_B)):
            r = httpx.post(
                gw.base + "/v1/chat/completions",
                headers={"authorization": f"Bearer {key}"},
                timeout=30,
                json={"model": "auto", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]},
            )
            assert r.status_code == 200, r.text
            rec = ledger_record(gw, key, r.headers["x-request-id"])
            picks[tenant] = (rec["model"], rec["decision"]["reason"])
        assert picks["a"][0] == "frontier" and "best that keeps the margin: frontier" in picks["a"][1]
        assert picks["b"][0] == "small" and "highest margin: small" in picks["b"][1]
    finally:
        assert gw.stop() == 0


def test_optimism_retries_a_model_written_off_after_one_unlucky_answer() -> None:
    """Bayes-UCB: with uniform priors, `a` failed once (mean 1/3, sd 0.24), `b` is right half the
    time over 30 answers (mean 1/2, sd 0.09). Posterior means pick b; two standard deviations of
    optimism give a, the less known, another try."""
    state = BanditState()
    state.record("a", "general", 0.0)
    for i in range(30):
        state.record("b", "general", float(i % 2))
    infos = [CandidateInfo(m, "p", ModelPrice(1e-9, 1e-9)) for m in ("a", "b")]

    def pick(optimism: float) -> str:
        policy = parse_policy(
            "name: o\nbind: {aliases: [x]}\ncandidates: [a, b]\nobjective: {type: utility, lambda: 0}\n"
            f"quality: {{priors: {{a: 0.5, b: 0.5}}, bandit: {{enabled: true, exploration: 0, "
            f"prior_strength: 2, optimism: {optimism}}}}}\n"
        )
        return (
            PolicyRouter(policy, QualityModel(policy.quality, {}, bandit=state))
            .decide(F, infos, random.Random(0))
            .order[0]
        )

    assert pick(0) == "b" and pick(2) == "a"
