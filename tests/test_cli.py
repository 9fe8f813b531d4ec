"""The CLI as a newcomer uses it."""

from __future__ import annotations

from datetime import datetime, timezone

import json
import os
import subprocess
import time

import httpx
import pytest

from router.auth import KeyStore, hash_key
from tests.conftest import SWITCHYARD, free_port


def test_serve_refuses_public_bind_without_keys() -> None:
    r = subprocess.run(
        [SWITCHYARD, "serve", "--host", "0.0.0.0", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "Refusing to bind 0.0.0.0" in r.stderr


def test_embedded_default_binds_loopback_and_prints_a_working_key(embedded) -> None:
    out = embedded.output()
    assert "http://127.0.0.1:" in out
    key = embedded.extra["key"]
    r = httpx.get(embedded.base + "/v1/models", headers={"authorization": f"Bearer {key}"})
    assert r.status_code == 200
    served = {m["id"] for m in r.json()["data"]}
    assert {"sim-frontier", "sim-mid", "sim-small", "sim-open", "sim-embed", "auto"} <= served
    # the banner lists what a client may send, policy aliases included (the README's example uses auto)
    banner = next(line for line in out.splitlines() if line.strip().startswith("Models:"))
    assert set(banner.split(":", 1)[1].replace(",", " ").split()) == served
    assert httpx.get(embedded.base + "/healthz").json() == {"status": "ok"}
    assert httpx.get(embedded.base + "/readyz").json()["status"] == "ready"


def test_keys_create_prints_a_hash_that_authenticates() -> None:
    r = subprocess.run(
        [SWITCHYARD, "keys", "create", "team-x", "--tenant", "acme"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0
    key = r.stdout.split("key (shown once): ")[1].split()[0]
    h = r.stdout.split("hash: '")[1].split("'")[0]
    assert key not in r.stdout.split("config entry")[1], "the config entry holds only the hash"
    store = KeyStore.build([{"id": "team-x", "tenant": "acme", "hash": h}], {}, lambda _: None, None)
    assert store.authenticate(key).tenant == "acme"
    assert store.authenticate(key + "x") is None


def test_price_command() -> None:
    r = subprocess.run(
        [SWITCHYARD, "price", "gpt-4o", "--input", "1000", "--output", "100", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    data = json.loads(r.stdout)
    assert abs(data["cost_usd"] - (1000 * 2.5e-6 + 100 * 1e-5)) < 1e-12
    r = subprocess.run(
        [SWITCHYARD, "price", "no-such-model", "--input", "1"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 1 and "unpriced" in r.stderr


def test_keys_are_salted_and_revocable() -> None:
    a, b = hash_key("same"), hash_key("same")
    assert a != b, "each hash has its own salt"
    store = KeyStore.build([{"id": "k", "tenant": "t", "hash": a, "revoked": True}], {}, lambda _: None, None)
    assert store.authenticate("same") is None


def test_price_resolves_provider_names_and_a_configs_own_models(tmp_path) -> None:
    """`price` takes a deployment's provider/name (openai/gpt-4o, anthropic/..., bedrock/...) and, with
    --config, the config's model names with their model_info prices and the config's overrides."""

    def price(*args: str) -> dict:
        r = subprocess.run(
            [SWITCHYARD, "price", *args, "--input", "1000000", "--json"], capture_output=True, text=True, timeout=60
        )
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    from pricing.loaders import load_catalog

    cat = load_catalog()
    assert price("openai/gpt-4o")["cost_usd"] == pytest.approx(
        cat.price("gpt-4o", datetime.now(timezone.utc)).input * 1e6
    )
    assert price("anthropic/claude-sonnet-4-5")["cost_usd"] > 0
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(
        "model_list:\n"
        "  - model_name: house\n    litellm_params: {model: openai/my-finetune, api_base: 'http://127.0.0.1:9/v1'}\n"
        "    model_info: {input_cost_per_token: 0.000003, output_cost_per_token: 0.000009}\n"
        "  - model_name: sim-frontier\n    litellm_params: {model: simulated/frontier}\n"
    )
    assert price("house", "--config", str(cfg))["cost_usd"] == pytest.approx(3.0)
    assert price("sim-frontier", "--config", str(cfg))["cost_usd"] == pytest.approx(
        cat.price("gpt-4o", datetime.now(timezone.utc)).input * 1e6
    )
    r = subprocess.run([SWITCHYARD, "price", "house", "--input", "1"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "unpriced" in r.stderr, "without the config, a config's name is not in the catalog"


def test_demo_runs_a_mixed_workload() -> None:
    r = subprocess.run([SWITCHYARD, "demo", "--requests", "20"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "20/20 answered 200" in r.stdout
    assert "sim-mid" in r.stdout and "total" in r.stdout


def test_several_workers_share_metrics(tmp_path) -> None:
    import re

    from tests.conftest import start

    port = free_port()
    p = start([SWITCHYARD, "serve", "--port", str(port), "--workers", "2"], "/healthz", port, tmp_path / "w.log")
    try:
        key = re.search(r"API key \(demo tenant[^)]*\): (\S+)", p.output()).group(1)
        with httpx.Client(headers={"authorization": f"Bearer {key}"}):
            for _ in range(12):  # new connections spread over both workers
                assert (
                    httpx.post(
                        p.base + "/v1/chat/completions",
                        headers={"authorization": f"Bearer {key}"},
                        json={"model": "sim-small", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1},
                    ).status_code
                    == 200
                )
        for _ in range(4):  # whichever worker answers the scrape reports every worker's counts
            text = httpx.get(p.base + "/metrics").text
            assert 'switchyard_requests_total{endpoint="chat",model="sim-small",status="200"} 12.0' in text
            assert "switchyard_requests_in_flight 0.0" in text  # each worker's count back to 0, summed
        assert p.output().count("Started server process") == 2
    finally:
        assert p.stop() == 0


def test_a_litellm_master_key_is_the_admin_key_and_calls_models(tmp_path) -> None:
    """LiteLLM's general_settings.master_key: no demo or generated admin key is issued; the master key
    calls models and reads the admin API; settings not honoured are named at start-up and by check-config."""
    from tests.conftest import start

    master = "sk-master-CANARY-3f1e2d"
    cfg = tmp_path / "litellm.yaml"
    cfg.write_text(
        "model_list:\n  - {model_name: sim, litellm_params: {model: simulated/small, speed: 100}}\n"
        "general_settings: {master_key: os.environ/LITELLM_MASTER_KEY, alerting: [slack]}\n"
        "router_settings: {routing_strategy: cost-based-routing, num_retries: 2}\n"
    )
    env = {"LITELLM_MASTER_KEY": master}
    port = free_port()
    p = start(
        [SWITCHYARD, "serve", "--config", str(cfg), "--port", str(port)], "/healthz", port, tmp_path / "gw.log", env=env
    )
    try:
        h = {"authorization": f"Bearer {master}"}
        r = httpx.post(
            p.base + "/v1/chat/completions",
            headers=h,
            timeout=30,
            json={"model": "sim", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5},
        )
        assert r.status_code == 200, r.text
        assert httpx.get(p.base + "/admin/usage", headers=h).status_code == 200
        assert httpx.get(p.base + "/v1/whoami", headers=h).json()["role"] == "admin"
        assert (
            httpx.post(
                p.base + "/v1/chat/completions",
                headers={"authorization": "Bearer sk-1234"},
                json={"model": "sim", "messages": [{"role": "user", "content": "hi"}]},
            ).status_code
            == 401
        )
        out = p.output()
        assert "demo tenant" not in out and "Admin key (this run only)" not in out
        assert (
            "LiteLLM settings not honoured (ignored): general_settings.alerting, router_settings.routing_strategy: cost-based-routing\n"
            in out
        )
        assert master not in out
    finally:
        assert p.stop() == 0
    r = subprocess.run(
        [SWITCHYARD, "check-config", str(cfg)], capture_output=True, text=True, timeout=60, env={**os.environ, **env}
    )
    assert r.returncode == 0 and "not honoured (ignored): general_settings.alerting" in r.stderr, r.stderr


def test_the_embedded_default_has_a_soft_budget_the_budgets_view_shows(embedded) -> None:
    """The embedded default ships an illustrative soft budget: a newcomer's Budgets view has data, and
    the budget refuses nothing."""
    h = {"authorization": f"Bearer {embedded.extra['key']}"}
    r = httpx.post(
        embedded.base + "/v1/chat/completions",
        headers=h,
        timeout=30,
        json={"model": "sim-small", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5},
    )
    assert r.status_code == 200, r.text
    for _ in range(100):  # the ledger writer flushes within a fraction of a second
        budgets = httpx.get(embedded.base + "/v1/insights/budgets", headers=h).json()["data"]
        if budgets and budgets[0]["spent_usd"] > 0:
            break
        time.sleep(0.05)
    [b] = budgets
    assert (b["scope"], b["id"], b["period"], b["limit_usd"], b["soft"]) == ("tenant", "demo", "day", 1.0, True)
    assert b["spent_usd"] > 0


def test_demo_drives_a_running_gateway_with_the_key_make_serve_kept(embedded) -> None:
    """`make demo` beside `make serve`: the served gateway's demo key is kept (owner-only) in its data
    directory, and `switchyard demo --url --key-file` fills that gateway's ledger and dashboard."""
    import stat

    key_file = embedded.log.parent / ".switchyard" / "demo-key"
    assert key_file.read_text().strip() == embedded.extra["key"]
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    h = {"authorization": f"Bearer {embedded.extra['key']}"}
    before = httpx.get(embedded.base + "/v1/usage", headers=h, params={"start": "1d", "bucket": "none"}).json()["data"]
    res = subprocess.run(
        [SWITCHYARD, "demo", "--url", embedded.base + "/v1", "--key-file", str(key_file), "--requests", "20"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Where the requests went" in res.stdout and "20/20 answered 200" in res.stdout, res.stdout
    after = httpx.get(embedded.base + "/v1/usage", headers=h, params={"start": "1d", "bucket": "none"}).json()["data"]
    assert after[0]["requests"] - (before[0]["requests"] if before else 0) >= 20
    bad = subprocess.run(
        [SWITCHYARD, "demo", "--url", "http://127.0.0.1:1"], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and "needs --key" in bad.stderr


def test_serve_exits_when_its_port_is_taken_or_invalid(tmp_path) -> None:
    """A port another process holds: the gateway says so and exits with uvicorn's startup-failure
    status. It used to hang after shutting down: the stored-responses pruner's first query was still
    in flight when the database closed under it, and the loop waited for it forever (SIGTERM too)."""
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        for _ in range(2):
            r = subprocess.run(
                [SWITCHYARD, "serve", "--port", str(port)], capture_output=True, text=True, timeout=120, cwd=tmp_path
            )
            assert r.returncode == 3 and "address already in use" in r.stderr, r.stderr[-2000:]
    r = subprocess.run([SWITCHYARD, "serve", "--port", "99999"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--port" in r.stderr
