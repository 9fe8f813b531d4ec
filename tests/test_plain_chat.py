"""A chat body of the plain shape is accepted without building the model: never one the model refuses.

`validate_chat` checks the common shape (model, text messages, a few scalar fields) directly and
sends everything else through `ChatRequest`. These tests hold that the short way changes no verdict
and no error: for any body, `validate_chat` refuses exactly what the full validation refuses, with
the same error, and the bodies real clients send take the short way.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router import plain_chat, protocol
from router.errors import APIError
from router.plain_chat import plainly_valid
from router.protocol import validate_chat, validate_chat_fully

LIMIT = 4096

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=LIMIT + 3),
    st.sampled_from([0.0, 0.5, 1.0, 1.0000001, 2.0, 2.0000001, -0.1, math.nan, math.inf, -math.inf]),
    st.text(max_size=5),
    st.sampled_from(["x" * 256, "x" * 257, "", "0.5", "true"]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=2), st.dictionaries(st.text(max_size=3), scalars, max_size=2))
roles = st.one_of(st.sampled_from(["system", "developer", "user", "assistant", "tool", "function", "bot", ""]), scalars)
contents = st.one_of(
    st.none(),
    st.text(max_size=20),
    st.integers(),
    st.just([{"type": "text", "text": "hi"}]),
    st.just([{"type": "text"}]),
    st.just([]),
)


@st.composite
def messages(draw: Any) -> Any:
    m: dict[str, Any] = {}
    if draw(st.booleans()) or draw(st.booleans()):
        m["role"] = draw(roles)
    if draw(st.booleans()) or draw(st.booleans()):
        m["content"] = draw(contents)
    if draw(st.integers(0, 4)) == 0:
        m["name"] = draw(st.one_of(st.text(max_size=4), st.integers(), st.none()))
    if draw(st.integers(0, 6)) == 0:
        m[draw(st.sampled_from(["tool_calls", "tool_call_id", "audio", "extra"]))] = draw(values)
    return m if draw(st.integers(0, 15)) else draw(values)


FIELDS = {
    "model": st.one_of(st.sampled_from(["mock-gpt", "x" * 256, "x" * 257, ""]), scalars),
    "messages": st.one_of(st.lists(messages(), max_size=3), values),
    "stream": st.one_of(st.booleans(), st.none(), scalars),
    "stream_options": st.one_of(
        st.none(),
        st.fixed_dictionaries({"include_usage": st.one_of(st.booleans(), st.none(), scalars)}),
        st.just({}),
        st.just({"include_usage": True, "other": 1}),
        values,
    ),
    "max_tokens": st.one_of(st.sampled_from([0, 1, 16, LIMIT, LIMIT + 1, 1.0, True]), scalars),
    "max_completion_tokens": st.one_of(st.sampled_from([0, 1, LIMIT, LIMIT + 1, 2.5]), scalars),
    "temperature": st.one_of(st.sampled_from([0, 2, 2.0000001, 3, -1e-9, math.nan, math.inf, True]), scalars),
    "top_p": st.one_of(st.sampled_from([0, 1, 1.0000001, 2, -1e-9, math.nan, -math.inf, False]), scalars),
    "user": st.one_of(st.text(max_size=4), scalars),
    "n": scalars,
    "seed": scalars,
    "stop": values,
    "tools": values,
    "tool_choice": values,
    "models": st.one_of(st.just(["mock-gpt"]), values),
    "metadata": values,
    "extra_field": values,
}


plain_messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["system", "developer", "user", "assistant"]), "content": st.text(max_size=8)},
        optional={"name": st.one_of(st.text(max_size=4), scalars)},
    ),
    min_size=1,
    max_size=3,
)


@st.composite
def bodies(draw: Any) -> Any:
    names = draw(st.lists(st.sampled_from(sorted(FIELDS)), unique=True, max_size=7))
    if draw(st.booleans()):  # a plain body with one or two fields of any value: the edges of the short way
        body = {"model": "mock-gpt", "messages": draw(plain_messages)}
        if draw(st.booleans()):
            body["stream"] = True
        names = draw(st.lists(st.sampled_from(sorted(plain_chat._PLAIN_FIELDS)), unique=True, max_size=2))
    else:
        body = {}
    body.update({n: draw(FIELDS[n]) for n in names})
    if draw(st.integers(0, 2)):  # most bodies carry the two required fields
        body.setdefault("model", draw(FIELDS["model"]))
        body.setdefault("messages", draw(st.lists(messages(), min_size=1, max_size=3)))
    return body


def verdict(fn: Any, body: dict[str, Any]) -> tuple[str, ...]:
    try:
        fn(body)
    except APIError as exc:
        return ("refused", exc.status, repr(exc.body))
    return ("accepted",)


def full(body: dict[str, Any]) -> None:
    """The verdict before the short way existed: the message count, then the model and its checks."""
    validate_chat(body, max_messages=10**6, max_tokens_limit=LIMIT)  # the `models` form and the count
    validate_chat_fully(body, max_tokens_limit=LIMIT)


@settings(max_examples=3000, deadline=None)
@given(bodies())
def test_the_short_way_refuses_exactly_what_the_model_refuses(body: dict[str, Any]) -> None:
    plain = plainly_valid(dict(body), LIMIT)
    ours = verdict(lambda b: validate_chat(b, max_messages=10**6, max_tokens_limit=LIMIT), dict(body))
    theirs = verdict(full, dict(body))
    assert ours == theirs, (body, plain)
    if plain:
        assert theirs == ("accepted",), body  # the short way never admits a body the model refuses


CLIENT_BODIES = [
    # the OpenAI SDK's ordinary call, the benchmark's body, a stream asking for usage, a named message
    {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello"}]},
    {
        "model": "mock-gpt",
        "max_tokens": 16,
        "stream": False,
        "messages": [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "hi"}],
    },
    {
        "model": "mock-gpt",
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.7,
        "top_p": 1,
        "max_completion_tokens": 100,
        "user": "u-1",
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": "hi", "name": "ann"},
            {"role": "assistant", "content": None},
            {"role": "user", "content": "again"},
        ],
    },
]


@pytest.mark.parametrize("body", CLIENT_BODIES)
def test_what_clients_send_takes_the_short_way(body: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*a: Any, **k: Any) -> None:
        raise AssertionError("the full validation ran")

    validate_chat_fully(body, max_tokens_limit=LIMIT)  # the model accepts it
    monkeypatch.setattr(protocol, "validate_chat_fully", refuse)
    validate_chat(body, max_messages=100, max_tokens_limit=LIMIT)


@pytest.mark.parametrize(
    "change",
    [
        {"max_tokens": LIMIT + 1},
        {"stream": False, "stream_options": {"include_usage": True}},
        {"temperature": math.nan},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]},
        {"model": ""},
    ],
)
def test_what_the_short_way_declines_gets_the_full_way(change: dict[str, Any]) -> None:
    body = {**CLIENT_BODIES[0], **change}
    assert not plainly_valid(body, LIMIT)
    assert verdict(lambda b: validate_chat(b, max_messages=100, max_tokens_limit=LIMIT), body) == verdict(full, body)


EDGES: dict[str, list[Any]] = {
    "model": ["", "m", "x" * 256, "x" * 257, 1, None, ["m"]],
    "stream": [True, False, None, 0, 1, "true"],
    "max_tokens": [0, 1, LIMIT, LIMIT + 1, -1, 1.0, True, None, "16"],
    "max_completion_tokens": [0, 1, LIMIT, LIMIT + 1, 2.5, False, None],
    "temperature": [0, 0.0, 2, 2.0, 2.0000001, -1e-9, -0.0, math.nan, math.inf, True, None, "1"],
    "top_p": [0, 1, 1.0, 1.0000001, -1e-9, math.nan, -math.inf, False, None],
    "user": ["", "u", "x" * 256, "x" * 257, 1, None],
    "stream_options": [None, {}, {"include_usage": True}, {"include_usage": 1}, {"include_usage": None}, {"x": 1}, []],
    "messages": [
        [],
        [{"role": "user"}],
        [{"role": "user", "content": None}],
        [{"role": "user", "content": ""}],
        [{"role": "user", "content": 1}],
        [{"role": "user", "content": "x", "name": "n"}],
        [{"role": "user", "content": "x", "name": 1}],
        [{"role": "user", "content": "x", "name": None}],
        [{"role": "tool", "content": "x"}],
        [{"role": "bot", "content": "x"}],
        [{"content": "x"}],
        [{"role": "user", "content": "x", "extra": 1}],
        ["hi"],
        "hi",
    ],
}


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("field,value", [(f, v) for f, vs in EDGES.items() for v in vs])
def test_each_plain_field_at_its_edges(field: str, value: Any, stream: bool) -> None:
    body = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}], "stream": stream, field: value}
    assert verdict(lambda b: validate_chat(b, max_messages=100, max_tokens_limit=LIMIT), dict(body)) == verdict(
        full, dict(body)
    )
    if plainly_valid(dict(body), LIMIT):
        assert verdict(full, dict(body)) == ("accepted",)
