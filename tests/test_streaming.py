"""Streams through a running gateway: relay, fallback before the first byte, failures after it,
and clients that leave mid-stream."""

from __future__ import annotations

import json
import time

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import KEY_A, PROVIDER_KEY, Proc, mock_stats, stream_started

H = {"authorization": f"Bearer {KEY_A}"}
MSG = [{"role": "user", "content": "hi"}]


def events(gw: Proc, body: dict) -> tuple[httpx.Response, list[str]]:
    with httpx.stream("POST", gw.base + "/v1/chat/completions", headers=H, json=body, timeout=30) as r:
        lines = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    return r, lines


def test_stream_relays_chunk_by_chunk(gateway) -> None:
    """The first chunk reaches the client long before a slow upstream stream ends."""
    t0 = time.monotonic()
    with httpx.stream(
        "POST",
        gateway.base + "/v1/chat/completions",
        headers=H,
        json={"model": "mock-slow", "messages": MSG, "stream": True},
        timeout=30,
    ) as r:
        it = r.iter_lines()
        first = next(line for line in it if line.startswith("data: "))
        first_at = time.monotonic() - t0
        rest = [line for line in it if line.startswith("data: ")]
    total = time.monotonic() - t0
    assert json.loads(first[6:])["choices"][0]["delta"]["role"] == "assistant"
    assert first_at < 1.0 and total > 5.0, (first_at, total)  # 200 chunks x 50 ms upstream
    assert rest[-1] == "data: [DONE]"


def test_usage_requested_upstream_but_hidden_from_client(gateway) -> None:
    mock = gateway.extra["mock"]
    r, ev = events(gateway, {"model": "mock-gpt", "messages": MSG, "stream": True, "max_tokens": 4})
    sent = mock_stats(mock)["last_body"]
    assert sent["stream_options"] == {"include_usage": True}
    chunks = [json.loads(e) for e in ev[:-1]]
    assert all("usage" not in c for c in chunks) and all(c["choices"] for c in chunks)
    assert r.headers["x-switchyard-model"] == "mock-gpt"


def test_api_fields_pass_through_and_others_do_not(gateway) -> None:
    mock = gateway.extra["mock"]
    body = {
        "model": "mock-gpt",
        "messages": MSG,
        "seed": 7,
        "user": "u-1",
        "metadata": {"team": "x"},
        "logprobs": True,
        "top_k": 40,
        "api_base": "http://evil.example/v1",
        "api_key": "sk-client-chosen",
        "base_url": "http://evil.example",
    }
    r = httpx.post(gateway.base + "/v1/chat/completions", headers=H, json=body)
    assert r.status_code == 200
    stats = mock_stats(mock)
    sent = stats["last_body"]
    assert sent["model"] == "mock-gpt"
    assert {k: sent[k] for k in ("seed", "user", "metadata", "logprobs")} == {
        "seed": 7,
        "user": "u-1",
        "metadata": {"team": "x"},
        "logprobs": True,
    }
    # not OpenAI's fields: top_k only where the deployment passes it through (tests/test_exfiltration.py)
    assert not {"api_base", "api_key", "base_url", "top_k"} & set(sent)
    assert stats["last_headers"]["authorization"] == f"Bearer {PROVIDER_KEY}"


def test_fallback_before_first_byte(gateway) -> None:
    r = httpx.post(gateway.base + "/v1/chat/completions", headers=H, json={"model": "failover", "messages": MSG})
    assert r.status_code == 200
    assert r.headers["x-switchyard-model"] == "mock-gpt" and r.headers["x-switchyard-attempts"] == "2"
    r, ev = events(gateway, {"model": "failover-stream", "messages": MSG, "stream": True})
    assert r.status_code == 200 and r.headers["x-switchyard-model"] == "mock-gpt" and ev[-1] == "[DONE]"
    assert r.headers["x-switchyard-attempts"] == "2", "a stream counts its attempts as a unary answer does"
    r, ev = events(gateway, {"model": "mock-gpt", "messages": MSG, "stream": True})
    assert r.headers["x-switchyard-attempts"] == "1"


def test_stream_cut_after_first_byte_ends_with_error_event(gateway) -> None:
    r, ev = events(gateway, {"model": "mock-cut", "messages": MSG, "stream": True, "max_tokens": 10})
    assert r.status_code == 200
    assert ev[-1] != "[DONE]"
    last = json.loads(ev[-1])
    assert last["error"]["code"] == "upstream_stream_cut" and last["error"]["type"] == "api_error"
    assert len(ev) >= 3  # the chunks before the cut reached the client


def test_stream_without_done_ends_with_error_event(gateway) -> None:
    _, ev = events(gateway, {"model": "mock-nodone", "messages": MSG, "stream": True, "max_tokens": 3})
    assert json.loads(ev[-1])["error"]["code"] == "upstream_stream_cut"


def test_stream_failure_before_first_byte_is_a_plain_error(gateway) -> None:
    r, _ = events(gateway, {"model": "mock-500", "messages": MSG, "stream": True})
    assert r.status_code == 502


def test_client_disconnect_aborts_upstream_and_gateway_keeps_serving(gateway) -> None:
    mock = gateway.extra["mock"]
    before = mock_stats(mock)
    disconnects_before = _disconnects(gateway)
    for _ in range(3):
        s, _ = stream_started(gateway, {"model": "mock-slow", "messages": MSG, "stream": True}, 3)
        s.close()  # leave mid-stream (the upstream has ~10 s left to send)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        st = mock_stats(mock)
        if st["streams_aborted"] - before["streams_aborted"] >= 3:
            break
        time.sleep(0.1)
    st = mock_stats(mock)
    assert st["streams_aborted"] - before["streams_aborted"] == 3, "each upstream stream was cut when its client left"
    assert st["streams_completed"] == before["streams_completed"]
    # later requests are unaffected
    r = httpx.post(gateway.base + "/v1/chat/completions", headers=H, json={"model": "mock-gpt", "messages": MSG})
    assert r.status_code == 200
    assert _disconnects(gateway) - disconnects_before == 3


def _in_flight(gateway: Proc) -> float:
    for line in httpx.get(gateway.base + "/metrics").text.splitlines():
        if line.startswith("switchyard_requests_in_flight "):
            return float(line.split()[-1])
    raise AssertionError("no switchyard_requests_in_flight in /metrics")


def test_in_flight_counts_a_stream_until_it_ends_and_a_client_that_left(gateway) -> None:
    """The gauge of requests being served holds a stream while it is relayed, and drops back when the
    stream is done, when its client leaves, and after a refused request."""
    assert _in_flight(gateway) == 0
    s, _ = stream_started(gateway, {"model": "mock-slow", "messages": MSG, "stream": True}, 2)
    assert _in_flight(gateway) == 1  # the stream (this scrape is not a model request)
    s.close()  # leave mid-stream
    deadline = time.monotonic() + 10
    while _in_flight(gateway) != 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _in_flight(gateway) == 0
    r = httpx.post(gateway.base + "/v1/chat/completions", headers=H, json={"model": "mock-gpt"})
    assert r.status_code == 400
    events(gateway, {"model": "mock-gpt", "messages": MSG, "stream": True})
    assert _in_flight(gateway) == 0


def _disconnects(gateway: Proc) -> float:
    for line in httpx.get(gateway.base + "/metrics").text.splitlines():
        if line.startswith('switchyard_client_disconnects_total{model="mock-slow"}'):
            return float(line.split()[-1])
    return 0.0


def test_no_usage_upstream_is_estimated(gateway) -> None:
    r = httpx.post(
        gateway.base + "/v1/chat/completions",
        headers=H,
        json={"model": "mock-nousage", "messages": MSG, "max_tokens": 4},
    )
    assert r.headers["x-switchyard-usage-source"] == "estimated"
    assert r.json()["usage"]["completion_tokens"] > 0
    _, ev = events(
        gateway,
        {
            "model": "mock-nousage",
            "messages": MSG,
            "stream": True,
            "max_tokens": 4,
            "stream_options": {"include_usage": True},
        },
    )
    tail = json.loads(ev[-2])
    assert tail["choices"] == [] and tail["switchyard"]["usage_source"] == "estimated"
    assert tail["usage"]["completion_tokens"] > 0


def test_cost_header_and_unpriced_state(gateway) -> None:
    r = httpx.post(
        gateway.base + "/v1/chat/completions", headers=H, json={"model": "mock-gpt", "messages": MSG, "max_tokens": 4}
    )
    # mock usage: 11 prompt + 4 completion at $1/$2 per 1M (model_info prices)
    assert float(r.headers["x-switchyard-cost-usd"]) == pytest_approx(11e-6 + 8e-6)
    r = httpx.post(gateway.base + "/v1/chat/completions", headers=H, json={"model": "mock-unpriced", "messages": MSG})
    assert r.status_code == 200 and r.headers["x-switchyard-cost-usd"] == "unpriced"
    assert 'switchyard_unpriced_requests_total{model="mock-unpriced"}' in httpx.get(gateway.base + "/metrics").text


def pytest_approx(v: float):
    import pytest

    return pytest.approx(v, rel=1e-9)


def test_usage_on_an_empty_choice_after_stop_adds_no_chunk() -> None:
    """LiteLLM's proxy sends usage on a chunk whose one choice carries nothing, after the stop chunk:
    nothing is relayed for it (a client would see a chunk after ``finish_reason: stop``); a chunk with
    content and usage, or a finish reason, is still relayed."""
    from router.wire import normalize_chunk

    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    tail = {"choices": [{"index": 0, "delta": {}, "finish_reason": None}], "usage": usage}
    assert normalize_chunk(tail, "m", "id", 1) is None
    assert (
        normalize_chunk(
            {**tail, "choices": [{"index": 0, "delta": {"content": None}, "finish_reason": None}]}, "m", "id", 1
        )
        is None
    )
    kept = normalize_chunk({"choices": [{"index": 0, "delta": {"content": "hi"}}], "usage": usage}, "m", "id", 1)
    assert kept["choices"][0]["delta"] == {"content": "hi"}
    stop = normalize_chunk(
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage}, "m", "id", 1
    )
    assert stop["choices"][0]["finish_reason"] == "stop"
    # without usage an empty delta is relayed as before (it may be a provider's keep-alive the client expects)
    assert normalize_chunk({"choices": [{"index": 0, "delta": {}}]}, "m", "id", 1) is not None


_values = st.one_of(st.none(), st.booleans(), st.integers(-2, 3), st.text(max_size=3), st.just({}), st.just([]))
_deltas = st.one_of(
    st.fixed_dictionaries({"content": st.text(max_size=5)}),
    st.fixed_dictionaries({"role": st.sampled_from(["assistant", "user"]), "content": st.text(max_size=5)}),
    st.dictionaries(st.sampled_from(["content", "role", "refusal", "tool_calls", "reasoning_content"]), _values),
    st.builds(  # a token of text beside one other field: only the assistant's role may take the short way
        lambda text, extra: {"content": text, **extra},
        st.text(max_size=5),
        st.dictionaries(
            st.sampled_from(["role", "refusal", "tool_calls", "audio", "function_call"]), _values, max_size=1
        ),
    ),
    _values,
)
_choices = st.dictionaries(
    st.sampled_from(["index", "delta", "finish_reason", "logprobs"]),
    st.one_of(_deltas, st.sampled_from([None, "stop", "length", 0, 1, True])),
).map(lambda c: c if "delta" not in c or isinstance(c["delta"], dict) else {**c, "delta": {"content": "x"}})
_chunks = st.fixed_dictionaries(
    {"choices": st.one_of(st.lists(_choices, max_size=2), _values)},
    optional={
        "usage": st.one_of(st.none(), st.just({"prompt_tokens": 1, "completion_tokens": 1})),
        "system_fingerprint": st.one_of(st.none(), st.text(max_size=3), st.integers()),
        "model": st.text(max_size=3),
    },
)


_one_token = st.builds(  # the short way's own shape, and its near misses
    lambda delta, extra, usage: {"choices": [{"index": 0, "delta": delta, **extra}], **usage},
    st.builds(
        lambda text, extra: {"content": text, **extra},
        st.one_of(st.text(max_size=5), _values),
        st.dictionaries(st.sampled_from(["role", "refusal", "tool_calls", "audio"]), _values, max_size=1),
    ),
    st.dictionaries(st.sampled_from(["finish_reason", "logprobs"]), st.sampled_from([None, "stop", {}]), max_size=1),
    st.sampled_from([{}, {"usage": None}, {"usage": {"prompt_tokens": 1}}]),
)


@settings(max_examples=500, deadline=None)
@given(chunk=st.one_of(_chunks, _one_token))
def test_the_short_way_for_one_token_of_text_builds_what_the_general_one_does(chunk) -> None:
    """A chunk of one token's text is built directly; whatever the chunk, the result (or the error)
    is the general path's."""
    import copy

    from router.wire import _normalize_chunk, normalize_chunk

    def run(f, *a):
        try:
            return f(*a)
        except ValueError as exc:
            return ("error", str(exc))

    general = run(_normalize_chunk, copy.deepcopy(chunk), copy.deepcopy(chunk).get("choices"), "m", "id", 1)
    assert run(normalize_chunk, chunk, "m", "id", 1) == general


def test_a_finish_reason_that_is_not_a_string_is_read_as_none_of_the_known_ones() -> None:
    """An upstream's `finish_reason: {}` (or a list) was looked up in a set and raised TypeError:
    not the ValueError a malformed answer maps to, so the stream was cut without its error event."""
    from router.wire import normalize_chat, normalize_chunk

    for odd in ({}, [], {"why": "stop"}):
        answer = normalize_chat({"choices": [{"message": {"content": "x"}, "finish_reason": odd}]}, "m")
        assert answer["choices"][0]["finish_reason"] == "stop"
        chunk = normalize_chunk({"choices": [{"delta": {"content": "x"}, "finish_reason": odd}]}, "m", "id", 1)
        assert chunk is not None and chunk["choices"][0]["finish_reason"] is None
