"""The official openai SDK, unchanged but for base_url and key, against running gateways:
the embedded default (simulated providers) and a config in front of a mock upstream process."""

from __future__ import annotations

import base64
import json
import struct

import httpx
import openai
import pytest

from tests.conftest import KEY_A, Proc
from tests.schema import assert_valid

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["city", "unit"],
        },
    },
}


@pytest.fixture(params=["embedded", "mock"])
def target(request: pytest.FixtureRequest) -> tuple[str, str, str, str]:
    """(base_url, key, chat model, embeddings model) for each gateway under test."""
    if request.param == "embedded":
        p: Proc = request.getfixturevalue("embedded")
        return p.base + "/v1", p.extra["key"], "sim-small", "sim-embed"
    p = request.getfixturevalue("gateway")
    return p.base + "/v1", KEY_A, "mock-gpt", "mock-embed"


def test_sync_completion_stream_and_models(target, openai_schemas) -> None:
    base, key, model, _ = target
    client = openai.OpenAI(base_url=base, api_key=key, max_retries=0)
    resp = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Say hi"}], max_tokens=12)
    assert resp.choices[0].message.content
    assert resp.usage.prompt_tokens > 0 and 0 < resp.usage.completion_tokens <= 12
    assert resp.model == model

    chunks = list(
        client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Count"}],
            max_tokens=8,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] in ("stop", "length") and all(f is None for f in finishes[:-1])

    ids = {m.id for m in client.models.list()}
    assert model in ids


async def test_async_completion_and_stream(target) -> None:
    base, key, model, _ = target
    client = openai.AsyncOpenAI(base_url=base, api_key=key, max_retries=0)
    resp = await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hello"}], max_tokens=5
    )
    assert resp.choices[0].finish_reason in ("stop", "length")
    stream = await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hello"}], max_tokens=5, stream=True
    )
    pieces = [c async for c in stream]
    assert pieces and all(c.usage is None for c in pieces), "no usage chunk when the client did not ask for one"
    await client.close()


def test_tools_round_trip(target) -> None:
    base, key, model, _ = target
    client = openai.OpenAI(base_url=base, api_key=key, max_retries=0)
    msgs = [{"role": "user", "content": "Weather in Paris?"}]
    resp = client.chat.completions.create(model=model, messages=msgs, tools=[WEATHER_TOOL], tool_choice="required")
    call = resp.choices[0].message.tool_calls[0]
    assert resp.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert "city" in json.loads(call.function.arguments)
    msgs += [
        resp.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"temp": 21}'},
    ]
    follow = client.chat.completions.create(model=model, messages=msgs, tools=[WEATHER_TOOL], max_tokens=10)
    assert follow.choices[0].message.content


def test_streamed_tool_call_on_simulated(embedded) -> None:
    client = openai.OpenAI(base_url=embedded.base + "/v1", api_key=embedded.extra["key"], max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model="sim-mid",
            messages=[{"role": "user", "content": "weather?"}],
            tools=[WEATHER_TOOL],
            tool_choice="required",
            stream=True,
        )
    )
    args = "".join(
        c.choices[0].delta.tool_calls[0].function.arguments or ""
        for c in chunks
        if c.choices and c.choices[0].delta.tool_calls
    )
    assert json.loads(args)["unit"] in ("c", "f")
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_json_schema_mode_on_simulated(embedded) -> None:
    client = openai.OpenAI(base_url=embedded.base + "/v1", api_key=embedded.extra["key"], max_retries=0)
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    resp = client.chat.completions.create(
        model="sim-frontier",
        messages=[{"role": "user", "content": "a person"}],
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": True}},
    )
    data = json.loads(resp.choices[0].message.content)
    assert isinstance(data["name"], str) and isinstance(data["age"], int)
    resp = client.chat.completions.create(
        model="sim-small", messages=[{"role": "user", "content": "json"}], response_format={"type": "json_object"}
    )
    assert isinstance(json.loads(resp.choices[0].message.content), dict)


def test_embeddings_float_and_base64(target, openai_schemas) -> None:
    base, key, _, emodel = target
    client = openai.OpenAI(base_url=base, api_key=key, max_retries=0)
    # The SDK asks for base64 by default and decodes it.
    resp = client.embeddings.create(model=emodel, input=["alpha", "beta"], dimensions=8)
    assert [len(d.embedding) for d in resp.data] == [8, 8]
    assert resp.usage.prompt_tokens > 0
    raw = httpx.post(
        base + "/embeddings",
        headers={"authorization": f"Bearer {key}"},
        json={"model": emodel, "input": "alpha", "dimensions": 4},
    ).json()
    assert_valid(openai_schemas, "CreateEmbeddingResponse", raw)
    assert len(raw["data"][0]["embedding"]) == 4


def test_simulated_embeddings_base64_encoding(embedded) -> None:
    raw = httpx.post(
        embedded.base + "/v1/embeddings",
        headers={"authorization": f"Bearer {embedded.extra['key']}"},
        json={"model": "sim-embed", "input": "alpha", "encoding_format": "base64", "dimensions": 16},
    ).json()
    vec = struct.unpack("<16f", base64.b64decode(raw["data"][0]["embedding"]))
    assert abs(sum(v * v for v in vec) - 1.0) < 1e-4  # unit vectors, like OpenAI's


def test_simulated_is_deterministic_for_a_seed(embedded) -> None:
    client = openai.OpenAI(base_url=embedded.base + "/v1", api_key=embedded.extra["key"], max_retries=0)
    kw = dict(model="sim-small", messages=[{"role": "user", "content": "tell me"}], seed=42, max_tokens=30)
    a, b = client.chat.completions.create(**kw), client.chat.completions.create(**kw)
    assert a.choices[0].message.content == b.choices[0].message.content
    c = client.chat.completions.create(**{**kw, "seed": 43})
    assert c.choices[0].message.content != a.choices[0].message.content


def test_simulated_token_counts_match_tiktoken(embedded) -> None:
    from router.tokens import Tokenizer

    client = openai.OpenAI(base_url=embedded.base + "/v1", api_key=embedded.extra["key"], max_retries=0)
    resp = client.chat.completions.create(
        model="sim-mid", messages=[{"role": "user", "content": "count me please"}], seed=7, max_tokens=40
    )
    enc = Tokenizer().encoding("gpt-4o-mini")  # sim-mid stands in for gpt-4o-mini
    assert enc.name == "o200k_base"
    assert resp.usage.completion_tokens == len(enc.encode(resp.choices[0].message.content))
    # OpenAI's recipe: 3 per message + role + content, plus 3 priming the reply
    assert resp.usage.prompt_tokens == 3 + len(enc.encode("user")) + len(enc.encode("count me please")) + 3


def test_raw_responses_match_openai_schemas(target, openai_schemas) -> None:
    base, key, model, _ = target
    h = {"authorization": f"Bearer {key}"}
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 6}
    r = httpx.post(base + "/chat/completions", headers=h, json=body)
    assert r.status_code == 200 and r.headers["x-request-id"]
    data = r.json()
    assert_valid(openai_schemas, "CreateChatCompletionResponse", data)
    choice = data["choices"][0]
    assert "logprobs" in choice and choice["message"]["refusal"] is None
    with httpx.stream(
        "POST",
        base + "/chat/completions",
        headers=h,
        json={**body, "stream": True, "stream_options": {"include_usage": True}},
    ) as s:
        events = [line[6:] for line in s.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    for c in chunks:
        assert_valid(openai_schemas, "CreateChatCompletionStreamResponse", c)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    models = httpx.get(base + "/models", headers=h).json()
    assert_valid(openai_schemas, "ListModelsResponse", models)
    err = httpx.post(base + "/chat/completions", headers=h, json={"model": model}).json()
    assert_valid(openai_schemas, "ErrorResponse", err)


def test_logprobs_and_n_on_simulated(embedded, openai_schemas) -> None:
    h = {"authorization": f"Bearer {embedded.extra['key']}"}
    data = httpx.post(
        embedded.base + "/v1/chat/completions",
        headers=h,
        json={
            "model": "sim-small",
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 5,
            "n": 2,
            "logprobs": True,
            "top_logprobs": 2,
            "stop": ["zzz"],
        },
    ).json()
    assert_valid(openai_schemas, "CreateChatCompletionResponse", data)
    assert [c["index"] for c in data["choices"]] == [0, 1]
    assert len(data["choices"][0]["logprobs"]["content"][0]["top_logprobs"]) == 2


def test_a_client_timeout_bounds_the_request_on_simulated_providers(embedded) -> None:
    # the simulated models answer after their profile's latency (sim-frontier: hundreds of ms); a
    # client timeout under it ends the request with 504 deadline_exceeded, through the SDK too
    client = openai.OpenAI(base_url=embedded.base + "/v1", api_key=embedded.extra["key"], max_retries=0)
    with pytest.raises(openai.APIStatusError) as err:
        client.chat.completions.create(
            model="sim-frontier",
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=50,
            extra_body={"timeout": 0.05},
        )
    assert err.value.status_code == 504 and err.value.body["code"] == "deadline_exceeded"
    r = client.chat.completions.with_raw_response.create(
        model="sim-small", messages=[{"role": "user", "content": "hi"}], max_tokens=5, extra_body={"timeout": 30}
    )
    assert r.http_response.status_code == 200
    for bad in (0, True, "5", 10**6):  # seconds as a number: a flag or a string is refused, not read as 1 or 5
        with pytest.raises(openai.BadRequestError):
            client.embeddings.create(model="sim-embed", input="x", extra_body={"timeout": bad})
