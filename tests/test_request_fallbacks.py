"""A request naming its own fallbacks (LiteLLM's ``fallbacks``, OpenRouter's ``models``): tried in
order after the routed model fails, within the key's allow-list; bad names get a clear error."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import KEY_A, KEY_B, start_gateway, start_mock
from tests.test_ledger import record

A = {"authorization": f"Bearer {KEY_A}"}
B = {"authorization": f"Bearer {KEY_B}"}
MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def fgw(tmp_path_factory):
    d = tmp_path_factory.mktemp("fallbacks")
    mock = start_mock(d / "mock")
    api = f"{mock.base}/v1"

    def model(name: str, upstream: str) -> str:
        return (
            f"  - model_name: {name}\n    litellm_params: {{model: openai/{upstream}, api_base: '{api}', "
            "api_key: os.environ/MOCK_PROVIDER_KEY, timeout: 5}\n"
            "    model_info: {input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}\n"
        )

    config = (
        "model_list:\n"
        + model("broken", "mock-500")
        + model("good", "mock-gpt")
        + model("picky", "mock-400")
        + model("other", "mock-gpt")
        + "  - {model_name: embed, litellm_params: {model: simulated/embed, speed: 50}}\n"
        + "server: {breaker_threshold: 1000}\n"
        "auth:\n  admin_key: os.environ/TEST_ADMIN_KEY\n  keys:\n"
        "    - {id: a, tenant: a, key: os.environ/TEST_KEY_A}\n"
        "    - {id: b, tenant: b, key: os.environ/TEST_KEY_B, models: [broken, good]}\n"
    )
    gw = start_gateway(d / "gw", config)
    yield gw
    gw.stop()
    mock.stop()


def post(gw, body: dict, headers=A) -> httpx.Response:
    return httpx.post(gw.base + "/v1/chat/completions", headers=headers, json={"messages": MSG, **body}, timeout=30)


@pytest.mark.parametrize("stream", [False, True])
def test_the_requests_own_fallbacks_answer_when_its_model_fails(fgw, stream) -> None:
    for body in (
        {"model": "broken", "fallbacks": ["good"]},
        {"models": ["broken", "good"]},
        {"model": "broken", "models": ["broken", "good"]},
    ):
        r = post(fgw, {**body, "stream": stream})
        assert r.status_code == 200, (body, r.text)
        assert r.headers["x-switchyard-model"] == "good" and r.headers["x-switchyard-attempts"] == "2", body
        if stream:
            assert r.text.rstrip().endswith("data: [DONE]")
        rec = record(fgw, r.headers["x-request-id"])
        assert rec["alias"] == "broken" and rec["model"] == "good" and rec["fallbacks"] == 1
        assert [a["model"] for a in rec["attempts"]] == ["broken", "good"]
        assert rec["cost_usd"] > 0


def test_fallbacks_are_tried_in_order_and_only_after_a_retryable_failure(fgw) -> None:
    r = post(fgw, {"model": "broken", "fallbacks": ["broken", "other", "good"]})
    assert r.status_code == 200 and r.headers["x-switchyard-model"] == "other", "in the order given, once each"
    r = post(fgw, {"model": "good", "fallbacks": ["other"]})
    assert r.headers["x-switchyard-model"] == "good" and r.headers["x-switchyard-attempts"] == "1"
    # a 400 is the request's own fault: its fallbacks would refuse it too, so none is tried
    r = post(fgw, {"model": "picky", "fallbacks": ["good"]})
    assert r.status_code == 400, r.text
    assert [a["model"] for a in record(fgw, r.headers["x-request-id"])["attempts"]] == ["picky"]


def test_a_fallback_must_exist_and_be_allowed_to_the_key(fgw) -> None:
    r = post(fgw, {"model": "broken", "fallbacks": ["nope"]})
    assert r.status_code == 404 and r.json()["error"]["param"] == "fallbacks", r.text
    assert "nope" in r.json()["error"]["message"]
    r = post(fgw, {"model": "broken", "fallbacks": ["other"]}, headers=B)  # key b may use broken and good only
    assert r.status_code == 403 and "other" in r.json()["error"]["message"], r.text
    assert post(fgw, {"model": "broken", "fallbacks": ["good"]}, headers=B).status_code == 200
    r = post(fgw, {"model": "broken", "fallbacks": ["embed"]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "wrong_model_type", r.text
    for bad in (
        {"fallbacks": "good"},
        {"fallbacks": []},
        {"fallbacks": [7]},
        {"fallbacks": ["x"] * 9},
        {"models": []},
        {"models": [""]},
    ):
        r = post(fgw, {"model": "broken", **bad})
        assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error", (bad, r.text)
    r = httpx.post(fgw.base + "/v1/chat/completions", headers=A, json={"messages": MSG})  # no model at all
    assert r.status_code == 400
