"""The config file: validation with every problem located, LiteLLM files accepted, secrets by reference."""

from __future__ import annotations

import os
import subprocess
import textwrap

from router.config import ConfigError, parse_config
from tests.conftest import SWITCHYARD

THREE_MISTAKES = textwrap.dedent("""\
    model_list:
      - model_name: gpt-4o
        litellm_params:
          model: openai/gpt-4o
          api_key: sk-live-abc123
      - litellm_params:
          model: simulated/mid
    server:
      port: eighty
""")


def run_check(tmp_path, text: str) -> subprocess.CompletedProcess:
    f = tmp_path / "config.yaml"
    f.write_text(text)
    return subprocess.run([SWITCHYARD, "check-config", str(f)], capture_output=True, text=True, timeout=60)


def test_check_config_reports_all_three_mistakes_with_locations(tmp_path) -> None:
    r = run_check(tmp_path, THREE_MISTAKES)
    assert r.returncode == 2
    err = r.stderr
    assert "3 problem(s)" in err
    assert "config.yaml:5: model_list[0].litellm_params.api_key: must be a reference to an environment variable" in err
    assert "config.yaml:6: model_list[1].model_name: Field required" in err
    assert "config.yaml:9: server.port:" in err and "valid integer" in err
    assert "sk-live-abc123" not in err, "the offending secret is not echoed back"


def test_check_config_reports_semantic_mistakes(tmp_path) -> None:
    text = textwrap.dedent(
        """\
        model_list:
          - model_name: a
            litellm_params: {model: hosted_vllm/llama, api_key: os.environ/SURELY_UNSET_VAR_42}
        aliases:
          auto: [a, b]
        auth:
          keys:
            - {id: k1, tenant: t, hash: 'sha256$00112233445566778899aabbccddeeff$%s'}
            - {id: k1, tenant: t, key: os.environ/SURELY_UNSET_VAR_43}
          unknown_thing: 1
        """
        % ("ab" * 32)
    )
    r = run_check(tmp_path, text)
    assert r.returncode == 2
    assert "auth.unknown_thing: unknown field 'unknown_thing'" in r.stderr
    text = text.replace("  unknown_thing: 1\n", "")
    r = run_check(tmp_path, text)
    assert r.returncode == 2, r.stdout
    for expected in (
        "SURELY_UNSET_VAR_42 is not set",
        "needs an api_base",
        "aliases.auto[1]: 'b' is not a model_name",
        "key id 'k1' is also used",
        "SURELY_UNSET_VAR_43 is not set",
    ):
        assert expected in r.stderr


def test_check_config_ok_and_yaml_syntax_error(tmp_path) -> None:
    r = run_check(tmp_path, "model_list:\n  - model_name: m\n    litellm_params: {model: simulated/small}\n")
    assert r.returncode == 0 and "OK" in r.stdout
    r = run_check(tmp_path, "model_list:\n  - model_name: [unclosed\n")
    assert r.returncode == 2 and "not valid YAML" in r.stderr and "config.yaml:" in r.stderr


def test_check_config_loads_the_policies_as_the_server_would(tmp_path) -> None:
    pdir = tmp_path / "policies"
    pdir.mkdir()
    config = f"model_list:\n  - model_name: m\n    litellm_params: {{model: simulated/small}}\npolicies: {{dirs: ['{pdir}']}}\n"
    (pdir / "auto.yaml").write_text(
        "name: auto\nbind: {aliases: [auto]}\ncandidates: [m]\nobjective: {type: cheapest_above, target: 0.5}\n"
    )
    r = run_check(tmp_path, config)
    assert r.returncode == 0 and "1 policy file(s)" in r.stdout, r.stderr
    # a candidate the config does not serve, and a predictor file that is not there: the server
    # would refuse to start; the check says so first
    (pdir / "auto.yaml").write_text(
        "name: auto\nbind: {aliases: [auto]}\ncandidates: [m, gone]\n"
        "objective: {type: cheapest_above, target: 0.5}\nquality: {predictor: p.npz}\n"
    )
    r = run_check(tmp_path, config)
    assert r.returncode == 2
    assert "policies: auto: candidate 'gone' is not a model_name in the config" in r.stderr
    assert "quality.predictor: cannot load" in r.stderr and "p.npz" in r.stderr
    assert "previous policies kept" not in r.stderr, "no server wording in a check"
    (pdir / "auto.yaml").write_text(
        "name: auto\nbind: {aliases: [auto]}\nobjective: {type: cheapest_above, target: 2}\n"
    )
    r = run_check(tmp_path, config)
    assert r.returncode == 2 and "objective.cheapest_above.target" in r.stderr


def test_litellm_proxy_file_loads() -> None:
    text = textwrap.dedent("""\
        model_list:
          - model_name: gpt-4o
            litellm_params:
              model: azure/my-gpt4o
              api_base: https://example-resource.openai.azure.com
              api_key: os.environ/AZURE_KEY
              api_version: "2024-10-21"
              rpm: 600
              tags: [eu]
            model_info: {base_model: azure/gpt-4o}
          - model_name: claude
            litellm_params: {model: anthropic/claude-3-5-haiku-20241022, api_key: os.environ/ANTHROPIC_KEY}
        router_settings:
          model_group_alias: {smart: gpt-4o}
        litellm_settings: {drop_params: true}
        general_settings: {master_key: os.environ/MASTER}
        """)
    cfg = parse_config(text, "litellm.yaml", env={"AZURE_KEY": "x", "ANTHROPIC_KEY": "y", "MASTER": "z"})
    assert cfg.model_list[0].litellm_params.rpm == 600  # honoured: a per-minute limit and the weight
    assert cfg.model_list[0].litellm_params.model_extra == {"tags": ["eu"]}
    assert cfg.router_settings["model_group_alias"] == {"smart": "gpt-4o"}
    assert cfg.master_key == "os.environ/MASTER"
    from router.config import ignored_litellm_settings

    assert ignored_litellm_settings(cfg) == ["litellm_settings.drop_params", "model_list[0].litellm_params.tags"]
    # the master key is a secret: an unset variable or a literal is a problem naming it
    for env, literal, want in (
        ({"AZURE_KEY": "x", "ANTHROPIC_KEY": "y"}, False, "MASTER is not set"),
        ({"AZURE_KEY": "x", "ANTHROPIC_KEY": "y"}, True, "os.environ/LITELLM_MASTER_KEY"),
    ):
        body = text.replace("os.environ/MASTER", "sk-1234") if literal else text
        try:
            parse_config(body, "litellm.yaml", env=env)
        except ConfigError as exc:
            assert any(p.path == "general_settings.master_key" and want in p.message for p in exc.problems), (
                exc.problems
            )
        else:
            raise AssertionError("expected a ConfigError")


def test_missing_model_list_is_an_error() -> None:
    try:
        parse_config("server: {port: 1}\n", "x.yaml", env={})
    except ConfigError as exc:
        assert exc.problems[0].path == "model_list"
    else:
        raise AssertionError("expected a ConfigError")


def test_example_configs_in_the_repo_validate() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    for path in sorted((root / "examples").glob("*.yaml")):
        env = {
            v: "x"
            for v in (
                "OPENAI_API_KEY",
                "ANTHROPIC_API_KEY",
                "GROQ_API_KEY",
                "SWITCHYARD_ADMIN_KEY",
                "ACME_KEY",
                "AZURE_API_KEY",
                "VLLM_API_KEY",
            )
        }
        parse_config(path.read_text(), str(path), env=env)


def test_check_config_takes_api_bases_from_the_environment(tmp_path) -> None:
    """azure, hosted_vllm, vllm, sglang, ... need an api_base; given as os.environ/VAR (as the README
    recommends) check-config accepted the file only as far as a traceback."""
    f = tmp_path / "config.yaml"
    f.write_text(
        "model_list:\n"
        "  - model_name: az\n    litellm_params: {model: azure/gpt-4o, api_base: os.environ/AZ_BASE, "
        "api_key: os.environ/AZ_KEY, api_version: '2024-10-21'}\n"
        "  - model_name: v\n    litellm_params: {model: hosted_vllm/llama, api_base: os.environ/VLLM_BASE}\n"
        "  - model_name: s\n    litellm_params: {model: sglang/qwen, api_base: os.environ/VLLM_BASE}\n"
    )
    env = {
        **os.environ,
        "AZ_BASE": "https://example.openai.azure.com",
        "AZ_KEY": "k",
        "VLLM_BASE": "http://127.0.0.1:9/v1",
    }
    r = subprocess.run([SWITCHYARD, "check-config", str(f)], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0 and "OK - 3 deployment(s)" in r.stdout, r.stdout + r.stderr
    assert "Traceback" not in r.stderr


def test_check_config_warns_when_a_plan_charges_a_self_hosted_model_below_its_gpu_cost(tmp_path) -> None:
    """A self-hosted model's charge under each plan against its GPU-hours cost at the stack profile's
    throughput (pricing.attribution.self_hosted_cost): below it, every request loses money."""
    from pricing import Usage
    from pricing.loaders import load_profiles
    from pricing.attribution import self_hosted_cost

    cost_out = self_hosted_cost(Usage(0, 1_000_000), load_profiles()["h200"], "small")
    body = """
model_list:
  - model_name: own
    litellm_params: {{model: simulated/open-weights}}
    model_info: {{input_cost_per_token: 0.000001, output_cost_per_token: {out}}}
billing:
  default_plan: standard
  plans:
    standard: {{markup: 0.25}}
"""
    losing = run_check(tmp_path, body.format(out=cost_out / 1e6 / 2))  # a quarter markup on half the GPU cost
    assert losing.returncode == 0, losing.stderr
    assert "warning: model 'own' is self-hosted (small class): plan 'standard'" in losing.stderr
    assert "per million output tokens" in losing.stderr and "per million input tokens" not in losing.stderr
    earning = run_check(tmp_path, body.format(out=cost_out / 1e6))  # 1.25x the GPU cost
    assert earning.returncode == 0 and "warning" not in earning.stderr, earning.stderr
