"""The catalog's API cost equals litellm's own cost calculation for the same usage (pinned litellm,
its bundled price map), across providers and token types, to within 1e-9 relative."""

from __future__ import annotations

from datetime import datetime, timezone

import os

import pytest

from pricing import PriceCatalog, Usage, cost_of
from pricing.loaders import load_catalog

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
litellm = pytest.importorskip("litellm")
from litellm.types.utils import (  # noqa: E402
    CompletionTokensDetailsWrapper,
    ModelResponse,
    PromptTokensDetailsWrapper,
)
from litellm.types.utils import Usage as LUsage  # noqa: E402

U = Usage
CASES: list[tuple[str, Usage]] = [
    # OpenAI: plain, cached, reasoning, embeddings
    ("gpt-4o", U(1000, 200)),
    ("gpt-4o", U(1000, 200, cached_tokens=512)),
    ("gpt-4o-mini", U(5000, 100, cached_tokens=1024)),
    ("gpt-4.1", U(10000, 5000, cached_tokens=4096)),
    ("gpt-4.1-nano", U(300, 50)),
    ("gpt-3.5-turbo", U(1200, 400)),
    ("o1", U(2000, 8000, cached_tokens=1024, reasoning_tokens=6000)),
    ("o3-mini", U(500, 3000, reasoning_tokens=2500)),
    ("o4-mini", U(700, 2100, reasoning_tokens=1500)),
    ("gpt-5", U(10000, 5000, cached_tokens=4000, reasoning_tokens=3000)),
    ("gpt-5-mini", U(12000, 900, cached_tokens=8000, reasoning_tokens=600)),
    ("text-embedding-3-small", U(1000, 0)),
    ("text-embedding-3-large", U(8000, 0)),
    # Azure, including a long-context tier (above 272k)
    ("azure/gpt-4o", U(4000, 300, cached_tokens=2048)),
    ("azure/gpt-4.1", U(900, 100)),
    ("azure_ai/gpt-5.4", U(300000, 2000, cached_tokens=100000)),
    ("azure_ai/gpt-5.4", U(272000, 2000)),
    # Anthropic models on Bedrock: cache reads and cache writes, and a 200k tier with cache writes
    ("bedrock/anthropic.claude-3-5-haiku-20241022-v1:0", U(3000, 100, cached_tokens=1000, cache_write_tokens=1500)),
    ("bedrock/anthropic.claude-opus-4-1-20250805-v1:0", U(10000, 5000, cached_tokens=2000, cache_write_tokens=3000)),
    ("bedrock/anthropic.claude-haiku-4-5-20251001-v1:0", U(6000, 700, cache_write_tokens=5000)),
    ("bedrock/anthropic.claude-sonnet-4-20250514-v1:0", U(250000, 1000, cached_tokens=20000, cache_write_tokens=30000)),
    ("bedrock/anthropic.claude-sonnet-4-20250514-v1:0", U(150000, 1000, cached_tokens=20000, cache_write_tokens=30000)),
    # Gemini / Vertex: long-context tiers, cached reads, reasoning priced on its own
    ("gemini/gemini-2.5-pro", U(250000, 1000, cached_tokens=100000)),
    ("gemini/gemini-2.5-pro", U(1000, 1000, reasoning_tokens=500)),
    ("gemini/gemini-2.5-flash", U(10000, 5000, reasoning_tokens=1000)),
    ("vertex_ai/gemini-2.5-flash", U(20000, 500, cached_tokens=10000)),
    ("vertex_ai/gemini-2.5-pro", U(210000, 3000, cached_tokens=50000, reasoning_tokens=2000)),
    ("perplexity/sonar", U(1000, 500)),
    ("vertex_ai/claude-3-5-haiku", U(1500, 300)),
    # Open-weights hosts and others
    ("deepseek/deepseek-chat", U(1000, 1000, cached_tokens=500)),
    ("deepseek/deepseek-reasoner", U(3000, 4000, cached_tokens=1000, reasoning_tokens=3000)),
    ("mistral/mistral-large-latest", U(1000, 1000)),
    ("mistral/mistral-small-latest", U(4000, 200, cached_tokens=2000)),
    ("together_ai/meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo", U(1000, 1000)),
    ("together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo", U(2500, 700)),
    ("fireworks_ai/accounts/fireworks/models/llama-v3p1-8b-instruct", U(1000, 1000, cached_tokens=500)),
    ("azure_ai/grok-4", U(2000, 1000)),
]


def litellm_cost(model: str, u: Usage) -> float:
    lu = LUsage(
        prompt_tokens=u.prompt_tokens,
        completion_tokens=u.completion_tokens,
        total_tokens=u.total_tokens,
        prompt_tokens_details=PromptTokensDetailsWrapper(
            cached_tokens=u.cached_tokens, cache_creation_tokens=u.cache_write_tokens or None
        ),
        completion_tokens_details=CompletionTokensDetailsWrapper(reasoning_tokens=u.reasoning_tokens),
        cache_creation_input_tokens=u.cache_write_tokens,
        cache_read_input_tokens=u.cached_tokens,
    )
    return litellm.completion_cost(completion_response=ModelResponse(model=model, usage=lu), model=model)


@pytest.fixture(scope="module")
def catalog() -> PriceCatalog:
    return load_catalog()


def test_at_least_thirty_cases_across_providers() -> None:
    assert len(CASES) >= 30
    assert any(u.cached_tokens for _, u in CASES) and any(u.cache_write_tokens for _, u in CASES)
    assert any(u.reasoning_tokens for _, u in CASES) and any(u.prompt_tokens > 200_000 for _, u in CASES)


@pytest.mark.parametrize("model,usage", CASES, ids=[f"{m}-{i}" for i, (m, _) in enumerate(CASES)])
def test_api_cost_matches_litellm(catalog: PriceCatalog, model: str, usage: Usage) -> None:
    key = catalog.key_for(model)
    assert key is not None, f"{model} is not in the catalog"
    ours = cost_of(usage, catalog.price(key, datetime.now(timezone.utc))).total
    theirs = litellm_cost(model, usage)
    assert theirs > 0
    assert ours == pytest.approx(theirs, rel=1e-9, abs=0), (model, ours, theirs)
