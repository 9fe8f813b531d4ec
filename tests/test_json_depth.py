"""The nesting check on request bodies (router/inputs.py): a body deeper than the limit is a 400 in
the API's shape wherever the nesting sits, and deciding that a body cannot be that deep reads a long
prompt without counting it byte by byte."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.errors import APIError
from router.inputs import _COUNT_BELOW, MAX_JSON_DEPTH, check_depth, opens_exceed
from tests.test_hostile import deep_json  # JSON text nested a given depth (orjson writes at most 254)

brackets = st.lists(
    st.sampled_from([b"[", b"{", b"]", b"}", b"a", b'"', b" ", b"x" * 50, b"[" * 40, b"{" * 40]), max_size=300
).map(b"".join)


@given(raw=brackets, limit=st.integers(0, 300), pad=st.integers(0, 2 * _COUNT_BELOW))
@settings(max_examples=400, deadline=None)
def test_opens_exceed_equals_the_count_on_short_and_long_bodies(raw: bytes, limit: int, pad: int) -> None:
    """The same answer as counting every '[' and '{', below the counting threshold and above it
    (where the opening bytes are found one by one and the search stops past the limit)."""
    for body in (raw, b" " * pad + raw, raw + b"z" * pad):
        assert opens_exceed(body, limit) == (body.count(b"[") + body.count(b"{") > limit)


@pytest.mark.parametrize("prompt_bytes", [0, 10 * _COUNT_BELOW])
@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1, 300])
def test_a_body_deeper_than_the_limit_is_refused_short_or_long(prompt_bytes: int, depth: int) -> None:
    """The limit holds whether the body is short (counted) or carries a long prompt (searched)."""
    head = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "p" * prompt_bytes}]})
    raw = head[:-1] + b',"x":' + deep_json(depth).encode() + b"}"  # containers: the body (1) down to ``depth``
    body = orjson.loads(raw)
    assert (len(raw) > _COUNT_BELOW) == (prompt_bytes > 0)
    if depth > MAX_JSON_DEPTH:
        with pytest.raises(APIError) as err:
            check_depth(body, raw)
        assert err.value.status == 400 and "nested more than" in err.value.message
    else:
        check_depth(body, raw)


def test_a_long_flat_body_is_not_walked() -> None:
    """A long body with few brackets (a long prompt, a long token array) is decided by the search
    alone: the parsed object is never walked."""

    class Exploding(dict):  # a walk would read its values
        def values(self):  # type: ignore[override]
            raise AssertionError("walked")

    tokens = list(range(30_000))
    raw = orjson.dumps({"model": "e", "input": [tokens]})
    assert len(raw) > _COUNT_BELOW and not opens_exceed(raw, MAX_JSON_DEPTH)
    check_depth(Exploding(model="e", input=[tokens]), raw)
