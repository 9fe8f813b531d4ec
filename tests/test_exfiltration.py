"""No request field can make the gateway call a URL of the client's choosing, send the operator's
provider key elsewhere, or answer from a provider-side mock instead of the upstream.

Every keyword argument litellm's completion and embedding accept (their signatures, litellm's list
of its own parameters, every ``kwargs.get``/``kwargs.pop`` name in its main module) and every field
of OpenAI's chat and embeddings request types is sent, one at a time, carrying a loopback listener's
URL in three shapes (a string, a list of deployment-like objects, an object), to:

- a litellm deployment whose upstream fails (a fallback would be tried: the old ``fallbacks`` hole),
- a litellm deployment whose upstream answers (a mock would fabricate the answer),
- an OpenAI-compatible deployment whose upstream fails.

The listener must see nothing, every request that passed validation must reach the configured
upstream exactly once, and the OpenAI-compatible upstream must receive only the API's own fields.
"""

from __future__ import annotations

import inspect
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from tests.conftest import KEY_A, PROVIDER_KEY, Proc, mock_config, mock_stats, start_gateway

H = {"authorization": f"Bearer {KEY_A}"}
MSG = [{"role": "user", "content": "hi"}]


class _Listener:
    """An HTTP server on loopback that records every request it gets (any method, any path)."""

    def __init__(self) -> None:
        hits: list[tuple[str, str, dict[str, str]]] = []

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                hits.append((self.command, self.path, dict(self.headers)))
                self.send_response(500)
                self.end_headers()

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _any

            def log_message(self, *args: Any) -> None:
                pass

        self.hits = hits
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def field_names() -> list[str]:
    from openai.types import embedding_create_params
    from openai.types.chat import completion_create_params

    from router.backends.litellm_backend import _litellm, control_params

    litellm = _litellm()  # as the gateway imports it: the local price map, nothing fetched

    names = set(control_params())
    names |= set(inspect.signature(litellm.completion).parameters) | set(
        inspect.signature(litellm.embedding).parameters
    )
    names |= set(completion_create_params.CompletionCreateParamsBase.__annotations__)
    names |= set(embedding_create_params.EmbeddingCreateParams.__annotations__)
    main = Path(litellm.__file__).parent / "main.py"
    names |= set(re.findall(r"""kwargs\.(?:get|pop)\(\s*["'](\w+)["']""", main.read_text()))
    # named in the hardening report, whatever litellm's source looks like
    names |= {
        "fallbacks",
        "mock_tool_calls",
        "mock_response",
        "api_base",
        "base_url",
        "extra_headers",
        "model_list",
        "context_window_fallback_dict",
        "mock_testing_fallbacks",
        "_skip_mcp_handler",
    }
    return sorted(names - {"kwargs", "self", "model", "messages", "input"})


def payloads(url: str) -> list[Any]:
    target = {
        "model": "anthropic/claude-sonnet-4-5",
        "api_base": url,
        "base_url": url,
        "url": url,
        "api_key": "sk-attacker",
        "custom_llm_provider": "openai",
    }
    return [url + "/steal", [target], target]


@pytest.fixture(scope="module")
def setup(mock_upstream: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proc, Proc, _Listener]]:
    api = mock_upstream.base + "/v1"
    extra = "".join(
        f"  - model_name: {name}\n    litellm_params: {{model: {model}, api_base: '{api}', "
        f"api_key: os.environ/MOCK_PROVIDER_KEY, backend: litellm, timeout: 5}}\n"
        for name, model in (("ll-fail", "openai/mock-500"), ("ll-ok", "openai/mock-gpt"))
    )
    cfg = mock_config(mock_upstream.base).replace("model_list:\n", "model_list:\n" + extra, 1)
    gw = start_gateway(tmp_path_factory.mktemp("exfil"), cfg)
    listener = _Listener()
    yield gw, mock_upstream, listener
    listener.close()
    gw.stop()


def _send(gw: Proc, model: str, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    with httpx.Client(timeout=30) as client, ThreadPoolExecutor(8) as pool:
        return list(
            pool.map(
                lambda b: client.post(
                    gw.base + "/v1/chat/completions",
                    headers=H,
                    json={"model": model, "messages": MSG, "max_tokens": 3, **b},
                ),
                bodies,
            )
        )


@pytest.mark.parametrize(
    "model,upstream,answers",
    [("ll-fail", "mock-500", False), ("ll-ok", "mock-gpt", True), ("mock-500", "mock-500", False)],
)
def test_no_field_reaches_another_url_or_a_mock(
    setup: tuple[Proc, Proc, _Listener], model: str, upstream: str, answers: bool
) -> None:
    gw, mock, listener = setup
    names = field_names()
    assert len(names) > 300, "litellm's parameters were enumerated"
    bodies = [{name: value} for name in names for value in payloads(listener.url)]
    before = mock_stats(mock)["requests"].get(upstream, 0)
    responses = _send(gw, model, bodies)
    assert listener.hits == [], f"the listener was called: {listener.hits[:3]}"
    statuses = {r.status_code for r in responses}
    assert all(s < 500 or s in (502, 503) for s in statuses), statuses
    validated = [r for r in responses if r.status_code != 400]
    assert validated, "some requests passed validation"
    for body, r in zip(bodies, responses):
        if answers:
            assert r.status_code in (200, 400), (body, r.text[:300])
            if r.status_code == 200:
                assert r.json()["choices"][0]["message"]["content"] == "hello world world", (body, r.text[:300])
        else:
            assert r.status_code != 200, ("an answer without the upstream", body, r.text[:300])
            if r.status_code != 400:
                assert "upstream is sad" in r.text, (body, r.text[:300])
        assert PROVIDER_KEY not in r.text
    after = mock_stats(mock)["requests"].get(upstream, 0)
    assert after - before == len(validated), "each validated request reached the configured upstream exactly once"


def test_openai_upstream_gets_only_the_api_fields(setup: tuple[Proc, Proc, _Listener]) -> None:
    from router.protocol import CHAT_FIELDS

    gw, mock, listener = setup
    httpx.post(mock.base + "/_reset")
    bodies = [{name: listener.url} for name in field_names()]
    _send(gw, "mock-gpt", bodies)
    seen = set(mock_stats(mock)["fields"])
    assert seen, "requests reached the upstream"
    assert seen <= CHAT_FIELDS | {"model"}, sorted(seen - CHAT_FIELDS)
    assert listener.hits == []


def test_pass_through_fields_are_per_deployment_and_never_litellm_controls(mock_upstream: Proc, tmp_path: Path) -> None:
    api = mock_upstream.base + "/v1"
    base = mock_config(mock_upstream.base)
    ok = base.replace(
        "model_list:\n",
        "model_list:\n"
        f"  - model_name: topk\n    litellm_params: {{model: openai/mock-gpt, api_base: '{api}', "
        "api_key: os.environ/MOCK_PROVIDER_KEY, pass_through_fields: [top_k]}\n",
        1,
    )
    gw = start_gateway(tmp_path / "ok", ok)
    try:
        httpx.post(mock_upstream.base + "/_reset")
        for model in ("topk", "mock-gpt"):
            r = httpx.post(
                gw.base + "/v1/chat/completions",
                headers=H,
                json={"model": model, "messages": MSG, "top_k": 5, "frobnicate": 1},
                timeout=30,
            )
            assert r.status_code == 200, r.text
        fields = mock_stats(mock_upstream)["fields"]
        assert fields.get("top_k") == 1, "top_k reached the deployment that passes it through, and only it"
        assert "frobnicate" not in fields
    finally:
        gw.stop()
    bad = base.replace(
        "model_list:\n",
        "model_list:\n"
        f"  - model_name: evil\n    litellm_params: {{model: anthropic/x, api_base: '{api}', "
        "api_key: os.environ/MOCK_PROVIDER_KEY, pass_through_fields: [fallbacks]}\n",
        1,
    )
    with pytest.raises(RuntimeError, match="fallbacks"):
        start_gateway(tmp_path / "bad", bad)
