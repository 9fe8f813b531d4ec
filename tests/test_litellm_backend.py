"""The litellm-translated backend, against the mock upstream process (litellm speaking 'openai')."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, Iterator

import httpx
import pytest

from tests.conftest import KEY_A, PROVIDER_KEY, Proc, mock_config, mock_stats, start_gateway
from tests.test_ledger import record

H = {"authorization": f"Bearer {KEY_A}"}
MSG = [{"role": "user", "content": "hi"}]


def test_litellm_backend_non_stream_and_stream(gateway, openai_schemas) -> None:
    from tests.schema import assert_valid

    r = httpx.post(
        gateway.base + "/v1/chat/completions",
        headers=H,
        timeout=60,
        json={"model": "via-litellm", "messages": MSG, "max_tokens": 3},
    )
    assert r.status_code == 200, r.text
    data = r.json()
    assert_valid(openai_schemas, "CreateChatCompletionResponse", data)
    assert data["model"] == "via-litellm" and data["usage"]["completion_tokens"] == 3
    assert float(r.headers["x-switchyard-cost-usd"]) > 0
    assert mock_stats(gateway.extra["mock"])["last_headers"]["authorization"] == f"Bearer {PROVIDER_KEY}"

    with httpx.stream(
        "POST",
        gateway.base + "/v1/chat/completions",
        headers=H,
        timeout=60,
        json={
            "model": "via-litellm",
            "messages": MSG,
            "max_tokens": 3,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    ) as s:
        ev = [line[6:] for line in s.iter_lines() if line.startswith("data: ")]
    assert ev[-1] == "[DONE]"
    chunks = [json.loads(e) for e in ev[:-1]]
    for c in chunks:
        assert_valid(openai_schemas, "CreateChatCompletionStreamResponse", c)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "hello world world"
    assert chunks[-1]["usage"]["completion_tokens"] == 3


# -- native providers through litellm, rotation ----------------------------------------------------
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
PRICE = "model_info: {input_cost_per_token: 0.000003, output_cost_per_token: 0.000015}"


@pytest.fixture(scope="module")
def native(mock_upstream: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    m = mock_upstream.base
    key = "api_key: os.environ/MOCK_PROVIDER_KEY"
    extra = [
        ("claude", f"{{model: anthropic/claude-mock, api_base: '{m}', {key}}}", PRICE),
        ("claude-529", f"{{model: anthropic/claude-mock-529, api_base: '{m}', {key}}}", PRICE),
        ("gem", f"{{model: gemini/gemini-mock, api_base: '{m}/gemini', {key}}}", PRICE),
        ("twin", f"{{model: openai/mock-gpt, api_base: '{m}/v1', {key}}}", "model_info: {id: twin-a}"),
        ("twin", f"{{model: openai/mock-gpt, api_base: '{m}/v1', {key}}}", "model_info: {id: twin-b}"),
        ("heavy", f"{{model: openai/mock-gpt, api_base: '{m}/v1', {key}, weight: 3}}", "model_info: {id: heavy-a}"),
        ("heavy", f"{{model: openai/mock-gpt, api_base: '{m}/v1', {key}}}", "model_info: {id: heavy-b}"),
    ]
    lines = "".join(f"  - model_name: {n}\n    litellm_params: {p}\n    {i}\n" for n, p, i in extra)
    cfg = mock_config(m).replace("model_list:\n", "model_list:\n" + lines, 1)
    gw = start_gateway(tmp_path_factory.mktemp("native"), cfg)
    gw.extra["mock"] = mock_upstream
    yield gw
    gw.stop()


def _chat(gw: Proc, **body: Any) -> httpx.Response:
    return httpx.post(gw.base + "/v1/chat/completions", headers=H, json=body, timeout=60)


def _stream_chunks(gw: Proc, **body: Any) -> list[dict[str, Any]]:
    with httpx.stream(
        "POST",
        gw.base + "/v1/chat/completions",
        headers=H,
        timeout=60,
        json={**body, "stream": True, "stream_options": {"include_usage": True}},
    ) as s:
        assert s.status_code == 200, s.read()
        ev = [line[6:] for line in s.iter_lines() if line.startswith("data: ")]
    assert ev[-1] == "[DONE]"
    return [json.loads(e) for e in ev[:-1]]


@pytest.mark.parametrize("model,key_header", [("claude", "x-api-key"), ("gem", "x-goog-api-key")])
def test_tool_calls_round_trip_through_litellm(native: Proc, openai_schemas, model: str, key_header: str) -> None:
    from tests.schema import assert_valid

    # 1. the model asks for the tool (non-streaming)
    r = _chat(native, model=model, messages=MSG, tools=TOOLS, tool_choice="auto")
    assert r.status_code == 200, r.text
    body = r.json()
    assert_valid(openai_schemas, "CreateChatCompletionResponse", body)
    call = body["choices"][0]["message"]["tool_calls"][0]
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    assert call["function"]["name"] == "get_weather" and json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert mock_stats(native.extra["mock"])["last_headers"][key_header] == PROVIDER_KEY
    assert float(r.headers["x-switchyard-cost-usd"]) == pytest.approx(11 * 3e-6 + 5 * 15e-6)
    # 2. the tool's result goes back: the model answers in text
    follow = MSG + [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": '{"temp_c": 21}'},
    ]
    r2 = _chat(native, model=model, messages=follow, tools=TOOLS)
    assert r2.status_code == 200, r2.text
    assert r2.json()["choices"][0]["message"]["content"] == "hello world world"
    # 3. the same, streamed: the tool call's arguments arrive whole once the deltas are joined
    chunks = _stream_chunks(native, model=model, messages=MSG, tools=TOOLS)
    for c in chunks:
        assert_valid(openai_schemas, "CreateChatCompletionStreamResponse", c)
    deltas = [tc for c in chunks if c["choices"] for tc in c["choices"][0]["delta"].get("tool_calls") or ()]
    assert deltas and deltas[0]["function"]["name"] == "get_weather"
    assert json.loads("".join(d["function"].get("arguments") or "" for d in deltas)) == {"city": "Paris"}
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]] == [
        "tool_calls"
    ]
    assert chunks[-1]["usage"]["completion_tokens"] == 5
    text = "".join(
        c["choices"][0]["delta"].get("content") or ""
        for c in _stream_chunks(native, model=model, messages=follow, tools=TOOLS)
        if c["choices"]
    )
    assert text == "hello world world"


def test_overloaded_provider_is_503_with_retry_after_and_no_internals(native: Proc) -> None:
    for stream in (False, True):
        r = _chat(native, model="claude-529", messages=MSG, stream=stream)
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == "3"
        err = r.json()["error"]
        assert err["code"] == "upstream_unavailable" and "Overloaded" in err["message"]
        for leak in ("Traceback", ".py", "litellm", "AnthropicError", PROVIDER_KEY):
            assert leak not in r.text
        rec = record(native, r.headers["x-request-id"])
        assert rec["status"] == 503
    log = native.output()
    assert "Give Feedback" not in log and "LiteLLM.Info" not in log, "litellm's help banner is silenced"


def test_a_models_deployments_take_turns_by_weight(native: Proc) -> None:
    """200 requests over two deployments of one model split 50/50; weights 3:1 split 75/25."""
    for model, want in (("twin", {"twin-a": 100, "twin-b": 100}), ("heavy", {"heavy-a": 150, "heavy-b": 50})):
        with httpx.Client(timeout=30) as client:
            rids = [
                client.post(
                    native.base + "/v1/chat/completions",
                    headers=H,
                    json={"model": model, "messages": MSG, "max_tokens": 2},
                ).headers["x-request-id"]
                for _ in range(200)
            ]
        served = Counter(record(native, rid)["attempts"][-1]["deployment"] for rid in rids)
        assert served == want, served


def test_json_object_reaches_claude_as_a_json_schema(native: Proc) -> None:
    """litellm drops response_format json_object for Anthropic; it is sent as a schema of any object
    (a forced tool call upstream) and the answer comes back as JSON content."""
    r = _chat(native, model="claude", messages=MSG, response_format={"type": "json_object"})
    assert r.status_code == 200, r.text
    assert json.loads(r.json()["choices"][0]["message"]["content"]) == {"city": "Paris"}
    sent = mock_stats(native.extra["mock"])["last_body"]
    assert sent["tool_choice"]["type"] == "tool" and sent["tools"][0]["input_schema"] == {"type": "object"}
