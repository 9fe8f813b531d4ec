"""Every error answers in OpenAI's shape with the right status, and never leaks a secret."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.conftest import KEY_A, KEY_B, SECRETS, Proc, mock_stats
from tests.schema import assert_valid

MSG = [{"role": "user", "content": "hi"}]


def post(
    gw: Proc,
    body: object = None,
    *,
    key: str | None = KEY_A,
    raw: bytes | None = None,
    path: str = "/v1/chat/completions",
    headers: dict | None = None,
) -> httpx.Response:
    h = {"content-type": "application/json", **(headers or {})}
    if key is not None:
        h["authorization"] = f"Bearer {key}"
    content = raw if raw is not None else json.dumps(body).encode()
    return httpx.post(gw.base + path, content=content, headers=h, timeout=30)


def check(
    r: httpx.Response,
    status: int,
    schemas: dict,
    *,
    code: str | None = None,
    param: str | None = None,
    type_: str | None = None,
) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers.get("x-request-id", "").startswith("req_")
    body = r.json()
    assert_valid(schemas, "ErrorResponse", body)
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}
    if code:
        assert err["code"] == code
    if param:
        assert err["param"] == param
    if type_:
        assert err["type"] == type_
    text = r.text + json.dumps(dict(r.headers))
    for s in SECRETS:
        assert s not in text
    assert "Traceback" not in text and "<html" not in text.lower()
    return err


@pytest.mark.parametrize(
    "raw,code",
    [
        (b"{not json", "invalid_json"),
        (b"[1, 2, 3]", "invalid_body"),
        (b"\xff\xfe{}", "invalid_json"),
        (b"", "invalid_body"),
        (b'"just a string"', "invalid_body"),
    ],
)
def test_malformed_bodies_are_400(gateway, openai_schemas, raw, code) -> None:
    check(post(gateway, raw=raw), 400, openai_schemas, code=code, type_="invalid_request_error")


@pytest.mark.parametrize(
    "body,param",
    [
        ({"model": "mock-gpt"}, "messages"),
        ({"messages": MSG}, "model"),
        ({"model": "mock-gpt", "messages": []}, "messages"),
        ({"model": "mock-gpt", "messages": "hi"}, "messages"),
        ({"model": "mock-gpt", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"model": "mock-gpt", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"model": 42, "messages": MSG}, "model"),
        ({"model": "mock-gpt", "messages": MSG, "max_tokens": -5}, "max_tokens"),
        ({"model": "mock-gpt", "messages": MSG, "max_tokens": 10**12}, "max_tokens"),
        ({"model": "mock-gpt", "messages": MSG, "max_tokens": "ten"}, "max_tokens"),
        ({"model": "mock-gpt", "messages": MSG, "temperature": 7}, "temperature"),
        ({"model": "mock-gpt", "messages": MSG, "stream": "yes"}, "stream"),
        ({"model": "mock-gpt", "messages": MSG, "n": 0}, "n"),
        ({"model": "mock-gpt", "messages": MSG, "tools": [{"type": "function"}]}, "tools[0].function"),
        ({"model": "mock-gpt", "messages": MSG, "tool_choice": "sometimes"}, "tool_choice"),
        ({"model": "mock-gpt", "messages": MSG, "response_format": {"type": "yaml"}}, "response_format.type"),
        ({"model": "mock-gpt", "messages": MSG, "stream_options": {"include_usage": True}}, "stream_options"),
        ({"model": "mock-gpt", "messages": [{"role": "user", "content": "x"}] * 51}, "messages"),
    ],
)
def test_invalid_chat_requests_are_400_naming_the_param(gateway, openai_schemas, body, param) -> None:
    before = mock_stats(gateway.extra["mock"])["requests"]
    check(post(gateway, body), 400, openai_schemas, param=param, type_="invalid_request_error")
    assert mock_stats(gateway.extra["mock"])["requests"] == before, "an invalid request must not reach the upstream"


@pytest.mark.parametrize(
    "body,param",
    [
        ({"model": "mock-embed"}, "input"),
        ({"model": "mock-embed", "input": 7}, "input"),
        ({"model": "mock-embed", "input": "x", "encoding_format": "hex"}, "encoding_format"),
        ({"model": "mock-embed", "input": "x", "dimensions": 0}, "dimensions"),
    ],
)
def test_invalid_embedding_requests_are_400(gateway, openai_schemas, body, param) -> None:
    check(post(gateway, body, path="/v1/embeddings"), 400, openai_schemas, param=param)


def test_missing_and_bad_keys_are_401(gateway, openai_schemas) -> None:
    body = {"model": "mock-gpt", "messages": MSG}
    check(post(gateway, body, key=None), 401, openai_schemas, type_="authentication_error")
    check(post(gateway, body, key="sk-wrong"), 401, openai_schemas, code="invalid_api_key")
    check(post(gateway, body, headers={"authorization": f"Basic {KEY_A}"}, key=None), 401, openai_schemas)
    r = httpx.get(gateway.base + "/v1/models")
    check(r, 401, openai_schemas)
    # the SDK maps it to its own exception class
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=gateway.base + "/v1", api_key="nope", max_retries=0).models.list()


def test_model_outside_key_allow_list_is_403(gateway, openai_schemas) -> None:
    check(
        post(gateway, {"model": "mock-tools", "messages": MSG}, key=KEY_B),
        403,
        openai_schemas,
        type_="permission_error",
    )
    listed = {
        m["id"]
        for m in httpx.get(gateway.base + "/v1/models", headers={"authorization": f"Bearer {KEY_B}"}).json()["data"]
    }
    assert listed == {"mock-gpt", "fast-sim"}


def test_unknown_model_and_url_are_404(gateway, openai_schemas) -> None:
    check(
        post(gateway, {"model": "gpt-99", "messages": MSG}), 404, openai_schemas, code="model_not_found", param="model"
    )
    check(post(gateway, {"model": "mock-gpt", "messages": MSG}, path="/v1/nothing-here"), 404, openai_schemas)
    r = httpx.get(gateway.base + "/v1/models/gpt-99", headers={"authorization": f"Bearer {KEY_A}"})
    check(r, 404, openai_schemas, code="model_not_found")
    r = httpx.get(gateway.base + "/v1/chat/completions", headers={"authorization": f"Bearer {KEY_A}"})
    check(r, 405, openai_schemas)


def test_chat_model_on_embeddings_is_400(gateway, openai_schemas) -> None:
    check(
        post(gateway, {"model": "mock-gpt", "input": "x"}, path="/v1/embeddings"),
        400,
        openai_schemas,
        code="wrong_model_type",
    )


def test_oversized_body_is_413(gateway, openai_schemas) -> None:
    big = {"model": "mock-gpt", "messages": [{"role": "user", "content": "x" * 70000}]}
    check(post(gateway, big), 413, openai_schemas, code="request_too_large")

    def chunked():  # no content-length: the limit holds while reading
        yield b'{"model": "mock-gpt", "messages": [{"role": "user", "content": "'
        for _ in range(100):
            yield b"y" * 1000
        yield b'"}]}'

    r = httpx.post(
        gateway.base + "/v1/chat/completions",
        content=chunked(),
        headers={"authorization": f"Bearer {KEY_A}", "content-type": "application/json"},
    )
    check(r, 413, openai_schemas)


@pytest.mark.parametrize(
    "model,status,code",
    [
        ("mock-429", 429, "upstream_rate_limited"),
        ("mock-500", 502, "upstream_server_error"),
        ("mock-503", 503, "upstream_unavailable"),
        ("mock-badjson", 502, "upstream_bad_response"),
        ("mock-timeout", 504, "upstream_timeout"),
        ("mock-401", 502, "upstream_server_error"),
        ("mock-huge", 502, "upstream_bad_response"),
    ],
)
def test_upstream_failures_map_to_typed_statuses(gateway, openai_schemas, model, status, code) -> None:
    r = post(gateway, {"model": model, "messages": MSG})
    err = check(r, status, openai_schemas, code=code, type_="rate_limit_error" if status == 429 else "api_error")
    if status == 429:
        assert r.headers["retry-after"] == "7"
    assert "Incorrect API key" not in err["message"]


def test_upstream_400_is_passed_back_as_400(gateway, openai_schemas) -> None:
    err = check(post(gateway, {"model": "mock-400", "messages": MSG}), 400, openai_schemas, code="upstream_rejected")
    assert "frobnicate" in err["message"]


def test_all_deployments_down_is_5xx_after_trying_each(gateway, openai_schemas) -> None:
    mock = gateway.extra["mock"]
    before = mock_stats(mock)["requests"]
    check(post(gateway, {"model": "all-down", "messages": MSG}), 503, openai_schemas)
    after = mock_stats(mock)["requests"]
    assert after.get("mock-500", 0) == before.get("mock-500", 0) + 1
    assert after.get("mock-503", 0) == before.get("mock-503", 0) + 1


def test_no_secret_in_logs_or_metrics(gateway) -> None:
    # drive a few failing and succeeding requests first, then read everything the gateway said
    for model in ("mock-401", "mock-gpt", "mock-500"):
        post(gateway, {"model": model, "messages": MSG})
    metrics = httpx.get(gateway.base + "/metrics").text
    out = gateway.output() + metrics
    for s in SECRETS:
        assert s not in out
    assert "tenant-a" not in metrics, "no key ids as metric labels"
