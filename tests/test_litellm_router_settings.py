"""A LiteLLM proxy config's router settings mean what they say: fallbacks, context-window
fallbacks, num_retries, timeout, allowed_fails and cooldown_time map onto Switchyard's own
mechanisms; per-deployment router fields (rpm, tpm...) never reach a provider; every setting not
honoured is named, exactly."""

from __future__ import annotations

import subprocess
from typing import Iterator

import httpx
import pytest

from router.config import Config, ignored_litellm_settings, load_config
from tests.conftest import KEY_A, KEY_C, SWITCHYARD, Proc, mock_config, mock_stats, start_gateway, start_mock

H = {"authorization": f"Bearer {KEY_A}"}
ROUTER = """router_settings:
  num_retries: 0
  allowed_fails: 2
  cooldown_time: 30
  timeout: 9
  routing_strategy: least-busy
  fallbacks: [{mock-500: [mock-gpt]}]
  context_window_fallbacks: [{small-ctx: [mock-gpt]}]
litellm_settings:
  drop_params: true
"""


@pytest.fixture(scope="module")
def lgw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    d = tmp_path_factory.mktemp("litellm-router")
    mock = start_mock(d / "mock")
    small = (
        f"  - model_name: small-ctx\n    litellm_params: {{model: openai/mock-gpt, api_base: '{mock.base}/v1', "
        "api_key: os.environ/MOCK_PROVIDER_KEY, rpm: 60, tpm: 1000}\n"
        "    model_info: {max_input_tokens: 60, input_cost_per_token: 0.000001, output_cost_per_token: 0.000002,"
        " access_groups: [beta-models]}\n"
    )
    wild = (
        f"  - model_name: 'mockai/*'\n    litellm_params: {{model: 'openai/*', api_base: '{mock.base}/v1', "
        "api_key: os.environ/MOCK_PROVIDER_KEY}\n"
        f"  - model_name: gpt-4o-mini\n    litellm_params: {{model: openai/gpt-4o-mini, api_base: '{mock.base}/v1', "
        "api_key: os.environ/MOCK_PROVIDER_KEY}\n"
    )
    cfg = mock_config(mock.base).replace("model_list:\n", "model_list:\n" + small + wild, 1) + ROUTER
    cfg = cfg.replace("aliases:\n", "aliases:\n  via-wildcard: [mockai/mock-gpt]\n", 1)
    cfg = cfg.replace(
        "    - {id: tenant-b, tenant: b, key: os.environ/TEST_KEY_B, models: [mock-gpt, fast-sim]}",
        "    - {id: tenant-b, tenant: b, key: os.environ/TEST_KEY_B, models: [mock-gpt, fast-sim]}\n"
        "    - {id: tenant-c, tenant: c, key: os.environ/TEST_KEY_C, models: [beta-models]}",
    )
    gw = start_gateway(d / "gw", cfg)
    gw.extra["mock"] = mock
    yield gw
    gw.stop()
    mock.stop()


def chat(gw: Proc, model: str, text: str = "hi") -> httpx.Response:
    return httpx.post(
        gw.base + "/v1/chat/completions",
        headers=H,
        timeout=30,
        json={"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 5},
    )


def test_fallbacks_follow_a_failed_model(lgw: Proc) -> None:
    r = chat(lgw, "mock-500")
    assert r.status_code == 200 and r.headers["x-switchyard-model"] == "mock-gpt"
    assert r.headers["x-switchyard-attempts"] == "2"
    # a request's own fallbacks take the config's place
    r = httpx.post(
        lgw.base + "/v1/chat/completions",
        headers=H,
        json={"model": "mock-500", "messages": [{"role": "user", "content": "hi"}], "fallbacks": ["mock-400"]},
    )
    assert r.status_code == 400  # mock-400's rejection, not the config's mock-gpt


def test_a_prompt_too_long_for_the_context_window_goes_to_the_larger_model(lgw: Proc) -> None:
    short = chat(lgw, "small-ctx")
    assert short.status_code == 200 and short.headers["x-switchyard-model"] == "small-ctx"
    long = chat(lgw, "small-ctx", "word " * 200)
    assert long.status_code == 200 and long.headers["x-switchyard-model"] == "mock-gpt"
    sent = mock_stats(lgw.extra["mock"])["last_body"]
    assert not {"rpm", "tpm"} & set(sent)  # LiteLLM's router fields never reach the provider


def test_num_retries_and_allowed_fails(lgw: Proc) -> None:
    # alias [mock-503, mock-gpt]; num_retries 0: its first model only, while that model's circuit is closed
    codes = [chat(lgw, "failover-stream").status_code for _ in range(3)]
    # allowed_fails 2: after two failures the circuit opens (cooldown_time 30 s) and the alias skips it
    assert codes[:2] == [503, 503] and codes[2] == 200, codes
    assert chat(lgw, "failover-stream").headers["x-switchyard-model"] == "mock-gpt"


def test_the_settings_map_onto_switchyards_own(tmp_path) -> None:
    cfg: Config = Config.model_validate(
        {
            "model_list": [
                {"model_name": "m", "litellm_params": {"model": "openai/x", "api_base": "http://h/v1", "rpm": 5}},
                {"model_name": "n", "litellm_params": {"model": "openai/y", "api_base": "http://h/v1", "timeout": 3}},
            ],
            "router_settings": {
                "num_retries": 1,
                "allowed_fails": 4,
                "cooldown_time": 12,
                "timeout": 9,
                "fallbacks": [{"m": ["n"]}],
                "routing_strategy": "usage-based-routing",
            },
            "litellm_settings": {"context_window_fallbacks": [{"m": "n"}], "success_callback": ["langfuse"]},
        }
    )
    assert (cfg.server.num_retries, cfg.server.breaker_threshold, cfg.server.breaker_cooldown) == (1, 4, 12.0)
    assert [d.litellm_params.timeout for d in cfg.model_list] == [9.0, 3.0]  # an explicit timeout stays
    assert cfg.fallbacks == {"m": ["n"]} and cfg.context_window_fallbacks == {"m": ["n"]}
    assert cfg.server.routing_strategy == "usage" and cfg.model_list[0].litellm_params.rpm == 5
    assert ignored_litellm_settings(cfg) == ["litellm_settings.success_callback"]
    # a strategy Switchyard has no equivalent for is named with its value
    cost = Config.model_validate(
        {
            "model_list": [{"model_name": "m", "litellm_params": {"model": "simulated/x"}}],
            "router_settings": {"routing_strategy": "cost-based-routing"},
        }
    )
    assert cost.server.routing_strategy == "weighted"
    assert ignored_litellm_settings(cost) == ["router_settings.routing_strategy: cost-based-routing"]
    # a fallback naming an unknown model is a config error, with its line
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "model_list:\n  - model_name: m\n    litellm_params: {model: openai/x, api_base: 'http://h/v1'}\n"
        "router_settings:\n  fallbacks: [{m: [nope]}]\n"
    )
    res = subprocess.run([SWITCHYARD, "check-config", str(bad)], capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "'nope' is not a model_name or alias" in res.stdout + res.stderr
    assert "Traceback" not in res.stdout + res.stderr
    with pytest.raises(Exception):
        load_config(str(bad))


def test_a_wildcard_deployment_serves_every_name_under_its_prefix(lgw: Proc) -> None:
    mock = lgw.extra["mock"]
    # an alias naming a wildcard's model, asked before anything else built that model
    assert chat(lgw, "via-wildcard").headers["x-switchyard-model"] == "mockai/mock-gpt"
    wild, named = chat(lgw, "mockai/gpt-4o-mini"), chat(lgw, "gpt-4o-mini")
    assert wild.status_code == named.status_code == 200, wild.text
    assert wild.headers["x-switchyard-model"] == "mockai/gpt-4o-mini"
    assert mock_stats(mock)["requests"]["gpt-4o-mini"] == 2  # the upstream model is the name's suffix
    # priced at the catalog's price for openai/gpt-4o-mini, as the named deployment is
    assert float(wild.headers["x-switchyard-cost-usd"]) == pytest.approx(float(named.headers["x-switchyard-cost-usd"]))
    assert float(wild.headers["x-switchyard-cost-usd"]) > 0
    assert chat(lgw, "mockai/mock-gpt").headers["x-switchyard-cost-usd"] == "unpriced"  # not in the catalog: never $0
    for name in ("other/gpt-4o-mini", "mockai/", "mockai/*"):
        assert chat(lgw, name).status_code == 404, name


def test_import_litellm_prints_an_equivalent_native_config(tmp_path, monkeypatch) -> None:
    src = tmp_path / "litellm.yaml"
    src.write_text("""\
model_list:
  - model_name: gpt-4o
    litellm_params: {model: openai/gpt-4o, api_key: os.environ/OPENAI_API_KEY, rpm: 600}
  - model_name: claude
    litellm_params: {model: anthropic/claude-3-5-haiku-20241022, api_key: os.environ/ANTHROPIC_API_KEY}
  - model_name: 'openai/*'
    litellm_params: {model: 'openai/*', api_key: os.environ/OPENAI_API_KEY}
router_settings:
  model_group_alias: {smart: gpt-4o}
  num_retries: 1
  allowed_fails: 3
  routing_strategy: latency-based-routing
  fallbacks: [{gpt-4o: [claude]}]
  context_window_fallbacks: [{claude: [gpt-4o]}]
litellm_settings: {drop_params: true, request_timeout: 30}
general_settings: {master_key: os.environ/LITELLM_MASTER_KEY}
""")
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "LITELLM_MASTER_KEY"):
        monkeypatch.setenv(name, "x")
    env = dict(__import__("os").environ)
    res = subprocess.run(
        [SWITCHYARD, "import-litellm", str(src), "--out", str(tmp_path / "native.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert res.returncode == 0, res.stderr
    text = (tmp_path / "native.yaml").read_text()
    assert "#   litellm_settings.drop_params" in text and "#   router_settings" not in text
    before, after = load_config(str(src)), load_config(str(tmp_path / "native.yaml"))
    assert before.server.routing_strategy == "latency"
    assert after.model_list[0].litellm_params.rpm == 600 and after.server.routing_strategy == "latency"
    assert ignored_litellm_settings(after) == []  # nothing left that Switchyard would not honour
    assert after.fallbacks == before.fallbacks == {"gpt-4o": ["claude"]}
    assert after.context_window_fallbacks == before.context_window_fallbacks
    assert after.aliases == {"smart": ["gpt-4o"]}
    assert (after.server.num_retries, after.server.breaker_threshold) == (1, 3)
    assert [d.litellm_params.timeout for d in after.model_list] == [30.0] * 3
    assert after.auth.admin_key == "os.environ/LITELLM_MASTER_KEY"
    assert [(k.id, k.tenant, k.key) for k in after.auth.keys] == [
        ("master-key", "default", "os.environ/LITELLM_MASTER_KEY")
    ]
    check = subprocess.run(
        [SWITCHYARD, "check-config", str(tmp_path / "native.yaml")], capture_output=True, text=True, timeout=60, env=env
    )
    assert check.returncode == 0 and "not honoured" not in check.stderr, check.stderr


def test_an_access_group_grants_its_models(lgw: Proc) -> None:
    h = {"authorization": f"Bearer {KEY_C}"}
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    assert (
        httpx.post(lgw.base + "/v1/chat/completions", headers=h, json={"model": "small-ctx", **body}).status_code == 200
    )
    assert (
        httpx.post(lgw.base + "/v1/chat/completions", headers=h, json={"model": "mock-gpt", **body}).status_code == 403
    )
    assert [m["id"] for m in httpx.get(lgw.base + "/v1/models", headers=h).json()["data"]] == ["small-ctx"]


def test_a_realistic_litellm_proxy_config(monkeypatch) -> None:
    """Seven providers, fallbacks, context-window fallbacks, a routing strategy, rpm/tpm, order,
    max_parallel_requests, a master key, a wildcard and access groups: check-config passes and names
    exactly what Switchyard does not honour; everything else maps onto Switchyard's own settings."""
    import os

    from tests.conftest import ROOT

    src = ROOT / "tests" / "data" / "litellm_proxy.yaml"
    env = {
        **os.environ,
        "OPENAI_API_KEY": "k",
        "AZURE_API_BASE": "https://x.openai.azure.com",
        "AZURE_API_KEY": "k",
        "ANTHROPIC_API_KEY": "k",
        "GEMINI_API_KEY": "k",
        "GROQ_API_KEY": "k",
        "VLLM_API_BASE": "http://127.0.0.1:9/v1",
        "LITELLM_MASTER_KEY": "sk-master-test-0123456789",
        "DATABASE_URL": "postgresql://u@h/db",
    }
    res = subprocess.run([SWITCHYARD, "check-config", str(src)], capture_output=True, text=True, timeout=60, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    ignored = (
        "litellm_settings.drop_params, litellm_settings.success_callback, litellm_settings.cache, "
        "general_settings.database_url, router_settings.enable_pre_call_checks, model_list[3].litellm_params.tags"
    )
    assert f"LiteLLM settings not honoured (ignored): {ignored}\n" in res.stderr, res.stderr
    assert "Traceback" not in res.stdout + res.stderr
    for name in (
        "OPENAI_API_KEY",
        "AZURE_API_BASE",
        "AZURE_API_KEY",
        "ANTHROPIC_API_KEY",
        "GEMINI_API_KEY",
        "GROQ_API_KEY",
        "VLLM_API_BASE",
        "LITELLM_MASTER_KEY",
    ):
        monkeypatch.setenv(name, env[name])
    cfg = load_config(str(src))
    assert cfg.server.routing_strategy == "usage" and cfg.server.num_retries == 2
    assert (cfg.server.breaker_threshold, cfg.server.breaker_cooldown) == (3, 30.0)
    assert cfg.fallbacks == {"gpt-4o": ["claude-sonnet"], "claude-sonnet": ["gemini-flash"]}
    assert cfg.context_window_fallbacks == {"llama-8b-local": ["llama-70b"]}
    p = [d.litellm_params for d in cfg.model_list]
    assert (p[0].rpm, p[0].tpm, p[1].rpm, p[1].order, p[2].tpm, p[4].max_parallel_requests) == (
        600,
        300000,
        300,
        2,
        400000,
        20,
    )
    assert {d.litellm_params.timeout for d in cfg.model_list} == {
        60.0
    } and cfg.master_key == "os.environ/LITELLM_MASTER_KEY"
