"""Kinds as classes: a toy objective, check and backend (tests/toy_kinds.py), each registered with
one line, work end to end through an in-process gateway: policy files validate them (and reject
them once unregistered), the objective orders candidates, the check decides a cascade, the
backend answers and is metered."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from policies.checks import CHECKS, Answer
from policies.decide import CandidateInfo, PolicyRouter, RequestFeatures
from policies.objectives import OBJECTIVES
from policies.quality import QualityModel
from policies.schema import PolicyError, json_schema, parse_policy
from router.backends.kind import BACKENDS
from router.config import ConfigError, parse_config
from tests.toy_kinds import Alphabetical, CannedKind, HasDigit

KEY = "sk-test-kinds-0123456789abcdef"
CONFIG = """
model_list:
  - model_name: zeta
    litellm_params: {model: canned/zeta, reply: "I am not sure."}
    model_info: {input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}
  - model_name: alpha
    litellm_params: {model: canned/alpha, reply: "It is 42."}
    model_info: {input_cost_per_token: 0.00001, output_cost_per_token: 0.00002}
policies: {files: [%s]}
auth:
  keys: [{id: k, tenant: t, key: os.environ/SY_KINDS_KEY}]
"""
POLICY_ALPHA = (
    "name: alpha-first\nbind: {aliases: [first]}\ncandidates: [zeta, alpha]\nobjective: {type: alphabetical}\n"
)
POLICY_DIGITS = (
    "name: digits\nbind: {aliases: [checked]}\n"
    "objective: {type: cascade, steps: [zeta, alpha], check: {type: has_digit}}\n"
)


@pytest.fixture
def toys():
    OBJECTIVES.register(Alphabetical)
    CHECKS.register(HasDigit)
    BACKENDS.register(CannedKind())
    try:
        yield
    finally:
        OBJECTIVES.unregister("alphabetical")
        CHECKS.unregister("has_digit")
        BACKENDS.unregister("canned")


def test_a_registered_objective_and_check_are_policy_language(toys) -> None:
    policy = parse_policy(POLICY_ALPHA)
    assert isinstance(policy.objective, Alphabetical)
    infos = [CandidateInfo(name=n, provider="p", price=None) for n in ("zeta", "alpha")]
    d = PolicyRouter(policy, QualityModel(policy.quality, {})).decide(
        RequestFeatures(prompt="hi", prompt_tokens=5), infos, random.Random(0)
    )
    assert d.order == ["alpha", "zeta"] and d.rule == "alphabetical(reverse=False)"
    with pytest.raises(PolicyError) as e:
        parse_policy(POLICY_ALPHA.replace("{type: alphabetical}", "{type: alphabetical, reverse: maybe}"))
    assert any(p.startswith("objective.alphabetical.reverse") for p in e.value.problems), e.value.problems
    cascade = parse_policy(POLICY_DIGITS)
    check = cascade.objective.check
    assert (
        isinstance(check, HasDigit)
        and check.passes(Answer("x1"), [], 0, {})
        and not check.passes(Answer("x"), [], 0, {})
    )
    schema = json_schema()
    assert "Alphabetical" in schema["$defs"] and "HasDigit" in schema["$defs"]


def test_unregistered_kinds_are_refused_with_the_known_ones_named(toys) -> None:
    OBJECTIVES.unregister("alphabetical")
    CHECKS.unregister("has_digit")
    with pytest.raises(PolicyError) as e:
        parse_policy(POLICY_ALPHA)
    assert "'alphabetical'" in str(e.value) and "'cheapest_above'" in str(e.value)
    with pytest.raises(PolicyError) as e:
        parse_policy(POLICY_DIGITS)
    assert "'has_digit'" in str(e.value) and "'judge'" in str(e.value)
    BACKENDS.unregister("canned")
    with pytest.raises(ConfigError) as c:  # auto now sends canned/ to litellm; naming the kind is refused
        parse_config(
            CONFIG.replace("model: canned/zeta,", "model: canned/zeta, backend: canned,") % "",
            env={"SY_KINDS_KEY": KEY},
        )
    assert "backend" in str(c.value) and "'canned' is not a backend kind" in str(c.value)


def test_toy_kinds_run_in_the_gateway(toys, tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from router.app import create_app
    from router.accounting.metering import MemorySink
    from router.build import build_services

    (tmp_path / "alpha.yaml").write_text(POLICY_ALPHA)
    (tmp_path / "digits.yaml").write_text(POLICY_DIGITS)
    env = {"SY_KINDS_KEY": KEY}
    files = ", ".join(str(tmp_path / f) for f in ("alpha.yaml", "digits.yaml"))
    with pytest.raises(ConfigError, match="says what it replies"):  # the backend kind checks its settings
        parse_config(CONFIG.replace(', reply: "I am not sure."', "") % files, env=env)
    cfg = parse_config(CONFIG % files, env=env)
    sink = MemorySink()
    svc = build_services(cfg, env=env, sink=sink)
    assert svc.registry.candidates("zeta", "chat")[0].region == "toy-land"  # a fact the backend knows
    with TestClient(create_app(cfg, services=svc)) as c:

        def ask(model: str) -> dict:
            r = c.post(
                "/v1/chat/completions",
                headers={"authorization": f"Bearer {KEY}"},
                json={"model": model, "messages": [{"role": "user", "content": "What is six times seven?"}]},
            )
            assert r.status_code == 200, r.text
            return r.json()

        assert ask("first")["choices"][0]["message"]["content"] == "It is 42."  # alpha sorts first
        assert ask("checked")["choices"][0]["message"]["content"] == "It is 42."  # zeta's answer held no digit
    first, checked = list(sink.records)
    assert first["model"] == "alpha" and first["decision"]["rule"] == "alphabetical(reverse=False)"
    assert first["cost_usd"] == pytest.approx(10 * 0.00001 + 3 * 0.00002)
    assert checked["decision"]["cascade"]["check"] == {"type": "has_digit", "min_digits": 1}
    assert [(line["role"], line["model"]) for line in checked["lines"]] == [
        ("cascade_step", "zeta"),
        ("answer", "alpha"),
    ]
    assert checked["cost_usd"] == pytest.approx(sum(line["cost_usd"] for line in checked["lines"]))
    assert checked["lines"][0]["cost_usd"] == pytest.approx(10 * 0.000001 + 4 * 0.000002)
