"""Prompt-cache affinity: a conversation's cached prefix is priced at the cache rate on the model
that holds it, so the objective keeps the conversation there exactly when the saving outweighs
the price difference; and the gateway sends it to the very deployment that served it."""

from __future__ import annotations

import random

import httpx
import pytest

from policies.decide import CandidateInfo, PolicyRouter, RequestFeatures
from policies.quality import QualityModel
from policies.schema import parse_policy
from pricing import ModelPrice
from tests.conftest import KEY_A, start_gateway
from tests.test_ledger import record

# a is dearer per token than b but reads its cache at a tenth of its input price
PRICES = {
    "a": ModelPrice(input=1e-6, output=1e-6, cache_read=0.1e-6),
    "b": ModelPrice(input=0.8e-6, output=1e-6),
    "c": ModelPrice(input=5e-6, output=5e-6),
}


def decide(objective: str, cached: int, *, affinity: str | None = "a", cache: bool = True):
    policy = parse_policy(
        f"name: p\nbind: {{aliases: [x]}}\ncandidates: [a, b, c]\nobjective: {objective}\n"
        f"constraints: {{cache_affinity: {str(cache).lower()}}}\n"
        "quality: {priors: {a: 0.8, b: 0.8, c: 0.95}, bandit: {enabled: false}}\n"
    )
    f = RequestFeatures(
        prompt="go on", prompt_tokens=10_000, max_tokens=100, affinity=affinity, cached_prefix_tokens=cached
    )
    infos = [CandidateInfo(n, "p", price) for n, price in PRICES.items()]
    return PolicyRouter(policy, QualityModel(policy.quality, {})).decide(f, infos, random.Random(0))


def test_the_conversation_stays_where_its_cache_makes_it_cheaper() -> None:
    # 9,000 cached tokens: a costs 1,000 x 1e-6 + 9,000 x 0.1e-6 + 100 x 1e-6 = $0.0020, b $0.0081
    d = decide("{type: cheapest_above, target: 0.7}", 9000)
    assert d.order[0] == "a" and "its prompt cache holds 9000 tokens" in d.reason
    cost = {c["model"]: c["expected_cost_usd"] for c in d.candidates}
    assert cost["a"] == pytest.approx(0.0020) and cost["b"] == pytest.approx(0.0081)
    # 500 cached tokens save less than a's dearer price: b ($0.00965 for a)
    d = decide("{type: cheapest_above, target: 0.7}", 500)
    assert d.order[0] == "b" and "prompt cache" not in d.reason
    # affinity off: the cache is not counted
    assert decide("{type: cheapest_above, target: 0.7}", 9000, cache=False).order[0] == "b"


def test_the_cache_never_overrides_what_the_objective_prefers_for_quality() -> None:
    # utility that values quality: c's 0.95 is worth its price; the cheaper cached a does not displace it
    assert decide("{type: utility, lambda: 1}", 9000).order[0] == "c"
    # a quality cap objective: best under $0.05 is c, cache or not
    assert decide("{type: best_under, max_cost_usd: 0.1}", 9000).order[0] == "c"
    # but the discount can bring the cached model under a cap it would otherwise break
    d = decide("{type: best_under, max_cost_usd: 0.003}", 9000)
    assert d.order[0] == "a"


CONFIG = """
model_list:
  - model_name: chat-model
    model_info: {id: replica-1}
    litellm_params: {model: simulated/small, speed: 100}
  - model_name: chat-model
    model_info: {id: replica-2}
    litellm_params: {model: simulated/small, speed: 100}
policies: {dirs: ['%s']}
auth:
  admin_key: os.environ/TEST_ADMIN_KEY
  keys: [{id: tenant-a, tenant: a, key: os.environ/TEST_KEY_A}]
"""


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    d = tmp_path_factory.mktemp("affinity")
    (d / "policies").mkdir()
    (d / "policies" / "p.yaml").write_text(
        "name: p\nbind: {aliases: [chat]}\nobjective: {type: fixed, model: chat-model}\n"
    )
    gw = start_gateway(d / "gw", CONFIG % (d / "policies"))
    yield gw
    gw.stop()


def test_a_conversation_goes_back_to_the_replica_that_served_it(replicas) -> None:
    h = {"authorization": f"Bearer {KEY_A}"}

    def served(messages: list[dict]) -> tuple[str, str]:
        r = httpx.post(
            replicas.base + "/v1/chat/completions",
            headers=h,
            timeout=30,
            json={"model": "chat", "messages": messages, "max_tokens": 5},
        )
        assert r.status_code == 200, r.text
        return record(replicas, r.headers["x-request-id"])["attempts"][-1]["deployment"], r.json()["choices"][0][
            "message"
        ]["content"]

    # unrelated requests alternate between the two replicas (round robin)
    firsts = [served([{"role": "user", "content": f"topic {i}"}]) for i in range(4)]
    assert {dep for dep, _ in firsts} == {"replica-1", "replica-2"}
    # each conversation's next turns go where its first turn went
    for i, (dep, answer) in enumerate(firsts):
        msgs = [{"role": "user", "content": f"topic {i}"}, {"role": "assistant", "content": answer}]
        for turn in range(2):
            msgs.append({"role": "user", "content": f"and then {turn}?"})
            again, answer = served(msgs)
            assert again == dep, f"conversation {i}, turn {turn + 2}"
            msgs.append({"role": "assistant", "content": answer})


def test_a_conversations_key_is_the_next_turns_prefix_key() -> None:
    """The keys come from one running hash over the messages: the key a turn is remembered under is
    the key of the next turn's prefix (its messages less the reply and the new question), whatever
    the messages hold, and conversations that differ anywhere have different keys."""
    from router.planning import _keys

    rng = random.Random(3)
    for _ in range(50):
        turn = [
            {"role": rng.choice(["system", "user", "assistant"]), "content": "x" * rng.randint(0, 300) + str(i)}
            for i in range(rng.randint(1, 6))
        ]
        following = turn + [{"role": "assistant", "content": "reply"}, {"role": "user", "content": "next?"}]
        assert _keys(following)[len(turn)] == _keys(turn)[len(turn)]
        assert _keys(following)[len(turn) + 1] == _keys(turn + following[len(turn) : len(turn) + 1])[len(turn) + 1]
        assert set(_keys(following)) == {len(turn), len(turn) + 1, len(turn) + 2}
        changed = [dict(m) for m in turn]
        changed[0]["content"] += "!"
        assert _keys(changed)[len(turn)] != _keys(turn)[len(turn)]
        assert _keys([{"content": "a", "role": "user"}])[1] == _keys([{"role": "user", "content": "a"}])[1]
