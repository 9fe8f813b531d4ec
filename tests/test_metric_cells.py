"""The request path's metric updates skip prometheus_client's lock (router.metrics.fast): the
exposition must be what the library's own updates give, to the digit, for any sequence of updates."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import Counter, generate_latest

from router.metrics import Metrics, fast

AMOUNTS = st.one_of(
    st.floats(min_value=0, max_value=1e6, allow_nan=False),
    st.sampled_from([0.0, 0.005, 0.01, 0.0001, 0.00025, 300.0, 1e-9, math.inf]),
    st.integers(min_value=0, max_value=10**6),
)
OBSERVED = st.one_of(
    st.floats(min_value=-10, max_value=1e4),
    st.sampled_from([0.005, 0.01, 0.025, 0.0001, 0.1, 300.0, 300.0000001, -0.0, 0.0]),  # on a bucket's bound
    st.sampled_from([math.nan, math.inf, -math.inf]),
)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("cost"), st.sampled_from(["a", "b"]), AMOUNTS),
        st.tuples(st.just("tokens"), st.sampled_from(["input", "output"]), AMOUNTS),
        st.tuples(st.just("duration"), st.sampled_from(["true", "false"]), OBSERVED),
        st.tuples(st.just("overhead"), st.just("chat"), OBSERVED),
        st.tuples(st.just("queue"), st.just(""), st.integers(min_value=0, max_value=50_000)),
    ),
    max_size=60,
)


def child(m: Metrics, name: str, label: str):
    if name == "cost":
        return m.cost.labels(label, "openai")
    if name == "tokens":
        return m.tokens.labels("gpt", "openai", label)
    if name == "duration":
        return m.duration.labels("chat", label)
    if name == "overhead":
        return m.overhead.labels(label)
    return m.ledger_queue


def apply(m: Metrics, ops, wrap) -> None:
    for name, label, amount in ops:
        c = wrap(child(m, name, label))
        if name == "queue":
            c.set(amount)
        elif name in ("duration", "overhead"):
            c.observe(amount)
        else:
            c.inc(amount)


def exposition(m: Metrics) -> list[str]:
    """The samples, less the creation times (the two registries were made at different instants)."""
    return [line for line in generate_latest(m.registry).decode().splitlines() if "_created" not in line]


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_updates_expose_what_the_library_gives(ops):
    library, cells = Metrics(), Metrics()
    apply(library, ops, lambda c: c)
    apply(cells, ops, fast)
    assert exposition(cells) == exposition(library)


def test_the_pinned_library_takes_the_lock_free_way():
    """Fails if prometheus-client's internals change under a version bump (then ``fast`` would hand
    back the library's children, correct but slow): look at router/metrics.py again."""
    m = Metrics()
    assert type(fast(m.cost.labels("a", "b"))).__name__ == "_Count"
    assert type(fast(m.duration.labels("chat", "false"))).__name__ == "_Observe"
    assert type(fast(m.ledger_queue)).__name__ == "_Level"


def test_a_negative_count_is_refused_both_ways():
    m = Metrics()
    for c in (m.cost.labels("a", "b"), fast(m.cost.labels("a", "b"))):
        with pytest.raises(ValueError):
            c.inc(-1)
    assert 'switchyard_cost_usd_total{model="a",provider="b"} 0.0' in exposition(m)


def test_values_kept_elsewhere_are_left_to_the_library():
    """A child whose value is not the library's in-process one (multiprocess mode keeps values in
    memory-mapped files) is returned as it is, and so is an unlabelled parent."""
    m = Metrics()
    c = m.cost.labels("a", "b")
    c._value = object()  # stands in for a multiprocess value
    assert fast(c) is c
    parent = Counter("other", "x", ["l"], registry=None)
    assert fast(parent) is parent
