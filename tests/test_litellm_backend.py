"""The litellm-translated backend, against the mock upstream process (litellm speaking 'openai')."""

from __future__ import annotations

import json

import httpx

from tests.conftest import KEY_A, PROVIDER_KEY, mock_stats

H = {"authorization": f"Bearer {KEY_A}"}
MSG = [{"role": "user", "content": "hi"}]


def test_litellm_backend_non_stream_and_stream(gateway, openai_schemas) -> None:
    from tests.schema import assert_valid

    r = httpx.post(gateway.base + "/v1/chat/completions", headers=H, timeout=60,
                   json={"model": "via-litellm", "messages": MSG, "max_tokens": 3})
    assert r.status_code == 200, r.text
    data = r.json()
    assert_valid(openai_schemas, "CreateChatCompletionResponse", data)
    assert data["model"] == "via-litellm" and data["usage"]["completion_tokens"] == 3
    assert float(r.headers["x-switchyard-cost-usd"]) > 0
    assert mock_stats(gateway.extra["mock"])["last_headers"]["authorization"] == f"Bearer {PROVIDER_KEY}"

    with httpx.stream("POST", gateway.base + "/v1/chat/completions", headers=H, timeout=60,
                      json={"model": "via-litellm", "messages": MSG, "max_tokens": 3, "stream": True,
                            "stream_options": {"include_usage": True}}) as s:
        ev = [line[6:] for line in s.iter_lines() if line.startswith("data: ")]
    assert ev[-1] == "[DONE]"
    chunks = [json.loads(e) for e in ev[:-1]]
    for c in chunks:
        assert_valid(openai_schemas, "CreateChatCompletionStreamResponse", c)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "hello world world"
    assert chunks[-1]["usage"]["completion_tokens"] == 3
