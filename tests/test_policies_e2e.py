"""Routing policies through the running gateway (simulated providers and the mock upstream):
targets, constraints, fallback, circuit breaker, cascade, feedback, live reload, explanations."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest

from tests.conftest import ADMIN_KEY, KEY_A, KEY_B, mock_stats, start_gateway, start_mock
from tests.test_ledger import record

A = {"authorization": f"Bearer {KEY_A}"}
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
MSG = [{"role": "user", "content": "Tell me something about routers."}]

POLICIES = {
    "low.yaml": """
name: low
bind: {aliases: [auto-low]}
candidates: [open, small, mid, frontier]
objective: {type: cheapest_above, target: 0.6}
quality: {bandit: {enabled: false}}
""",
    "high.yaml": """
name: high
bind: {aliases: [auto-high]}
candidates: [open, small, mid, frontier]
objective: {type: cheapest_above, target: 0.85}
quality: {bandit: {enabled: false}}
""",
    "eu.yaml": """
name: eu-only
bind: {aliases: [auto-eu]}
candidates: [open, small, mid, frontier]
objective: {type: cheapest_above, target: 0.1}
constraints: {regions: [eu]}
""",
    "fallback.yaml": """
name: fallback
bind: {aliases: [auto-fallback]}
candidates: [broken, mid]
objective: {type: fixed, model: broken}
""",
    "flaky.yaml": """
name: flaky
bind: {aliases: [auto-flaky]}
candidates: [flaky, mid]
objective: {type: fixed, model: flaky}
""",
    "cascade.yaml": """
name: cascade
bind: {aliases: [auto-cascade]}
objective: {type: cascade, steps: [small, frontier], check: {type: agreement, with: [open]}}
""",
    "verified.yaml": """
name: verified
bind: {aliases: [auto-verified]}
objective:
  type: cascade
  steps: [small, frontier]
  check: {type: verifier, verifier: trusting.json, with: [open]}
""",
    "doubting.yaml": """
name: doubting
bind: {aliases: [auto-doubting]}
objective: {type: cascade, steps: [small, frontier], check: {type: verifier, verifier: doubting.json}}
""",
    "named.yaml": """
name: named
bind: {aliases: [auto-named]}
candidates: [mid, frontier, checked]
cascades:
  checked: {steps: [small, frontier], check: {type: verifier, verifier: trusting.json}}
objective: {type: utility, lambda: 0}
quality: {priors: {mid: 0.5, frontier: 0.9, checked: 0.95}, bandit: {enabled: false}}
""",
    "named-bandit.yaml": """
name: named-bandit
bind: {aliases: [auto-named-bandit]}
candidates: [frontier, checked]
cascades:
  checked: {steps: [small, frontier], check: {type: verifier, verifier: trusting.json}}
objective: {type: utility, lambda: 0}
quality: {priors: {frontier: 0.9, checked: 0.95}, bandit: {enabled: true, exploration: 0.0, prior_strength: 10}}
""",
    "three-steps.yaml": """
name: three-steps
bind: {aliases: [auto-three]}
objective: {type: cascade, steps: [small, mid, frontier], check: {type: agreement, with: [open]}}
""",
    "latency.yaml": """
name: latency
bind: {aliases: [auto-latency]}
candidates: [sluggish, quick]
objective: {type: fixed, model: sluggish}
constraints: {max_latency_ms: 150}
""",
    "bandit.yaml": """
name: bandit
bind: {aliases: [auto-bandit]}
candidates: [mid, frontier]
objective: {type: cheapest_above, target: 0.7}
quality: {bandit: {enabled: true, exploration: 0.0, prior_strength: 10}}
""",
    "bandit2.yaml": """
name: bandit-2
bind: {aliases: [auto-bandit-2]}
candidates: [mid, frontier]
objective: {type: cheapest_above, target: 0.7}
quality: {bandit: {enabled: true, exploration: 0.0, prior_strength: 10}}
""",
    "judged.yaml": """
name: judged
bind: {aliases: [auto-judged]}
objective: {type: cascade, steps: [small, frontier], check: {type: judge, with: [judge-yes]}}
""",
    "judged-no.yaml": """
name: judged-no
bind: {aliases: [auto-judged-no]}
objective: {type: cascade, steps: [small, mid, frontier], check: {type: judge, with: [judge-no]}}
""",
    "logprob.yaml": """
name: logprob
bind: {aliases: [auto-logprob]}
objective: {type: cascade, steps: [small, frontier], check: {type: logprob, min_mean_logprob: -100}}
""",
    "logprob-strict.yaml": """
name: logprob-strict
bind: {aliases: [auto-logprob-strict]}
objective: {type: cascade, steps: [small, frontier], check: {type: logprob, min_mean_logprob: 0}}
""",
    "deadline.yaml": """
name: deadline
bind: {aliases: [auto-deadline]}
candidates: [hang, mid]
objective: {type: fixed, model: hang}
deadline_s: 1.0
""",
    "patient.yaml": """
name: patient
bind: {aliases: [auto-patient]}
candidates: [hang, mid]
objective: {type: fixed, model: hang}
deadline_s: 20
""",
    "brief.yaml": """
name: brief
bind: {aliases: [auto-brief]}
candidates: [hang-brief, mid]
objective: {type: fixed, model: hang-brief}
deadline_s: 10
""",
    "tenant-b.yaml": """
name: tenant-b-perimeter
bind: {aliases: ['*'], tenants: [b]}
candidates: [open, small, mid, frontier]
objective: {type: fixed, model: open}
constraints: {no_third_party: true}
""",
}


def config(mock_base: str, policy_dir: str) -> str:
    sims = "\n".join(
        f"  - model_name: {n}\n    litellm_params: {{model: simulated/{p}, speed: 100}}"
        for n, p in (("open", "open-weights"), ("small", "small"), ("mid", "mid"), ("frontier", "frontier"))
    )
    return f"""
model_list:
{sims}
  - model_name: broken
    litellm_params: {{model: simulated/small, speed: 100, error_rate: 1.0}}
  - model_name: sluggish
    litellm_params: {{model: simulated/small, ttft_ms: 1, tokens_per_second: 50}}
  - model_name: quick
    litellm_params: {{model: simulated/small, ttft_ms: 1, tokens_per_second: 5000}}
  - model_name: flaky
    litellm_params: {{model: openai/mock-flaky, api_base: '{mock_base}/v1', api_key: os.environ/MOCK_PROVIDER_KEY}}
    model_info: {{input_cost_per_token: 0.0000001, output_cost_per_token: 0.0000001}}
  - model_name: hang
    litellm_params: {{model: openai/mock-timeout, api_base: '{mock_base}/v1', api_key: os.environ/MOCK_PROVIDER_KEY, timeout: 30}}
    model_info: {{input_cost_per_token: 0.0000001, output_cost_per_token: 0.0000001}}
  - model_name: hang-brief
    litellm_params: {{model: openai/mock-timeout, api_base: '{mock_base}/v1', api_key: os.environ/MOCK_PROVIDER_KEY, timeout: 0.3}}
    model_info: {{input_cost_per_token: 0.0000001, output_cost_per_token: 0.0000001}}
  - model_name: judge-yes
    litellm_params: {{model: openai/mock-judge-yes, api_base: '{mock_base}/v1', api_key: os.environ/MOCK_PROVIDER_KEY}}
    model_info: {{input_cost_per_token: 0.0000001, output_cost_per_token: 0.0000001}}
  - model_name: judge-no
    litellm_params: {{model: openai/mock-judge-no, api_base: '{mock_base}/v1', api_key: os.environ/MOCK_PROVIDER_KEY}}
    model_info: {{input_cost_per_token: 0.0000001, output_cost_per_token: 0.0000001}}
server: {{breaker_threshold: 3, breaker_cooldown: 1.5}}
policies: {{dirs: ['{policy_dir}'], watch_interval: 0.3}}
auth:
  admin_key: os.environ/TEST_ADMIN_KEY
  keys:
    - {{id: tenant-a, tenant: a, key: os.environ/TEST_KEY_A}}
    - {{id: tenant-b, tenant: b, key: os.environ/TEST_KEY_B}}
"""


@pytest.fixture(scope="module")
def pgw(tmp_path_factory):
    d = tmp_path_factory.mktemp("policies")
    pdir = d / "policies"
    pdir.mkdir()
    for name, text in POLICIES.items():
        (pdir / name).write_text(text)
    # verifier weights: one trusts any answer, one trusts none (a failed check must escalate)
    (pdir / "trusting.json").write_text('{"weights": {"bias": 6.0}}')
    (pdir / "doubting.json").write_text('{"weights": {"bias": -6.0, "voters_agree": 1.0}}')
    mock = start_mock(d / "mock")
    gw = start_gateway(d / "gw", config(mock.base, str(pdir)))
    gw.extra.update(mock=mock, pdir=pdir)
    yield gw
    gw.stop()
    mock.stop()


def chat(gw, model: str, headers=A, **kw) -> httpx.Response:
    return httpx.post(
        gw.base + "/v1/chat/completions",
        headers=headers,
        timeout=30,
        json={"model": model, "messages": MSG, "max_tokens": 20, **kw},
    )


def test_target_changes_the_choice_and_explains_it(pgw) -> None:
    low, high = chat(pgw, "auto-low"), chat(pgw, "auto-high")
    assert low.status_code == high.status_code == 200
    # quality priors of the simulated tiers: open 0.55, small 0.62, mid 0.78, frontier 0.90
    assert low.headers["x-switchyard-model"] == "small"
    assert high.headers["x-switchyard-model"] == "frontier"
    assert high.headers["x-switchyard-policy"] == "high"
    assert "cheapest of 1 at or above target" in high.headers["x-switchyard-reason"]
    rec = record(pgw, high.headers["x-request-id"])
    assert rec["policy"] == "high"
    d = rec["decision"]
    assert d["rule"] == "cheapest_above(0.85)" and d["order"][0] == "frontier"
    by_model = {c["model"]: c for c in d["candidates"]}
    assert by_model["small"]["quality"] == pytest.approx(0.62) and by_model["small"]["expected_cost_usd"] > 0
    assert by_model["frontier"]["expected_cost_usd"] > by_model["mid"]["expected_cost_usd"]


def test_constraints_exclude_the_right_candidates(pgw) -> None:
    r = chat(pgw, "auto-eu")
    assert r.headers["x-switchyard-model"] == "small"  # the only eu candidate
    d = record(pgw, r.headers["x-request-id"])["decision"]
    removed = {c["model"]: c["removed_by"] for c in d["candidates"]}
    assert removed["mid"] == "region us not allowed" and removed["open"] == "region self-hosted not allowed"
    # capability: an image needs vision, which small and open lack
    img = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        }
    ]
    r = httpx.post(
        pgw.base + "/v1/chat/completions", headers=A, json={"model": "auto-low", "messages": img, "max_tokens": 5}
    )
    assert r.headers["x-switchyard-model"] == "mid"
    removed = {c["model"]: c["removed_by"] for c in record(pgw, r.headers["x-request-id"])["decision"]["candidates"]}
    assert removed["small"] == "lacks vision" and removed["open"] == "lacks vision"
    # context length: 140k tokens of prompt exceed open, mid and frontier (131k / 128k windows)
    long = [{"role": "user", "content": "route " * 140_000}]
    r = httpx.post(
        pgw.base + "/v1/chat/completions",
        headers=A,
        timeout=60,
        json={"model": "auto-high", "messages": long, "max_tokens": 5},
    )
    assert r.status_code == 200 and r.headers["x-switchyard-model"] == "small", r.text
    removed = {c["model"]: c["removed_by"] for c in record(pgw, r.headers["x-request-id"])["decision"]["candidates"]}
    assert removed["frontier"].startswith("context window 128000")


def test_concrete_model_keeps_constraints_and_skips_objective(pgw) -> None:
    h = {"authorization": f"Bearer {KEY_B}"}
    r = chat(pgw, "open", headers=h)
    assert r.status_code == 200 and r.headers["x-switchyard-model"] == "open"
    r = chat(pgw, "mid", headers=h)
    assert r.status_code == 400 and r.json()["error"]["code"] == "no_eligible_model"
    assert "third-party processing not allowed" in r.json()["error"]["message"]
    assert chat(pgw, "mid").headers["x-switchyard-model"] == "mid"  # tenant a has no such perimeter


def test_fallback_on_injected_failure(pgw) -> None:
    r = chat(pgw, "auto-fallback")
    assert r.status_code == 200 and r.headers["x-switchyard-model"] == "mid"
    rec = record(pgw, r.headers["x-request-id"])
    assert [a["model"] for a in rec["attempts"]] == ["broken", "mid"] and rec["attempts"][0]["error"]


def test_circuit_breaker_opens_and_closes(pgw) -> None:
    mock = pgw.extra["mock"]
    httpx.post(mock.base + "/_flaky", json={"fail": True})
    for _ in range(3):  # three consecutive failures open the circuit
        r = chat(pgw, "auto-flaky")
        assert r.headers["x-switchyard-attempts"] == "2" and r.headers["x-switchyard-model"] == "mid"
    before = httpx.get(mock.base + "/_stats").json()["requests"].get("mock-flaky", 0)
    r = chat(pgw, "auto-flaky")
    assert r.headers["x-switchyard-attempts"] == "1", "open circuit: the flaky deployment is skipped"
    assert httpx.get(mock.base + "/_stats").json()["requests"].get("mock-flaky", 0) == before
    assert 'switchyard_circuit_breaker_opened_total{model="flaky"} 1.0' in httpx.get(pgw.base + "/metrics").text
    httpx.post(mock.base + "/_flaky", json={"fail": False})
    time.sleep(1.7)  # cooldown: the next request probes, succeeds, and closes the circuit
    r = chat(pgw, "auto-flaky")
    assert r.headers["x-switchyard-model"] == "flaky" and r.headers["x-switchyard-attempts"] == "1"
    assert chat(pgw, "auto-flaky").headers["x-switchyard-model"] == "flaky"


def test_cascade_escalates_when_the_check_fails(pgw) -> None:
    r = chat(pgw, "auto-cascade", seed=5)
    assert r.status_code == 200
    # small's and open's simulated answers differ, so the agreement check fails and frontier answers
    assert r.headers["x-switchyard-model"] == "frontier"
    rec = record(pgw, r.headers["x-request-id"])
    assert [a["model"] for a in rec["attempts"]] == ["open", "small", "frontier"]
    assert rec["decision"]["cascade"]["steps"] == ["small", "frontier"]
    assert rec["fallbacks"] == 0, "an escalation and a check are not fallbacks: nothing failed"
    body = r.json()
    total = rec["prompt_tokens"]
    assert total > body["usage"]["prompt_tokens"], "every call of the cascade is metered"
    assert rec["charge_usd"] == pytest.approx(float(r.headers["x-switchyard-charge-usd"]))


def test_a_longer_cascade_asks_its_checker_once(pgw) -> None:
    r = chat(pgw, "auto-three", seed=5)
    assert r.status_code == 200 and r.headers["x-switchyard-model"] == "frontier"
    rec = record(pgw, r.headers["x-request-id"])
    # open's answer is compared with small's and then with mid's, but asked for (and paid) once
    assert [a["model"] for a in rec["attempts"]] == ["open", "small", "mid", "frontier"]


def test_a_judge_model_accepts_or_escalates_each_answer(pgw) -> None:
    r = chat(pgw, "auto-judged", seed=4)
    assert r.status_code == 200 and r.headers["x-switchyard-model"] == "small", "the judge said yes"
    # the judge was shown the conversation and small's answer, and asked for a one-word verdict
    sent = mock_stats(pgw.extra["mock"])["last_body"]
    assert sent["model"] == "mock-judge-yes" and sent["max_tokens"] == 8
    question = sent["messages"][0]["content"]
    assert "User: Tell me something about routers." in question
    assert r.json()["choices"][0]["message"]["content"] in question
    rec = record(pgw, r.headers["x-request-id"])
    assert [(a["model"], a.get("note")) for a in rec["attempts"]] == [("judge-yes", "cascade check"), ("small", None)]
    assert rec["decision"]["cascade"]["check"]["type"] == "judge"
    # a judge that says no sends every checked step's answer to it, then the last step answers
    r = chat(pgw, "auto-judged-no", seed=4)
    assert r.status_code == 200 and r.headers["x-switchyard-model"] == "frontier"
    rec = record(pgw, r.headers["x-request-id"])
    assert [a["model"] for a in rec["attempts"]] == ["judge-no", "small", "judge-no", "mid", "frontier"]
    assert rec["charge_usd"] == pytest.approx(float(r.headers["x-switchyard-charge-usd"]))
    assert rec["completion_tokens"] > r.json()["usage"]["completion_tokens"], "the judges' and steps' calls are metered"
    metrics = httpx.get(pgw.base + "/metrics").text
    for step in ("small", "mid"):  # each refused step is counted, for the escalation rate
        assert f'switchyard_cascade_escalations_total{{model="{step}",policy="judged-no"}} 1.0' in metrics


def test_a_logprob_check_accepts_or_escalates_without_sending_unasked_logprobs(pgw) -> None:
    r = chat(pgw, "auto-logprob", seed=4)
    assert r.status_code == 200 and r.headers["x-switchyard-model"] == "small"
    assert r.json()["choices"][0]["logprobs"] is None, "the gateway asked for them; the client did not"
    r = chat(pgw, "auto-logprob", seed=4, logprobs=True)
    assert r.json()["choices"][0]["logprobs"]["content"], "asked for: passed on"
    r = chat(pgw, "auto-logprob-strict", seed=4)  # a mean log-probability of 0 means certainty: escalate
    assert r.status_code == 200 and r.headers["x-switchyard-model"] == "frontier"
    assert [a["model"] for a in record(pgw, r.headers["x-request-id"])["attempts"]] == ["small", "frontier"]


def test_the_request_deadline_bounds_attempts_and_fallbacks(pgw) -> None:
    # hang never answers (the mock sleeps 30 s): the policy's 1 s deadline cuts the attempt and
    # leaves no time for the fallback
    t0 = time.monotonic()
    r = chat(pgw, "auto-deadline")
    assert r.status_code == 504 and r.json()["error"]["code"] == "deadline_exceeded", r.text
    assert time.monotonic() - t0 < 5
    rec = record(pgw, r.headers["x-request-id"])
    assert [(a["model"], a["error"]) for a in rec["attempts"]] == [("hang", "timeout")]
    # the client's own timeout (seconds, LiteLLM's field) shortens a longer policy deadline, and is
    # not forwarded upstream
    t0 = time.monotonic()
    r = chat(pgw, "auto-patient", timeout=0.5)
    assert r.status_code == 504 and r.json()["error"]["code"] == "deadline_exceeded"
    assert time.monotonic() - t0 < 5
    assert "timeout" not in mock_stats(pgw.extra["mock"])["last_body"]
    # a stream: the deadline bounds the wait for the first chunk
    t0 = time.monotonic()
    with httpx.stream(
        "POST",
        pgw.base + "/v1/chat/completions",
        headers=A,
        timeout=30,
        json={"model": "auto-deadline", "messages": MSG, "max_tokens": 5, "stream": True},
    ) as s:
        assert s.status_code == 504
        assert '"deadline_exceeded"' in s.read().decode()
    assert time.monotonic() - t0 < 5
    # time left after a failed attempt: the fallback answers
    r = chat(pgw, "auto-brief")
    assert r.status_code == 200 and r.headers["x-switchyard-model"] == "mid"
    assert [a["model"] for a in record(pgw, r.headers["x-request-id"])["attempts"]] == ["hang-brief", "mid"]
    bad = chat(pgw, "auto-patient", timeout=-1)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "timeout"


def test_latency_ceiling_uses_live_output_rate(pgw) -> None:
    # unmeasured, the slow deployment is allowed; once its output rate is known (~50 tokens/s), the
    # expected time to the last token breaks the 150 ms ceiling and the policy routes around it
    first = chat(pgw, "auto-latency", seed=3, max_tokens=40)
    assert first.status_code == 200 and first.headers["x-switchyard-model"] == "sluggish"
    assert first.json()["usage"]["completion_tokens"] >= 10
    r = chat(pgw, "auto-latency", seed=3, max_tokens=40)
    assert r.status_code == 200 and r.headers["x-switchyard-model"] == "quick"
    removed = {c["model"]: c["removed_by"] for c in record(pgw, r.headers["x-request-id"])["decision"]["candidates"]}
    assert removed["quick"] is None and removed["sluggish"].startswith("expected latency")
    assert "> 150 ms" in removed["sluggish"]


def test_verifier_check_accepts_or_escalates(pgw) -> None:
    r = chat(pgw, "auto-verified", seed=11, max_tokens=400)
    assert r.status_code == 200 and r.headers["x-switchyard-model"] == "small"
    rec = record(pgw, r.headers["x-request-id"])
    assert [a["model"] for a in rec["attempts"]] == ["open", "small"], "the voter is called and metered"
    # the usage reported is the answer's own (small's), not the checker's; the charge covers both
    assert r.json()["usage"] == chat(pgw, "small", seed=11, max_tokens=400).json()["usage"]
    assert r.json()["usage"] != chat(pgw, "open", seed=11, max_tokens=400).json()["usage"]
    assert rec["completion_tokens"] > r.json()["usage"]["completion_tokens"]
    r = chat(pgw, "auto-doubting")
    assert r.status_code == 200 and r.headers["x-switchyard-model"] == "frontier"
    rec = record(pgw, r.headers["x-request-id"])
    assert [a["model"] for a in rec["attempts"]] == ["small", "frontier"]
    assert rec["decision"]["cascade"]["check"]["type"] == "verifier"


def test_a_named_cascade_wins_the_objective_and_runs(pgw) -> None:
    r = chat(pgw, "auto-named")
    assert r.status_code == 200 and r.headers["x-switchyard-model"] == "small", "the verifier accepted small's answer"
    rec = record(pgw, r.headers["x-request-id"])
    assert rec["decision"]["cascade"]["name"] == "checked" and rec["decision"]["order"] == ["small", "frontier"]
    assert "checked q=0.95" in r.headers["x-switchyard-reason"]
    # a stream cannot be checked before it is sent: the cascade steps aside, the best model streams
    with httpx.stream(
        "POST",
        pgw.base + "/v1/chat/completions",
        headers=A,
        timeout=30,
        json={"model": "auto-named", "messages": MSG, "max_tokens": 5, "stream": True},
    ) as s:
        assert s.status_code == 200 and s.headers["x-switchyard-model"] == "frontier"
        s.read()


def test_feedback_shifts_the_bandit(pgw) -> None:
    r = chat(pgw, "auto-bandit")
    assert r.headers["x-switchyard-model"] == "mid"  # mid 0.78 >= 0.7 and cheaper than frontier
    for _ in range(4):
        rid = chat(pgw, "auto-bandit").headers["x-request-id"]
        f = httpx.post(pgw.base + "/v1/feedback", headers=A, json={"request_id": rid, "score": 0.0})
        assert f.status_code == 200, f.text
    # prior 0.78 with strength 10, four zeros: (7.8 + 0) / 14 = 0.56 < 0.7
    assert chat(pgw, "auto-bandit").headers["x-switchyard-model"] == "frontier"
    # tenant-scoped: b cannot score a's request; nonsense scores are refused
    f = httpx.post(
        pgw.base + "/v1/feedback", headers={"authorization": f"Bearer {KEY_B}"}, json={"request_id": rid, "score": 1.0}
    )
    assert f.status_code == 404
    assert httpx.post(pgw.base + "/v1/feedback", headers=A, json={"request_id": rid, "score": 7}).status_code == 400


def test_feedback_on_a_named_cascade_moves_the_cascades_own_arm(pgw) -> None:
    # the cascade wins (0.95 > 0.9) and small answers: the score belongs to the cascade the policy
    # chose, not to small (which this policy never chooses on its own)
    r = chat(pgw, "auto-named-bandit")
    assert r.headers["x-switchyard-model"] == "small", r.headers["x-switchyard-reason"]
    f = httpx.post(pgw.base + "/v1/feedback", headers=A, json={"request_id": r.headers["x-request-id"], "score": 0.0})
    assert f.status_code == 200, f.text
    # the cascade's posterior: (9.5 + 0) / 11 = 0.86 < frontier's 0.9
    r = chat(pgw, "auto-named-bandit")
    assert r.headers["x-switchyard-model"] == "frontier", r.headers["x-switchyard-reason"]
    rows = {c["model"]: c for c in record(pgw, r.headers["x-request-id"])["decision"]["candidates"]}
    assert rows["checked"]["quality"] == round(9.5 / 11, 4)


def test_a_request_scored_again_replaces_its_score(pgw) -> None:
    # one request counts once: scoring it again swaps the score, so repeating a score cannot move
    # the bandit that every tenant of the policy shares
    assert chat(pgw, "auto-bandit-2").headers["x-switchyard-model"] == "mid"
    rid = chat(pgw, "auto-bandit-2").headers["x-request-id"]
    replies = [
        httpx.post(pgw.base + "/v1/feedback", headers=A, json={"request_id": rid, "score": 0.0}).json()
        for _ in range(10)
    ]
    assert [r["replaced"] for r in replies] == [False] + [True] * 9
    # prior 0.78 with strength 10 and one zero: 7.8 / 11 = 0.71 >= 0.7 (ten zeros would give 0.39)
    assert chat(pgw, "auto-bandit-2").headers["x-switchyard-model"] == "mid"
    # and the latest score is the one that counts: 1.0 replaces the zero
    assert httpx.post(pgw.base + "/v1/feedback", headers=A, json={"request_id": rid, "score": 1.0}).json()["replaced"]
    rid2 = chat(pgw, "auto-bandit-2").headers["x-request-id"]
    httpx.post(pgw.base + "/v1/feedback", headers=A, json={"request_id": rid2, "score": 0.0})
    # (7.8 + 1 + 0) / 12 = 0.73: still mid; had the new score been ignored (7.8 / 12 = 0.65) or
    # added as one more (8.8 / 13 = 0.68), the request would go to frontier
    assert chat(pgw, "auto-bandit-2").headers["x-switchyard-model"] == "mid"


def test_live_reload_and_invalid_file_keeps_old_policy(pgw) -> None:
    pdir = pgw.extra["pdir"]
    assert chat(pgw, "auto-low").headers["x-switchyard-model"] == "small"
    (pdir / "low.yaml").write_text(POLICIES["low.yaml"].replace("target: 0.6", "target: 0.7"))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and chat(pgw, "auto-low").headers["x-switchyard-model"] != "mid":
        time.sleep(0.1)
    assert chat(pgw, "auto-low").headers["x-switchyard-model"] == "mid", "the watcher picked up the change"
    (pdir / "low.yaml").write_text(POLICIES["low.yaml"].replace("target: 0.6", "target: 7"))
    r = httpx.post(pgw.base + "/admin/policies/reload", headers=ADMIN)
    assert r.status_code == 400 and "objective.cheapest_above.target" in r.json()["error"]["message"]
    time.sleep(0.5)
    assert chat(pgw, "auto-low").headers["x-switchyard-model"] == "mid", "the previous policy stays"
    (pdir / "low.yaml").write_text(POLICIES["low.yaml"])
    r = httpx.post(pgw.base + "/admin/policies/reload", headers=ADMIN)
    assert r.status_code == 200 and "low" in r.json()["policies"]
    assert chat(pgw, "auto-low").headers["x-switchyard-model"] == "small"
    assert httpx.post(pgw.base + "/admin/policies/reload", headers=A).status_code == 403


def test_reloads_under_load_drop_no_request(pgw) -> None:
    """Twenty reloads, each made while requests are in flight (the next one waits until the load has
    moved on: synchronised on progress, not on a time window a busy machine could miss)."""
    pdir = pgw.extra["pdir"]
    pid = pgw.proc.pid
    served: list[tuple[int, str]] = []
    stop = threading.Event()

    async def load() -> None:
        async with httpx.AsyncClient(timeout=30) as client:

            async def worker() -> None:
                while not stop.is_set():
                    r = await client.post(
                        pgw.base + "/v1/chat/completions",
                        headers=A,
                        json={"model": "auto-low", "messages": MSG, "max_tokens": 3},
                    )
                    served.append((r.status_code, r.headers.get("x-switchyard-model", "")))

            await asyncio.gather(*(worker() for _ in range(6)))

    thread = threading.Thread(target=lambda: asyncio.run(load()))
    thread.start()
    reloads = 0
    try:
        while reloads < 20:  # alternate the target: the routed model flips between small and mid
            seen = len(served)
            target = "0.7" if reloads % 2 == 0 else "0.6"
            (pdir / "low.yaml").write_text(POLICIES["low.yaml"].replace("target: 0.6", f"target: {target}"))
            assert httpx.post(pgw.base + "/admin/policies/reload", headers=ADMIN).status_code == 200
            reloads += 1
            deadline = time.monotonic() + 60
            while len(served) < seen + 3 and thread.is_alive() and time.monotonic() < deadline:
                time.sleep(0.01)  # requests were served under this version before the next swap
        while len(served) < 50 and thread.is_alive():
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join()
    (pdir / "low.yaml").write_text(POLICIES["low.yaml"])
    httpx.post(pgw.base + "/admin/policies/reload", headers=ADMIN)
    assert reloads == 20 and len(served) >= 50, (reloads, len(served))
    assert {status for status, _ in served} == {200}, "no request failed while policies were swapped"
    assert {model for _, model in served} == {"small", "mid"}, "both versions of the policy served"
    assert pgw.proc.pid == pid and pgw.proc.poll() is None, "the same process throughout"
