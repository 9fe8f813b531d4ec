"""Hostile input against the running gateway: schemathesis over the gateway's own OpenAPI document,
and hypothesis for chat and embeddings bodies. Every answer is a valid result or a 4xx in OpenAI's
error shape: never a 5xx, never a crash, never a hang."""

from __future__ import annotations

import json

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import KEY_A, SECRETS

H = {"authorization": f"Bearer {KEY_A}"}


FUZZED = (
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/models",
    "/v1/models/{model}",
    "/v1/usage",
    "/v1/feedback",
    "/v1/requests/{request_id}",
    "/v1/requests/top",
    "/v1/completions",
    "/v1/responses",
    "/v1/responses/{response_id}",
    "/v1/messages",
    "/v1/messages/count_tokens",
)


def assert_clean(r: httpx.Response | object, anthropic: bool = False) -> None:
    status = r.status_code  # type: ignore[attr-defined]
    text = r.text  # type: ignore[attr-defined]
    assert status < 500, f"{status}: {text[:300]}"
    if status >= 400:
        body = json.loads(text)
        if anthropic:  # Anthropic's error shape
            assert body["type"] == "error" and set(body["error"]) == {"type", "message"}
            return
        assert set(body["error"]) == {"message", "type", "param", "code"}
    assert "Traceback" not in text and not any(s in text for s in SECRETS)


def test_openapi_fuzzing_finds_no_server_error(gateway) -> None:
    """schemathesis generates requests for every operation of the gateway's own OpenAPI document
    (bodies from the request schemas, then mutated); a fixed budget of examples per operation."""
    api = schemathesis.openapi.from_url(gateway.base + "/openapi.json")
    ops = [r.ok() for r in api.get_all_operations()]
    ops = [op for op in ops if op.path in FUZZED]
    assert {op.path for op in ops} == set(FUZZED)
    for op in ops:

        @given(case=op.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case) -> None:
            r = case.call(base_url=gateway.base, headers=H, timeout=30)
            assert_clean(r, anthropic=op.path.startswith("/v1/messages"))

        check()


json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), st.text(max_size=50)
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20,
)
message = st.one_of(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["user", "system", "assistant", "tool", "bogus"]),
            "content": st.one_of(st.text(max_size=200), json_value),
        }
    ),
    json_value,
)
chat_body = st.builds(
    lambda known, extra: {**extra, **known},
    st.fixed_dictionaries(
        {
            "model": st.one_of(st.just("fast-sim"), st.just("mock-gpt"), json_value),
            "messages": st.one_of(st.lists(message, min_size=0, max_size=5), json_value),
        },
        optional={
            "max_tokens": st.one_of(st.integers(-(10**12), 10**12), json_value),
            "temperature": json_value,
            "stream": st.one_of(st.booleans(), json_value),
            "n": st.integers(-5, 200),
            "tools": json_value,
            "tool_choice": json_value,
            "response_format": json_value,
            "stop": json_value,
            "seed": json_value,
            "logprobs": json_value,
        },
    ),
    st.dictionaries(st.text(max_size=10), json_value, max_size=3),
)  # unknown fields


@given(body=chat_body)
@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
def test_chat_bodies_never_break_the_gateway(gateway, body) -> None:
    r = httpx.post(gateway.base + "/v1/chat/completions", headers=H, content=json.dumps(body), timeout=30)
    assert_clean(r)


@given(
    body=st.fixed_dictionaries(
        {"model": st.one_of(st.just("fast-embed"), json_value), "input": json_value},
        optional={"dimensions": json_value, "encoding_format": json_value},
    )
)
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_embedding_bodies_never_break_the_gateway(gateway, body) -> None:
    r = httpx.post(gateway.base + "/v1/embeddings", headers=H, content=json.dumps(body), timeout=30)
    assert_clean(r)


block = st.one_of(
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(
                [
                    "text",
                    "image",
                    "tool_use",
                    "tool_result",
                    "thinking",
                    "document",
                    "input_text",
                    "input_image",
                    "function_call",
                    "function_call_output",
                    "message",
                    "reasoning",
                    "bogus",
                ]
            )
        },
        optional={
            "text": json_value,
            "source": json_value,
            "id": json_value,
            "name": json_value,
            "input": json_value,
            "tool_use_id": json_value,
            "content": json_value,
            "call_id": json_value,
            "arguments": json_value,
            "output": json_value,
            "role": json_value,
            "image_url": json_value,
        },
    ),
    json_value,
)
turn = st.one_of(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["user", "assistant", "system", "developer", "x"]),
            "content": st.one_of(st.text(max_size=100), st.lists(block, max_size=4), json_value),
        }
    ),
    block,
)
surface_bodies = {
    "/v1/messages": st.fixed_dictionaries(
        {
            "model": st.one_of(st.just("fast-sim"), json_value),
            "messages": st.one_of(st.lists(turn, max_size=4), json_value),
        },
        optional={
            "max_tokens": st.one_of(st.integers(-5, 10**9), json_value),
            "system": json_value,
            "tools": json_value,
            "tool_choice": json_value,
            "stream": st.booleans(),
            "stop_sequences": json_value,
            "thinking": json_value,
            "metadata": json_value,
        },
    ),
    "/v1/messages/count_tokens": st.fixed_dictionaries(
        {
            "model": st.one_of(st.just("fast-sim"), json_value),
            "messages": st.one_of(st.lists(turn, max_size=4), json_value),
        },
        optional={"system": json_value, "tools": json_value},
    ),
    "/v1/responses": st.fixed_dictionaries(
        {
            "model": st.one_of(st.just("fast-sim"), json_value),
            "input": st.one_of(st.text(max_size=100), st.lists(turn, max_size=4), json_value),
        },
        optional={
            "instructions": json_value,
            "tools": json_value,
            "tool_choice": json_value,
            "text": json_value,
            "max_output_tokens": json_value,
            "reasoning": json_value,
            "stream": st.booleans(),
            "store": st.booleans(),
            "previous_response_id": json_value,
        },
    ),
    "/v1/completions": st.fixed_dictionaries(
        {"model": st.one_of(st.just("fast-sim"), json_value), "prompt": st.one_of(st.text(max_size=100), json_value)},
        optional={
            "max_tokens": json_value,
            "echo": json_value,
            "logprobs": json_value,
            "n": json_value,
            "stream": st.booleans(),
            "suffix": json_value,
            "best_of": json_value,
        },
    ),
}


@pytest.mark.parametrize("path", sorted(surface_bodies))
def test_every_surfaces_bodies_never_break_the_gateway(gateway, path) -> None:
    @given(body=surface_bodies[path])
    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(body) -> None:
        r = httpx.post(gateway.base + path, headers=H, content=json.dumps(body), timeout=30)
        assert_clean(r, anthropic=path.startswith("/v1/messages"))
        if r.status_code == 200 and not body.get("stream"):
            assert r.json()

    check()


@given(raw=st.binary(max_size=300))
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_raw_bytes_never_break_the_gateway(gateway, raw) -> None:
    r = httpx.post(
        gateway.base + "/v1/chat/completions",
        headers={**H, "content-type": "application/json"},
        content=raw,
        timeout=30,
    )
    assert_clean(r)
    assert r.status_code == 400 or r.status_code == 200


@pytest.mark.parametrize(
    "name,raw",
    [
        ("deeply nested", b'{"model": "fast-sim", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
        ("null bytes", b'{"model": "fast-sim\\u0000", "messages": [{"role": "user", "content": "a\\u0000b"}]}'),
        ("invalid utf-8", b'{"model": "fast-sim", "messages": [{"role": "user", "content": "\xff\xfe"}]}'),
        ("lone surrogate", b'{"model": "fast-sim", "messages": [{"role": "user", "content": "\\ud800"}]}'),
        (
            "thousands of messages",
            json.dumps({"model": "fast-sim", "messages": [{"role": "user", "content": "x"}] * 5000}).encode(),
        ),
        (
            "huge number",
            b'{"model": "fast-sim", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1'
            + b"0" * 5000
            + b"}",
        ),
    ],
)
def test_pathological_bodies(gateway, name, raw) -> None:
    r = httpx.post(
        gateway.base + "/v1/chat/completions",
        headers={**H, "content-type": "application/json"},
        content=raw,
        timeout=30,
    )
    assert_clean(r)
    assert r.status_code in (200, 400, 404, 413), name
