"""The reservation's prompt bound: texts are bounded by their UTF-8 length instead of being tokenised
on the request path, and the bound is never below the count, for any text and each encoding the
gateway counts with (o200k_base, cl100k_base). A request the bound would refuse (a token rate
limit, a budget, the per-request cap) is decided again by the count: nobody is refused for the
bound, and the prompt is tokenised only then."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.tokens import Tokenizer

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
    user=st.one_of(texts(1), texts(300)),
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
    assert spy.count_messages("gpt-4o", msgs, bound=True) == len(big) + len("user") + 3 + 3
    assert calls == 0, "nothing was tokenised"
    assert spy.count_messages("gpt-4o", [{"role": "user", "content": "a short one"}], bound=True) == 4 + 11 + 3 + 3
    assert calls == 0, "a short text is not tokenised either"
    assert spy.count_messages("gpt-4o", msgs) < len(big) and calls > len(big)


KEY = "sk-test-bound-0123456789abcdef"
# $1 per 1,000 prompt tokens: the bound's reservation and the count's differ by dollars, not cents
CONFIG = """
model_list:
  - model_name: small
    litellm_params: {model: simulated/small, speed: 0}
    model_info: {input_cost_per_token: 0.001, output_cost_per_token: 0.001}
auth:
  keys: [{id: k, tenant: t, key: os.environ/SY_BOUND_KEY}]
limits:
  %s
"""
ABOUT_40_TOKENS = " ".join(["hello"] * 40)  # 239 bytes, 40 tokens
ABOUT_200_TOKENS = " ".join(["hello"] * 200)


def _gateway(limits: str) -> Any:
    from starlette.testclient import TestClient

    from router.accounting.metering import MemorySink
    from router.app import create_app
    from router.build import build_services
    from router.config import parse_config

    env = {"SY_BOUND_KEY": KEY}
    cfg = parse_config(CONFIG % limits, env=env)
    svc = build_services(cfg, env=env, sink=MemorySink())
    exact_calls: list[bool] = []
    bound = svc.meter.prompt_bound

    def spied(dep: Any, body: Any, *, exact: bool = False) -> int:
        exact_calls.append(exact)
        return bound(dep, body, exact=exact)

    svc.meter.prompt_bound = spied  # type: ignore[method-assign]
    return TestClient(create_app(cfg, services=svc), raise_server_exceptions=False), svc, exact_calls


def _chat(c: Any, text: str) -> Any:
    return c.post(
        "/v1/chat/completions",
        headers={"authorization": f"Bearer {KEY}"},
        json={"model": "small", "max_tokens": 10, "messages": [{"role": "user", "content": text}]},
    )


@pytest.mark.parametrize(
    "limits, refusal",
    [
        # reserved: prompt x 1.25 + 32, plus max_tokens. Bound: (3 + 3 + 4 + 239) x 1.25 + 32 + 10 = 353;
        # count: (3 + 3 + 1 + 40) x 1.25 + 32 + 10 = 100; the 200-token prompt counts 302.
        ("rate_limits: [{scope: key, id: k, tpm: 250}]", 429),
        # the same tokens at $0.001 each: bound $0.35, count $0.10, the long prompt $0.30
        ("budgets: [{scope: key, id: k, period: day, usd: 0.25}]", 429),
        ("max_request_usd: 0.25", 400),
    ],
)
def test_a_request_the_bound_would_refuse_is_decided_by_the_count(limits: str, refusal: int) -> None:
    c, svc, exact_calls = _gateway(limits)
    with c:
        r = _chat(c, ABOUT_40_TOKENS)
        assert r.status_code == 200, r.text
        assert exact_calls == [False, True], "bounded first; counted because the bound was refused"
        exact_calls.clear()
        r = _chat(c, "hi")
        assert r.status_code == 200 and exact_calls == [False], "a request the bound admits is not counted"
        exact_calls.clear()
        rejections = _rejections(svc)
        r = _chat(c, ABOUT_200_TOKENS)
        assert r.status_code == refusal, r.text
        assert exact_calls == [False, True]
        assert _rejections(svc) - rejections == (1 if refusal == 429 else 0), "one refusal counted, not two"
        assert len(svc.meter.sink.records) == 2, "the refused request reached no backend and is not metered"


def _rejections(svc: Any) -> float:
    from prometheus_client import REGISTRY  # noqa: F401  (the gateway's own registry is read below)

    total = 0.0
    for metric in (svc.meter.metrics.rate_rejections, svc.meter.metrics.budget_rejections):
        for m in metric.collect():
            total += sum(s.value for s in m.samples if s.name.endswith("_total"))
    return total


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    output=st.sampled_from([0.00001, 0.00002]),
    reasoning=st.sampled_from([None, 0.000005, 0.00001, 0.00004]),
    markup=st.sampled_from([0.0, 0.2]),
    prompt=st.integers(0, 5000),
    out=st.integers(0, 4000),
)
def test_the_worst_case_is_the_dearest_split_of_the_output(
    output: float, reasoning: float | None, markup: float, prompt: int, out: int
) -> None:
    """A reservation's worst case: the output bound all plain or all reasoning, whichever is dearer
    (computed once when reasoning is not priced apart), never below either."""
    from pricing.catalog import cost_of
    from pricing.usage import Usage
    from router.accounting.metering import MemorySink
    from router.build import build_services
    from router.config import parse_config

    info = {"input_cost_per_token": 0.000003, "output_cost_per_token": output}
    if reasoning is not None:
        info["output_cost_per_reasoning_token"] = reasoning
    cfg = parse_config(
        "model_list:\n  - model_name: m\n    litellm_params: {model: simulated/small}\n"
        f"    model_info: {orjson.dumps(info).decode()}\n"
        f"billing: {{default_plan: p, plans: {{p: {{markup: {markup}}}}}}}\n"
    )
    svc = build_services(cfg, env={}, sink=MemorySink())
    dep = svc.registry.candidates("m", "chat")[0]
    price = dep.price(svc.meter.catalog)
    splits = [cost_of(Usage(prompt, out, reasoning_tokens=r), price).total * (1 + markup) for r in (0, out)]
    assert svc.meter.worst_case(dep, None, "m", prompt, out) == pytest.approx(max(splits), rel=1e-12)
