"""Every API surface is one request inside: routed by the same policies, admitted by the same rate
limits and budgets, metered into the same ledger, in front of mock upstreams speaking OpenAI's chat
completions and (through litellm) Anthropic's Messages API."""

from __future__ import annotations

import json
import time
from typing import Any, Iterator

import anthropic
import httpx
import openai
import pytest

from tests.conftest import (
    ADMIN_KEY,
    KEY_A,
    KEY_B,
    KEY_C,
    Proc,
    inside_one_minute,
    ledger_record,
    mock_config,
    mock_stats,
    start_gateway,
    start_mock,
)

KEY_D, KEY_E = "tenant-d-CANARY-key-1d2e3f4a5b6c", "tenant-e-CANARY-key-6c5b4a3f2e1d"
KEY_F = "tenant-f-CANARY-key-0f9e8d7c6b5a"
PRICE = "model_info: {input_cost_per_token: 0.000003, output_cost_per_token: 0.000015}"
AUTO = """name: auto
bind: {aliases: [auto]}
candidates: [mock-tools, claude]
objective: {type: cheapest_above, target: 0.5}
quality:
  priors: {mock-tools: 0.8, claude: 0.9}
  bandit: {enabled: false}
"""
WEATHER_FN = {
    "type": "function",
    "name": "get_weather",
    "description": "weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "weather of a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def sgw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    d = tmp_path_factory.mktemp("surfaces")
    mock = start_mock(d / "mock")
    (d / "policies").mkdir()
    (d / "policies" / "auto.yaml").write_text(AUTO)
    claude = "".join(
        f"  - model_name: {name}\n    litellm_params: {{model: anthropic/{model}, api_base: '{mock.base}', "
        f"api_key: os.environ/MOCK_PROVIDER_KEY}}\n    {PRICE}\n"
        for name, model in (("claude", "claude-mock"), ("claude-529", "claude-mock-529"))
    )
    cfg = mock_config(mock.base).replace("model_list:\n", "model_list:\n" + claude, 1)
    cfg = cfg.replace("aliases:\n", "aliases:\n  claude-first: [claude-529, mock-gpt]\n", 1)
    cfg = cfg.replace(
        "model_list:\n",
        "model_list:\n  - model_name: gpt-native\n    litellm_params: {model: openai/mock-gpt, "
        f"api_base: '{mock.base}/v1', api_key: os.environ/MOCK_PROVIDER_KEY, native_apis: [responses]}}\n"
        "    model_info: {input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}\n",
        1,
    )
    cfg = cfg.replace(
        "    - {id: tenant-b, tenant: b, key: os.environ/TEST_KEY_B, models: [mock-gpt, fast-sim]}",
        "    - {id: tenant-b, tenant: b, key: os.environ/TEST_KEY_B, models: [mock-gpt, fast-sim]}\n"
        "    - {id: tenant-c, tenant: c, key: os.environ/TEST_KEY_C}\n"
        "    - {id: tenant-d, tenant: d, key: os.environ/TEST_KEY_D}\n"
        "    - {id: tenant-e, tenant: e, key: os.environ/TEST_KEY_E}\n"
        "    - {id: tenant-f, tenant: f, key: os.environ/TEST_KEY_F}",
    )
    cfg += (
        f"policies: {{dirs: ['{d / 'policies'}'], watch_interval: 0}}\n"
        "limits:\n  rate_limits:\n    - {scope: key, id: tenant-c, rpm: 2}\n"
        "    - {scope: key, id: tenant-d, rpm: 2}\n    - {scope: key, id: tenant-e, rpm: 2}\n"
        "  budgets:\n    - {scope: tenant, id: a, period: day, usd: 100}\n"
        "    - {scope: tenant, id: f, period: day, usd: 0.000001}\n"
    )
    gw = start_gateway(d / "gw", cfg, env={"TEST_KEY_D": KEY_D, "TEST_KEY_E": KEY_E, "TEST_KEY_F": KEY_F})
    gw.extra["mock"] = mock
    yield gw
    gw.stop()
    mock.stop()


def oa(gw: Proc, key: str = KEY_A) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base + "/v1", api_key=key, max_retries=0)


def an(gw: Proc, key: str = KEY_A) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.base, api_key=key, max_retries=0)


def test_an_anthropic_request_routed_by_auto_to_an_openai_compatible_deployment(sgw: Proc) -> None:
    raw = an(sgw).messages.with_raw_response.create(
        model="auto", max_tokens=200, tools=[WEATHER_TOOL], messages=[{"role": "user", "content": "Weather in Paris?"}]
    )
    msg = raw.parse()
    assert raw.headers["x-switchyard-model"] == "mock-tools" and raw.headers["x-switchyard-policy"] == "auto"
    use = msg.content[0]
    assert msg.stop_reason == "tool_use" and use.type == "tool_use" and use.id == "call_1"
    assert use.name == "get_weather" and use.input == {"city": "Paris"}
    sent = mock_stats(sgw.extra["mock"])["last_body"]  # what the OpenAI-compatible upstream got
    assert sent["tools"][0]["function"]["name"] == "get_weather" and sent["max_tokens"] == 200
    # metered at the serving model's prices (mock-tools: $1 and $2 per 1M)
    assert float(raw.headers["x-switchyard-cost-usd"]) == pytest.approx(
        msg.usage.input_tokens * 1e-6 + msg.usage.output_tokens * 2e-6
    )
    row = ledger_record(sgw, KEY_A, raw.headers["x-request-id"])
    assert (row["endpoint"], row["alias"], row["model"], row["policy"]) == ("messages", "auto", "mock-tools", "auto")
    # the tool's result goes back as Anthropic blocks; the upstream sees a chat tool message
    follow = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [use.model_dump()]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "21C"}]},
    ]
    an(sgw).messages.create(model="mock-gpt", max_tokens=50, tools=[WEATHER_TOOL], messages=follow)
    sent = mock_stats(sgw.extra["mock"])["last_body"]["messages"]
    assert sent[1]["tool_calls"][0]["id"] == "call_1" and json.loads(
        sent[1]["tool_calls"][0]["function"]["arguments"]
    ) == {"city": "Paris"}
    assert sent[2] == {"role": "tool", "tool_call_id": "call_1", "content": "21C"}


def test_a_responses_request_to_an_anthropic_deployment_through_litellm(sgw: Proc) -> None:
    c = oa(sgw)
    raw = c.responses.with_raw_response.create(
        model="claude", input="Weather in Paris?", tools=[WEATHER_FN], store=False
    )
    resp = raw.parse()
    call = resp.output[0]
    assert (
        call.type == "function_call" and call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    )
    native = mock_stats(sgw.extra["mock"])["last_body"]  # Anthropic's own request shape reached the upstream
    assert native["tools"][0]["name"] == "get_weather" and "input_schema" in native["tools"][0]
    assert float(raw.headers["x-switchyard-cost-usd"]) == pytest.approx(11 * 3e-6 + 5 * 15e-6)
    assert (resp.usage.input_tokens, resp.usage.output_tokens) == (11, 5)
    follow = c.responses.create(
        model="claude",
        tools=[WEATHER_FN],
        store=False,
        input=[
            {"role": "user", "content": "Weather in Paris?"},
            call.model_dump(exclude_none=True),
            {"type": "function_call_output", "call_id": call.call_id, "output": '{"temp_c": 21}'},
        ],
    )
    assert follow.output_text == "hello world world"
    events = list(
        c.responses.create(model="claude", input="Weather in Paris?", tools=[WEATHER_FN], stream=True, store=False)
    )
    done = events[-1].response
    assert events[-1].type == "response.completed" and done.output[0].type == "function_call"
    assert json.loads(done.output[0].arguments) == {"city": "Paris"} and done.usage.output_tokens == 5


def test_rate_limits_and_upstream_429s_get_each_surfaces_typed_error(sgw: Proc) -> None:
    with pytest.raises(anthropic.RateLimitError) as e:
        an(sgw).messages.create(model="all-limited", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    assert e.value.body["error"]["type"] == "rate_limit_error"
    with pytest.raises(openai.RateLimitError):
        oa(sgw).responses.create(model="all-limited", input="hi", store=False)
    with pytest.raises(openai.RateLimitError):
        oa(sgw).completions.create(model="all-limited", prompt="hi")
    # the gateway's own limit (tenant-c: 2 requests a minute), whichever surface the requests use; the
    # four requests inside one clock minute (a window that turned between them would admit the third)
    inside_one_minute(20)
    oa(sgw, KEY_C).completions.create(model="mock-gpt", prompt="hi")
    an(sgw, KEY_C).messages.create(model="mock-gpt", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(anthropic.RateLimitError) as e:
        an(sgw, KEY_C).messages.create(model="mock-gpt", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    assert "Rate limit reached" in e.value.body["error"]["message"] and e.value.response.headers["retry-after"]
    with pytest.raises(openai.RateLimitError):
        oa(sgw, KEY_C).responses.create(model="mock-gpt", input="hi", store=False)


def test_stored_responses_belong_to_their_tenant(sgw: Proc) -> None:
    mine = oa(sgw, KEY_A).responses.create(model="fast-sim", input="Remember 7.", max_output_tokens=5)
    other = oa(sgw, KEY_B)
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.delete(mine.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.create(model="fast-sim", input="and?", previous_response_id=mine.id)
    assert oa(sgw, KEY_A).responses.retrieve(mine.id).id == mine.id


def test_a_stream_that_breaks_ends_with_each_surfaces_error_event_and_is_metered(sgw: Proc) -> None:
    h = {"authorization": f"Bearer {KEY_A}"}
    ends = {}
    for path, body in (
        ("/v1/messages", {"max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}),
        ("/v1/responses", {"input": "hi", "store": False}),
        ("/v1/completions", {"prompt": "hi"}),
    ):
        with httpx.stream("POST", sgw.base + path, headers=h, json={"model": "mock-cut", "stream": True, **body}) as s:
            lines = [line for line in s.iter_lines() if line.startswith("data: ")]
            rid = s.headers["x-request-id"]
        ends[path] = json.loads(lines[-1][6:])
        row = ledger_record(sgw, KEY_A, rid)
        assert row["status"] >= 500 and row["completion_tokens"] == 3, row  # what was relayed is metered
    assert ends["/v1/messages"]["type"] == "error" and ends["/v1/messages"]["error"]["type"] == "api_error"
    assert ends["/v1/responses"]["type"] == "response.failed"
    assert ends["/v1/responses"]["response"]["error"]["code"] == "server_error"
    assert ends["/v1/completions"]["error"]["code"].startswith("upstream_")


def _admin_records(gw: Proc, since: float) -> list[dict[str, Any]]:
    out, cursor = [], None
    while True:
        params = {"start": since, "end": time.time() + 60, "limit": 100, **({"cursor": cursor} if cursor else {})}
        page = httpx.get(
            gw.base + "/admin/requests", headers={"authorization": f"Bearer {ADMIN_KEY}"}, params=params
        ).json()
        out += page["data"]
        cursor = page.get("next_cursor")
        if not cursor:
            return out


def test_every_surface_reconciles_with_the_ledger(sgw: Proc) -> None:
    since = time.time()
    h = {"authorization": f"Bearer {KEY_A}"}
    chat = {"messages": [{"role": "user", "content": "hi"}]}
    bodies = {
        "chat/completions": chat,
        "completions": {"prompt": "hi"},
        "responses": {"input": "hi", "store": False},
        "messages": {"max_tokens": 30, **chat},
    }
    ids: dict[str, list[str]] = {}
    shown = 0.0  # money the non-streamed answers' headers showed
    for path, body in bodies.items():
        for stream in (False, True):
            extra = {"stream": True} if stream else {}
            r = httpx.post(f"{sgw.base}/v1/{path}", headers=h, json={"model": "mock-gpt", **body, **extra})
            assert r.status_code == 200, r.text
            ids.setdefault(path, []).append(r.headers["x-request-id"])
            if not stream:
                shown += float(r.headers["x-switchyard-charge-usd"])
    rows = {rid: ledger_record(sgw, KEY_A, rid) for rid_list in ids.values() for rid in rid_list}
    endpoints = {
        "chat/completions": "chat",
        "completions": "completions",
        "responses": "responses",
        "messages": "messages",
    }
    for path, rid_list in ids.items():
        assert {rows[r]["endpoint"] for r in rid_list} == {endpoints[path]}
        assert [rows[r]["stream"] for r in rid_list] == [False, True]
        assert all(rows[r]["charge_usd"] > 0 and rows[r]["status"] == 200 for r in rid_list)
    assert shown == pytest.approx(sum(rows[ids[p][0]]["charge_usd"] for p in ids), rel=1e-9)
    # the usage API's figures by surface are the sums of the ledger's records
    records = [r for r in _admin_records(sgw, since) if r["request_id"] in rows]
    assert len(records) == len(rows)
    usage = httpx.get(
        sgw.base + "/v1/usage",
        headers=h,
        params={"start": since, "end": time.time() + 60, "bucket": "none", "group_by": "endpoint"},
    ).json()["data"]
    by_endpoint = {u["endpoint"]: u for u in usage}
    for ep in endpoints.values():
        mine = [r for r in records if r["endpoint"] == ep]
        assert by_endpoint[ep]["requests"] == len(mine) == 2
        assert by_endpoint[ep]["charge_usd"] == pytest.approx(sum(r["charge_usd"] for r in mine), rel=1e-9)
        assert by_endpoint[ep]["prompt_tokens"] == sum(r["prompt_tokens"] for r in mine)


def test_a_messages_request_to_an_anthropic_deployment_goes_through_as_it_came(sgw: Proc) -> None:
    mock = sgw.extra["mock"]
    body = {
        "model": "claude",
        "max_tokens": 300,
        "top_k": 5,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "tools": [WEATHER_TOOL],
        "fallbacks": ["mock-gpt"],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "text", "text": "Let me check."},
                ],
            },
            {"role": "user", "content": "Go on."},
        ],
    }
    r = httpx.post(
        sgw.base + "/v1/messages",
        json=body,
        headers={
            "x-api-key": KEY_A,
            "anthropic-version": "2023-06-01",
            "anthropic-beta": "interleaved-thinking-2025-05-14",
        },
    )
    assert r.status_code == 200, r.text
    sent = mock_stats(mock)["last_body"]
    assert mock_stats(mock)["last_headers"]["anthropic-beta"] == "interleaved-thinking-2025-05-14"
    # Anthropic's own request: nothing translated or dropped, the deployment's model name, no gateway field
    assert sent == {**{k: v for k, v in body.items() if k != "fallbacks"}, "model": "claude-mock"}
    assert mock_stats(mock)["last_headers"]["x-api-key"] != KEY_A  # the operator's provider key, not the client's
    msg = r.json()
    assert msg["id"] == "msg_mock" and msg["model"] == "claude"  # the provider's own answer, under the gateway's name
    assert msg["content"] == [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]
    assert msg["usage"] == {"input_tokens": 11, "output_tokens": 5}
    assert float(r.headers["x-switchyard-cost-usd"]) == pytest.approx(11 * 3e-6 + 5 * 15e-6)
    row = ledger_record(sgw, KEY_A, r.headers["x-request-id"])
    assert (row["endpoint"], row["model"], row["prompt_tokens"], row["completion_tokens"]) == (
        "messages",
        "claude",
        11,
        5,
    )
    # streamed: the provider's events are relayed as they came, and metered
    with an(sgw).messages.stream(
        model="claude",
        max_tokens=300,
        tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": "Weather in Paris?"}],
    ) as s:
        kinds = [e.type for e in s]
        final = s.get_final_message()
        rid = s.response.headers["x-request-id"]
    assert final.id == "msg_mock" and final.content[0].input == {"city": "Paris"} and final.stop_reason == "tool_use"
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop" and "input_json" in kinds
    assert mock_stats(mock)["last_body"]["stream"] is True
    row = ledger_record(sgw, KEY_A, rid)
    assert (row["stream"], row["prompt_tokens"], row["completion_tokens"], row["status"]) == (True, 11, 5, 200)
    assert row["cost_usd"] == pytest.approx(11 * 3e-6 + 5 * 15e-6)


def test_a_native_failure_falls_back_to_a_translated_deployment(sgw: Proc) -> None:
    raw = an(sgw).messages.with_raw_response.create(
        model="claude-first", max_tokens=30, messages=[{"role": "user", "content": "hi"}]
    )
    msg = raw.parse()
    assert raw.headers["x-switchyard-model"] == "mock-gpt" and raw.headers["x-switchyard-attempts"] == "2"
    assert msg.content[0].text.startswith("hello") and msg.model == "mock-gpt"
    with an(sgw).messages.stream(
        model="claude-first", max_tokens=30, messages=[{"role": "user", "content": "hi"}]
    ) as s:
        final = s.get_final_message()
    assert final.model == "mock-gpt" and final.content[0].text.startswith("hello")
    with pytest.raises(anthropic.InternalServerError) as e:  # the overloaded provider alone: its 503, Anthropic-shaped
        an(sgw).messages.create(model="claude-529", max_tokens=30, messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code == 503 and e.value.body["error"]["type"] == "overloaded_error"


def test_a_responses_request_to_a_deployment_that_speaks_it_goes_through_as_it_came(sgw: Proc) -> None:
    mock, c = sgw.extra["mock"], oa(sgw)
    raw = c.responses.with_raw_response.create(
        model="gpt-native",
        input="hi",
        instructions="Be brief.",
        reasoning={"effort": "low"},
        include=["reasoning.encrypted_content"],
        max_output_tokens=50,
        store=False,
    )
    resp = raw.parse()
    sent = mock_stats(mock)["last_body"]
    assert sent == {
        "model": "mock-gpt",
        "input": "hi",
        "instructions": "Be brief.",
        "reasoning": {"effort": "low"},
        "include": ["reasoning.encrypted_content"],
        "max_output_tokens": 50,
        "store": False,
    }
    assert resp.id.startswith("resp_mock") and resp.model == "gpt-native" and resp.output_text == "hello world world"
    assert float(raw.headers["x-switchyard-cost-usd"]) == pytest.approx(11 * 1e-6 + 5 * 2e-6)
    row = ledger_record(sgw, KEY_A, raw.headers["x-request-id"])
    assert (row["endpoint"], row["model"], row["prompt_tokens"], row["completion_tokens"], row["reasoning_tokens"]) == (
        "responses",
        "gpt-native",
        11,
        5,
        2,
    )
    # a tool round trip continued by id: the gateway kept the conversation and sends it whole
    first = c.responses.create(model="gpt-native", input="Weather in Paris?", tools=[WEATHER_FN])
    call = first.output[0]
    assert (
        call.type == "function_call" and call.call_id == "call_mock" and json.loads(call.arguments) == {"city": "Paris"}
    )
    follow = c.responses.create(
        model="gpt-native",
        previous_response_id=first.id,
        tools=[WEATHER_FN],
        input=[{"type": "function_call_output", "call_id": "call_mock", "output": "21C"}],
    )
    sent = mock_stats(mock)["last_body"]
    assert "previous_response_id" not in sent and sent["store"] is False
    assert [i.get("type") for i in sent["input"]] == ["message", "function_call", "function_call_output"]
    assert sent["input"][0]["content"] == "Weather in Paris?" and sent["input"][1]["call_id"] == "call_mock"
    assert follow.output_text == "hello world world" and follow.previous_response_id == first.id
    assert c.responses.retrieve(follow.id).output_text == "hello world world"
    # streamed: the deployment's events, relayed; the final Response under the gateway's name, stored
    with c.responses.stream(model="gpt-native", input="hi") as s:
        kinds = [e.type for e in s]
        final = s.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert final.model == "gpt-native" and final.output_text == "hello world world"
    assert mock_stats(mock)["last_body"]["stream"] is True
    assert c.responses.retrieve(final.id).output_text == "hello world world"
    with httpx.stream(
        "POST",
        sgw.base + "/v1/responses",
        headers={"authorization": f"Bearer {KEY_A}"},
        json={"model": "gpt-native", "input": "hi", "stream": True, "store": False},
    ) as r:
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
        rid = r.headers["x-request-id"]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))  # the deployment's own numbering
    row = ledger_record(sgw, KEY_A, rid)
    assert (row["stream"], row["prompt_tokens"], row["completion_tokens"], row["status"]) == (True, 11, 5, 200)


def test_a_batch_whose_part_is_refused(sgw: Proc) -> None:
    """Three prompts under a limit of two requests a minute: the third part is refused. Unstreamed,
    the request is refused (the parts that ran are metered); streamed, the stream ends with the refusal."""
    r = httpx.post(
        sgw.base + "/v1/completions",
        headers={"authorization": f"Bearer {KEY_D}"},
        json={"model": "mock-gpt", "prompt": ["a", "b", "c"], "max_tokens": 3},
    )
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limit_exceeded"
    rid = r.headers["x-request-id"]
    assert all(ledger_record(sgw, KEY_D, f"{rid}-{i}")["status"] == 200 for i in (0, 1))  # served, metered
    third = httpx.get(f"{sgw.base}/v1/requests/{rid}-2", headers={"authorization": f"Bearer {KEY_D}"})
    assert third.status_code == 404  # refused before any backend: nothing to meter
    with httpx.stream(
        "POST",
        sgw.base + "/v1/completions",
        headers={"authorization": f"Bearer {KEY_E}"},
        json={"model": "mock-gpt", "prompt": ["a", "b", "c"], "max_tokens": 3, "stream": True},
    ) as s:
        assert s.status_code == 200
        events = [line[6:] for line in s.iter_lines() if line.startswith("data: ")]
    assert "[DONE]" not in events and json.loads(events[-1])["error"]["code"] == "rate_limit_exceeded"
    texts = {c["index"] for e in events[:-1] for c in json.loads(e)["choices"]}
    assert texts == {0, 1}


def test_a_budget_refuses_on_every_surface_in_its_shape(sgw: Proc) -> None:
    """Tenant f's daily budget ($0.000001) has no room for any request's worst case."""
    with pytest.raises(anthropic.RateLimitError) as e:
        an(sgw, KEY_F).messages.create(model="mock-gpt", max_tokens=50, messages=[{"role": "user", "content": "hi"}])
    assert (
        e.value.body["error"]["type"] == "rate_limit_error" and "Budget exhausted" in e.value.body["error"]["message"]
    )
    for call in (
        lambda c: c.responses.create(model="mock-gpt", input="hi", store=False),
        lambda c: c.completions.create(model="mock-gpt", prompt="hi"),
        lambda c: c.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": "hi"}]),
    ):
        with pytest.raises(openai.RateLimitError) as err:
            call(oa(sgw, KEY_F))
        assert "Budget exhausted" in err.value.body["message"]
    with httpx.stream(
        "POST",
        sgw.base + "/v1/messages",
        headers={"x-api-key": KEY_F},
        json={"model": "mock-gpt", "max_tokens": 50, "stream": True, "messages": [{"role": "user", "content": "hi"}]},
    ) as s:
        assert s.status_code == 429 and json.loads(s.read())["error"]["type"] == "rate_limit_error"


def test_a_responses_request_names_its_own_fallbacks(sgw: Proc) -> None:
    raw = oa(sgw).responses.with_raw_response.create(
        model="mock-500", input="hi", store=False, extra_body={"fallbacks": ["mock-gpt"]}
    )
    assert raw.headers["x-switchyard-model"] == "mock-gpt" and raw.parse().output_text.startswith("hello")
    raw = an(sgw).messages.with_raw_response.create(
        model="mock-500",
        max_tokens=20,
        extra_body={"fallbacks": ["mock-gpt"]},
        messages=[{"role": "user", "content": "hi"}],
    )
    assert raw.headers["x-switchyard-model"] == "mock-gpt"
