"""Anthropic's Messages API (POST /v1/messages, /v1/messages/count_tokens) with the official
anthropic SDK against the embedded default (simulated providers)."""

from __future__ import annotations

import json

import anthropic
import httpx
import pytest
from anthropic.types import Message

from tests.conftest import Proc, ledger_record
from tests.sdk_shape import assert_sdk_shape, unknown_fields

WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
ASK = [{"role": "user", "content": "Weather in Paris?"}]


def client(p: Proc, **kw) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=p.base, api_key=p.extra["key"], max_retries=0, **kw)


def test_create_parses_as_the_sdks_message_and_is_metered(embedded: Proc) -> None:
    raw = client(embedded).messages.with_raw_response.create(
        model="sim-small",
        max_tokens=2000,
        system=[{"type": "text", "text": "Be brief."}],
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "Name a colour.", "cache_control": {"type": "ephemeral"}}],
            }
        ],
        metadata={"user_id": "u-1"},
        stop_sequences=["zzz"],
        extra_body={"temperature": 0.5},
    )
    msg = raw.parse()
    assert_sdk_shape(Message, json.loads(raw.http_response.text))
    assert msg.type == "message" and msg.role == "assistant" and msg.model == "sim-small"
    assert msg.content[0].type == "text" and msg.content[0].text and msg.stop_reason == "end_turn"
    assert msg.id.startswith("msg_") and msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0
    row = ledger_record(embedded, embedded.extra["key"], raw.headers["x-request-id"])
    assert row["endpoint"] == "messages" and row["model"] == "sim-small"
    assert row["prompt_tokens"] == msg.usage.input_tokens and row["completion_tokens"] == msg.usage.output_tokens
    assert row["charge_usd"] == pytest.approx(float(raw.headers["x-switchyard-charge-usd"]), rel=1e-6)


def test_max_tokens_stop_reason(embedded: Proc) -> None:
    msg = client(embedded).messages.create(
        model="sim-small", max_tokens=3, messages=[{"role": "user", "content": "Essay."}]
    )
    assert msg.stop_reason == "max_tokens" and msg.usage.output_tokens == 3


def test_stream_text_with_the_sdks_helper(embedded: Proc) -> None:
    with client(embedded).messages.stream(
        model="sim-small", max_tokens=2000, messages=[{"role": "user", "content": "Say hello."}]
    ) as s:
        kinds = [e.type for e in s]
        final = s.get_final_message()
    text = final.content[0].text
    assert text and final.stop_reason == "end_turn" and final.usage.output_tokens > 0 and final.usage.input_tokens > 0
    core = [k for k in kinds if k not in ("text",)]  # the helper adds "text" events beside the raw deltas
    assert core[:3] == ["message_start", "content_block_start", "content_block_delta"], core
    assert core[-3:] == ["content_block_stop", "message_delta", "message_stop"], core


def test_raw_stream_event_order(embedded: Proc) -> None:
    events = list(
        client(embedded).messages.create(
            model="sim-small", max_tokens=2000, stream=True, messages=[{"role": "user", "content": "Say hello."}]
        )
    )
    kinds = [e.type for e in events]
    for e in events:  # every event is one the SDK knows, with no field it does not
        assert not unknown_fields(e), e
    body = kinds[2:-3]
    assert kinds[:2] == ["message_start", "content_block_start"] and set(body) == {"content_block_delta"}
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]


def test_tool_use_round_trip(embedded: Proc) -> None:
    c = client(embedded)
    first = c.messages.create(
        model="sim-small", max_tokens=500, messages=ASK, tools=[WEATHER], tool_choice={"type": "any"}
    )
    assert first.stop_reason == "tool_use"
    use = next(b for b in first.content if b.type == "tool_use")
    assert use.name == "get_weather" and isinstance(use.input, dict) and "city" in use.input
    follow = ASK + [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": [{"type": "text", "text": "21C"}]}],
        },
    ]
    second = c.messages.create(model="sim-small", max_tokens=500, messages=follow, tools=[WEATHER])
    assert second.stop_reason == "end_turn" and second.content[0].type == "text"


def test_streamed_tool_use_gives_whole_input(embedded: Proc) -> None:
    with client(embedded).messages.stream(
        model="sim-small",
        max_tokens=500,
        messages=ASK,
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather"},
    ) as s:
        kinds = [e.type for e in s]
        final = s.get_final_message()
    assert "input_json" in kinds
    use = final.content[0]
    assert use.type == "tool_use" and use.name == "get_weather" and isinstance(use.input.get("city"), str)
    assert final.stop_reason == "tool_use"


def test_count_tokens(embedded: Proc) -> None:
    c = client(embedded)
    short = c.messages.count_tokens(model="sim-small", messages=[{"role": "user", "content": "hi"}]).input_tokens
    long = c.messages.count_tokens(
        model="sim-small", messages=[{"role": "user", "content": "hi " * 200}], system="Be brief.", tools=[WEATHER]
    ).input_tokens
    assert 0 < short < long
    # the count is the prompt the request is metered at
    msg = c.messages.create(model="sim-small", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    assert msg.usage.input_tokens == short


def test_typed_errors(embedded: Proc) -> None:
    with pytest.raises(anthropic.AuthenticationError) as e:
        anthropic.Anthropic(base_url=embedded.base, api_key="sk-wrong", max_retries=0).messages.create(
            model="sim-small", max_tokens=5, messages=ASK
        )
    assert e.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.NotFoundError) as e:
        client(embedded).messages.create(model="claude-nope", max_tokens=5, messages=ASK)
    assert e.value.body["type"] == "error" and e.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.NotFoundError):
        client(embedded).messages.count_tokens(model="claude-nope", messages=ASK)


@pytest.mark.parametrize(
    "body,needle",
    [
        ({"model": "sim-small", "messages": ASK}, "max_tokens"),
        ({"model": "sim-small", "max_tokens": 5, "messages": []}, "messages"),
        ({"model": "sim-small", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}, "messages[0].role"),
        (
            {"model": "sim-small", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "video"}]}]},
            "messages[0].content[0].type",
        ),
        (
            {
                "model": "sim-small",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file"}}]}],
            },
            "messages[0].content[0].source",
        ),
        ({"model": "sim-small", "max_tokens": 5, "messages": ASK, "temperature": 1.5}, "temperature"),
        (
            {
                "model": "sim-small",
                "max_tokens": 5,
                "messages": ASK,
                "tools": [{"name": "bad name!", "input_schema": {}}],
            },
            "tools[0].name",
        ),
    ],
)
def test_bad_input_gets_anthropics_error_shape(embedded: Proc, body: dict, needle: str) -> None:
    r = httpx.post(
        embedded.base + "/v1/messages",
        json=body,
        headers={"x-api-key": embedded.extra["key"], "anthropic-version": "2023-06-01"},
    )
    assert r.status_code == 400, r.text
    err = r.json()
    assert set(err) == {"type", "error"} and err["type"] == "error"
    assert err["error"]["type"] == "invalid_request_error" and needle in err["error"]["message"]
    bad_json = httpx.post(
        embedded.base + "/v1/messages", content=b"{nope", headers={"x-api-key": embedded.extra["key"]}
    )
    assert bad_json.status_code == 400 and bad_json.json()["error"]["type"] == "invalid_request_error"


def test_images_and_documents_reach_the_model(embedded: Proc) -> None:
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
    msg = client(embedded).messages.create(
        model="sim-small",
        max_tokens=20,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
                    {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "A memo."}},
                    {"type": "text", "text": "Describe both."},
                ],
            }
        ],
    )
    assert msg.content[0].text


def test_a_large_agent_loop(embedded: Proc) -> None:
    """A coding agent's shape: a system prompt of tens of thousands of tokens, dozens of tools, and a
    long tool-use loop; the repeated prefix is read from the (simulated) cache and priced at the
    cache rate, reported as Anthropic's cache_read_input_tokens."""
    c = client(embedded)
    system = " ".join(f"Rule {i}: keep the change small, test it, and explain it in one line." for i in range(2500))
    tools = [
        {
            "name": f"tool_{i}",
            "description": f"Tool number {i} of the workspace.",
            "input_schema": {
                "type": "object",
                "properties": {"path": {"type": "string"}, "line": {"type": "integer"}},
                "required": ["path"],
            },
        }
        for i in range(40)
    ]
    messages: list[dict] = [{"role": "user", "content": "Fix the failing test."}]
    calls = 0
    last = None
    for _ in range(12):
        raw = c.messages.with_raw_response.create(
            model="sim-small", max_tokens=300, system=system, tools=tools, messages=messages
        )
        msg = raw.parse()
        last = (msg, raw.headers["x-request-id"])
        messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in msg.content]})
        if msg.stop_reason == "tool_use":
            calls += 1
            messages.append(
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": b.id, "content": f"ok: {b.input}"}
                        for b in msg.content
                        if b.type == "tool_use"
                    ],
                }
            )
        else:
            messages.append({"role": "user", "content": "Next step."})
    assert calls >= 5 and len(messages) == 25
    msg, rid = last
    assert msg.usage.input_tokens + msg.usage.cache_read_input_tokens > 40_000
    assert msg.usage.cache_read_input_tokens > 30_000  # the prefix the previous turn sent
    row = ledger_record(embedded, embedded.extra["key"], rid)
    assert row["cached_tokens"] == msg.usage.cache_read_input_tokens
    assert row["prompt_tokens"] == msg.usage.input_tokens + msg.usage.cache_read_input_tokens
    cache_rate = row["cost_cached_input_usd"] / row["cached_tokens"]
    input_rate = row["cost_input_usd"] / (row["prompt_tokens"] - row["cached_tokens"])
    assert 0 < cache_rate < input_rate  # cache reads at the cache rate
    assert row["cost_usd"] == pytest.approx(
        row["cost_input_usd"] + row["cost_cached_input_usd"] + row["cost_output_usd"]
    )
