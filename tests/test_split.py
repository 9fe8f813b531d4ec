"""A/B splits: arms in proportion to their weights, each user (or key, or tenant) keeping its arm,
and the arm recorded with the request."""

from __future__ import annotations

import random
from collections import Counter

import httpx
import pytest

from policies.decide import CandidateInfo, PolicyRouter, RequestFeatures
from policies.quality import QualityModel
from policies.schema import PolicyError, parse_policy
from pricing import ModelPrice
from tests.conftest import KEY_A, start_gateway
from tests.test_ledger import record

INFOS = [CandidateInfo(n, "p", ModelPrice(1e-6, 1e-6)) for n in ("a", "b")]


def router(assign_by: str) -> PolicyRouter:
    policy = parse_policy(
        "name: ab\nbind: {aliases: [x]}\ncandidates: [a, b]\n"
        f"objective: {{type: split, assign_by: {assign_by}, arms: [{{model: a, weight: 0.8}}, "
        "{model: b, weight: 0.2}]}\n"
    )
    return PolicyRouter(policy, QualityModel(policy.quality, {}))


def arm(r: PolicyRouter, seed: int, **unit: str) -> str:
    d = r.decide(RequestFeatures(prompt="hi", prompt_tokens=5, unit=unit), INFOS, random.Random(seed))
    assert d.rule == "split" and d.arm == d.order[0] and d.order == [d.arm, ({"a", "b"} - {d.arm}).pop()]
    return d.arm


def test_each_user_keeps_an_arm_and_the_arms_follow_the_weights() -> None:
    r = router("user")
    users = [f"user-{i}" for i in range(2000)]
    first = {u: arm(r, seed, user=u, key="k1") for seed, u in enumerate(users)}
    assert all(arm(r, 1000 + seed, user=u, key="k1") == first[u] for seed, u in enumerate(users)), "sticky"
    share = Counter(first.values())["a"] / len(users)
    assert 0.76 < share < 0.84, share  # weight 0.8 (binomial sd 0.009)
    # no user named: the key stands in
    assert len({arm(r, seed, key="k1") for seed in range(50)}) == 1


def test_other_units_and_per_request_draws() -> None:
    by_tenant = router("tenant")
    assert len({arm(by_tenant, seed, tenant="t1", user=f"u{seed}") for seed in range(50)}) == 1
    per_request = router("request")
    picks = Counter(arm(per_request, seed, user="same", key="k1") for seed in range(2000))
    assert 0.76 < picks["a"] / 2000 < 0.84 and picks["b"], "drawn anew for each request, by weight"


def test_assign_by_is_validated() -> None:
    with pytest.raises(PolicyError, match="assign_by"):
        parse_policy(
            "name: ab\nbind: {aliases: [x]}\nobjective: {type: split, assign_by: ip, arms: [{model: a, weight: 1}]}\n"
        )


def test_the_gateway_records_the_arm_and_keeps_a_user_on_it(tmp_path) -> None:
    pdir = tmp_path / "policies"
    pdir.mkdir()
    (pdir / "ab.yaml").write_text(
        "name: ab\nbind: {aliases: [ab]}\nobjective: {type: split, arms: "
        "[{model: small, weight: 1}, {model: mid, weight: 1}]}\n"
    )
    gw = start_gateway(
        tmp_path / "gw",
        f"""
model_list:
  - model_name: small
    litellm_params: {{model: simulated/small, speed: 100}}
  - model_name: mid
    litellm_params: {{model: simulated/mid, speed: 100}}
policies: {{dirs: ['{pdir}']}}
auth:
  admin_key: os.environ/TEST_ADMIN_KEY
  keys:
    - {{id: tenant-a, tenant: a, key: os.environ/TEST_KEY_A}}
""",
    )
    try:

        def ask(key: str, user: str) -> tuple[str, dict]:
            r = httpx.post(
                gw.base + "/v1/chat/completions",
                headers={"authorization": f"Bearer {key}"},
                timeout=30,
                json={"model": "ab", "user": user, "max_tokens": 3, "messages": [{"role": "user", "content": "hi"}]},
            )
            assert r.status_code == 200, r.text
            return r.headers["x-switchyard-model"], record(gw, r.headers["x-request-id"])

        served = {}
        for u in range(12):
            model, rec = ask(KEY_A, f"u{u}")
            assert rec["decision"]["arm"] == model and rec["decision"]["rule"] == "split"
            assert f"arm {model} (by user)" in rec["decision"]["reason"]
            served[u] = model
        assert set(served.values()) == {"small", "mid"}, "both arms are used"
        assert all(ask(KEY_A, f"u{u}")[0] == served[u] for u in range(12)), "each user keeps its arm"
    finally:
        gw.stop()
