"""OpenAI's legacy completions (POST /v1/completions) with the official openai SDK against the
embedded default (simulated providers)."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from openai.types import Completion

from tests.conftest import Proc, ledger_record
from tests.sdk_shape import assert_sdk_shape, unknown_fields


def client(p: Proc) -> openai.OpenAI:
    return openai.OpenAI(base_url=p.base + "/v1", api_key=p.extra["key"], max_retries=0)


def test_create_parses_as_the_sdks_completion_and_is_metered(embedded: Proc) -> None:
    raw = client(embedded).completions.with_raw_response.create(
        model="sim-small", prompt="Once upon a time", max_tokens=8, n=2, logprobs=2, stop=["zzz"]
    )
    data = json.loads(raw.text)
    done = assert_sdk_shape(Completion, data)
    assert done.object == "text_completion" and done.id.startswith("cmpl-") and len(done.choices) == 2
    for ch in done.choices:
        lp = ch.logprobs
        assert ch.text and ch.finish_reason == "length"
        assert "".join(lp.tokens) == ch.text and len(lp.token_logprobs) == len(lp.tokens) == len(lp.top_logprobs)
        assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(len(lp.tokens))]
        assert all(len(top) == 2 for top in lp.top_logprobs)
    row = ledger_record(embedded, embedded.extra["key"], raw.headers["x-request-id"])
    assert row["endpoint"] == "completions" and row["completion_tokens"] == done.usage.completion_tokens == 16


def test_default_max_tokens_is_16_and_echo_repeats_the_prompt(embedded: Proc) -> None:
    # seeded: the simulated answer is 12 to 160 words, so an unseeded one can end before 16 tokens
    done = client(embedded).completions.create(model="sim-small", prompt="Hello there", echo=True, seed=7)
    assert done.usage.completion_tokens == 16 and done.choices[0].finish_reason == "length"
    assert done.choices[0].text.startswith("Hello there") and len(done.choices[0].text) > len("Hello there")


def test_stream_with_and_without_usage(embedded: Proc) -> None:
    c = client(embedded)
    chunks = list(
        c.completions.create(
            model="sim-small",
            prompt="Count:",
            max_tokens=6,
            stream=True,
            echo=True,
            stream_options={"include_usage": True},
        )
    )
    for ch in chunks[:-1]:  # (the SDK's type has no null finish_reason, which OpenAI's own chunks carry until the end)
        assert not unknown_fields(ch)
    assert unknown_fields(chunks[-1]) == ["$.switchyard"]  # the usage chunk's money, as chat's usage chunk has it
    assert chunks[-1].switchyard["charge_usd"] > 0
    text = "".join(x.choices[0].text for x in chunks if x.choices)
    assert text.startswith("Count:") and chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 6
    assert [x.choices[0].finish_reason for x in chunks if x.choices][-1] == "length"
    plain = list(c.completions.create(model="sim-small", prompt="Count:", max_tokens=6, stream=True))
    assert all(x.usage is None and x.choices for x in plain)
    with httpx.stream(
        "POST",
        embedded.base + "/v1/completions",
        headers={"authorization": f"Bearer {embedded.extra['key']}"},
        json={"model": "sim-small", "prompt": "x", "max_tokens": 3, "stream": True},
    ) as s:
        lines = [line for line in s.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"


@pytest.mark.parametrize(
    "body,param",
    [
        ({"model": "sim-small"}, "prompt"),
        ({"model": "sim-small", "prompt": ["a"] * 21}, "prompt"),
        ({"model": "sim-small", "prompt": [1, 2, 3]}, "prompt"),
        ({"model": "sim-small", "prompt": "x", "suffix": "y"}, "suffix"),
        ({"model": "sim-small", "prompt": "x", "max_tokens": 0, "echo": True}, "max_tokens"),
        ({"model": "sim-small", "prompt": "x", "logprobs": 9}, "logprobs"),
        ({"model": "sim-small", "prompt": "x", "temperature": 5}, "temperature"),
        ({"model": "sim-small", "prompt": "x", "stream_options": {"include_usage": True}}, "stream_options"),
    ],
)
def test_bad_input_gets_an_openai_error(embedded: Proc, body: dict, param: str) -> None:
    r = httpx.post(
        embedded.base + "/v1/completions", json=body, headers={"authorization": f"Bearer {embedded.extra['key']}"}
    )
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param and err["message"]


def test_a_batch_of_prompts_is_one_answer_and_a_request_each_in_the_ledger(embedded: Proc) -> None:
    c = client(embedded)
    prompts = ["Roses are", "The sky is", "Once upon"]
    raw = c.completions.with_raw_response.create(model="sim-small", prompt=prompts, max_tokens=5, n=2, echo=True)
    done = assert_sdk_shape(Completion, json.loads(raw.text))
    assert [ch.index for ch in done.choices] == list(range(6))
    for ch in done.choices:  # choice i * n + j answers prompt i
        assert ch.text.startswith(prompts[ch.index // 2])
    ids = raw.headers["x-switchyard-batch-request-ids"].split(",")
    assert ids == [f"{raw.headers['x-request-id']}-{i}" for i in range(3)]
    rows = [ledger_record(embedded, embedded.extra["key"], i) for i in ids]
    assert all(r["endpoint"] == "completions" and r["completion_tokens"] == 10 for r in rows)
    assert done.usage.completion_tokens == 30 and done.usage.prompt_tokens == sum(r["prompt_tokens"] for r in rows)
    assert float(raw.headers["x-switchyard-charge-usd"]) == pytest.approx(sum(r["charge_usd"] for r in rows), rel=1e-9)
    assert float(raw.headers["x-switchyard-cost-usd"]) == pytest.approx(sum(r["cost_usd"] for r in rows), rel=1e-9)
    # streamed: the parts one after the other, one usage chunk with the sums, one [DONE]
    chunks = list(
        c.completions.create(
            model="sim-small", prompt=prompts, max_tokens=4, stream=True, stream_options={"include_usage": True}
        )
    )
    texts: dict[int, str] = {}
    for ch in chunks:
        for choice in ch.choices:
            texts[choice.index] = texts.get(choice.index, "") + choice.text
    assert sorted(texts) == [0, 1, 2] and all(texts.values())
    assert [x for x in chunks if x.usage] == [chunks[-1]] and chunks[-1].usage.completion_tokens == 12
    with httpx.stream(
        "POST",
        embedded.base + "/v1/completions",
        headers={"authorization": f"Bearer {embedded.extra['key']}"},
        json={"model": "sim-small", "prompt": prompts, "max_tokens": 3, "stream": True},
    ) as s:
        lines = [line for line in s.iter_lines() if line.startswith("data: ")]
    assert lines.count("data: [DONE]") == 1 and lines[-1] == "data: [DONE]"
