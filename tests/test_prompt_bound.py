"""The reservation's prompt bound: long texts are bounded by their UTF-8 length instead of being
tokenised on the request path, and the bound is never below the count, for any text and each
encoding the gateway counts with (o200k_base, cl100k_base)."""

from __future__ import annotations

import time

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.tokens import BOUND_ABOVE_CHARS, Tokenizer

TOK = Tokenizer()
MODELS = ("gpt-4o", "gpt-4", "claude-sonnet-4-5")  # o200k_base, cl100k_base, and the approximation
# printable text, emoji, CJK, combining marks, whitespace runs and strings that look like special tokens
PIECES = st.one_of(
    st.text(min_size=1, max_size=400),
    st.sampled_from(
        [
            "<|endoftext|>",
            "<|im_start|>",
            "\U0001f600" * 7,
            "\u4e2d\u6587" * 11,
            "e\u0301" * 9,
            " " * 33,
            "\n\n\t",
            "0123456789" * 5,
        ]
    ),
)


def texts(min_chars: int) -> st.SearchStrategy[str]:
    return (
        st.lists(PIECES, min_size=1, max_size=60)
        .map("".join)
        .map(lambda t: (t * (min_chars // max(1, len(t)) + 1)) if len(t) < min_chars else t)
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    system=texts(1),
    user=st.one_of(texts(1), texts(BOUND_ABOVE_CHARS + 1)),
    image=st.booleans(),
    model=st.sampled_from(MODELS),
)
def test_the_bound_is_never_below_the_count(system: str, user: str, image: bool, model: str) -> None:
    parts = [{"type": "text", "text": user}] + (
        [{"type": "image_url", "image_url": {"url": "data:,"}}] if image else []
    )
    messages = [
        {"role": "system", "content": system},
        {"role": "user", "content": parts},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": user[:5000]}}],
        },
    ]
    tools = [{"type": "function", "function": {"name": "lookup", "description": user[:3000], "parameters": {}}}]
    exact = TOK.count_messages(model, messages, tools)
    bound = TOK.count_messages(model, messages, tools, bound=True)
    assert bound >= exact
    if max(len(system), len(user), len(orjson.dumps(tools).decode())) <= BOUND_ABOVE_CHARS:
        assert bound == exact, "short texts are counted exactly"


def test_a_long_prompt_is_bounded_in_time_proportional_to_a_length_not_a_tokenisation() -> None:
    """The bound of a 100 KB prompt reads its length; the count tokenises it. Not a timing target (the
    benchmarks hold those): a check that the bound path does not tokenise, by counting calls."""
    calls = 0
    enc = TOK.encoding("gpt-4o")

    class Spy:
        name = enc.name

        def encode(self, text: str, **kw: object) -> list[int]:
            nonlocal calls
            calls += len(text)
            return enc.encode(text, **kw)

    spy = Tokenizer()
    spy._encodings["o200k_base"] = Spy()  # type: ignore[assignment]
    big = "word " * 20_000 + str(time.time())
    msgs = [{"role": "user", "content": big}]
    assert spy.count_messages("gpt-4o", msgs, bound=True) == len(big) + 3 + 3 + 1
    assert calls < 100, "only the role was tokenised"
    assert spy.count_messages("gpt-4o", msgs) < len(big) and calls > len(big)
