"""Security: headers a client cannot spoof, CORS off, authentication throttling, key revocation
without a restart, request-body timeouts, and canary secrets searched for in every output."""

from __future__ import annotations

import os
import re
import socket
import time

import httpx
import pytest

from tests.conftest import ADMIN_KEY, KEY_A, KEY_B, SECRETS, start_gateway, start_mock

A = {"authorization": f"Bearer {KEY_A}"}
MSG = [{"role": "user", "content": "hi"}]


def small_config(mock_base: str, extra_server: str = "", keys: str = "") -> str:
    return f"""
model_list:
  - model_name: mock-gpt
    litellm_params: {{model: openai/mock-gpt, api_base: '{mock_base}/v1', api_key: os.environ/MOCK_PROVIDER_KEY}}
    model_info: {{input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}}
server: {{auth_failures_per_minute: 3, body_timeout: 1.5{extra_server}}}
auth:
  admin_key: os.environ/TEST_ADMIN_KEY
  keys:
    - {{id: tenant-a, tenant: a, key: os.environ/TEST_KEY_A}}
{keys or "    - {id: tenant-b, tenant: b, key: os.environ/TEST_KEY_B}"}
"""


def test_switchyard_headers_cannot_be_spoofed(gateway) -> None:
    spoof = {
        **A,
        "x-request-id": "req_attacker",
        "x-switchyard-model": "mock-tools",
        "x-switchyard-tenant": "b",
        "x-switchyard-charge-usd": "0",
        "x-switchyard-policy": "free",
    }
    r = httpx.post(gateway.base + "/v1/chat/completions", headers=spoof, json={"model": "mock-gpt", "messages": MSG})
    assert r.status_code == 200
    assert r.headers["x-request-id"] != "req_attacker" and r.headers["x-request-id"].startswith("req_")
    assert r.headers["x-switchyard-model"] == "mock-gpt" and float(r.headers["x-switchyard-charge-usd"]) > 0
    from tests.test_ledger import record

    rec = record(gateway, r.headers["x-request-id"])
    assert rec["tenant"] == "a" and rec["charge_usd"] > 0


def test_a_key_given_twice_goes_upstream_once_with_the_value_the_gateway_admitted(gateway) -> None:
    """JSON parsers disagree on a repeated key (orjson, the gateway's, keeps the last; others keep the
    first). Forwarding the client's bytes as they came would let a request be admitted, bounded and
    capped for one value and served with the other (a huge first max_tokens, or a huge first content
    behind a short last one): the upstream gets each key once, with the value the gateway used."""
    mock = gateway.extra["mock"]
    raw = (
        b'{"model":"mock-gpt","max_tokens":100000,"messages":[{"role":"user","content":"'
        + b"long " * 2000
        + b'","content":"hi"}],"max_tokens":4}'
    )
    r = httpx.post(
        gateway.base + "/v1/chat/completions",
        content=raw,
        headers={"authorization": f"Bearer {KEY_A}", "content-type": "application/json"},
    )
    assert r.status_code == 200, r.text
    sent = httpx.get(mock.base + "/_stats").json()["last_raw"]
    assert sent.count('"max_tokens"') == 1 and sent.count('"content"') == 1 and "long" not in sent
    assert '"max_tokens":4' in sent and '"content":"hi"' in sent


def test_cors_is_off_unless_configured(gateway) -> None:
    r = httpx.options(
        gateway.base + "/v1/chat/completions",
        headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
    )
    assert "access-control-allow-origin" not in r.headers
    r = httpx.post(
        gateway.base + "/v1/chat/completions",
        headers={**A, "origin": "https://evil.example"},
        json={"model": "mock-gpt", "messages": MSG},
    )
    assert "access-control-allow-origin" not in r.headers


def test_slow_bodies_time_out_keys_revoke_without_restart_and_auth_failures_throttle(tmp_path) -> None:
    mock = start_mock(tmp_path / "mock")
    gw = start_gateway(tmp_path / "gw", small_config(mock.base))
    try:
        body = {"model": "mock-gpt", "messages": MSG}
        # a client that starts a body and stalls gets 408, and its connection is freed
        port = int(gw.base.rsplit(":", 1)[1])
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            + f"authorization: Bearer {KEY_A}\r\ncontent-length: 1000\r\n\r\n".encode()
            + b'{"model":'
        )
        s.settimeout(10)
        t0 = time.monotonic()
        reply = s.recv(4096)
        s.close()
        assert b" 408 " in reply.split(b"\r\n")[0] and time.monotonic() - t0 < 5

        # revoke tenant b's key in the config file: applied without a restart
        hb = {"authorization": f"Bearer {KEY_B}"}
        assert httpx.post(gw.base + "/v1/chat/completions", headers=hb, json=body).status_code == 200
        pid = gw.proc.pid
        gw.extra["config"].write_text(
            small_config(mock.base, keys="    - {id: tenant-b, tenant: b, key: os.environ/TEST_KEY_B, revoked: true}")
        )
        r = httpx.post(gw.base + "/admin/keys/reload", headers={"authorization": f"Bearer {ADMIN_KEY}"})
        assert r.status_code == 200
        assert httpx.post(gw.base + "/v1/chat/completions", headers=hb, json=body).status_code == 401
        assert gw.proc.pid == pid and gw.proc.poll() is None
        assert httpx.post(gw.base + "/v1/chat/completions", headers=A, json=body).status_code == 200

        # repeated failures with one key from one address: 429 for the rest of the window for that
        # key; a valid key from the same address is never refused because of them
        for i in range(3):
            assert (
                httpx.post(
                    gw.base + "/v1/chat/completions", headers={"authorization": f"Bearer guessing-key-{i}"}, json=body
                ).status_code
                == 401
            )
        r = httpx.post(gw.base + "/v1/chat/completions", headers={"authorization": "Bearer guessing-key-4"}, json=body)
        assert r.status_code == 429 and r.json()["error"]["code"] == "auth_rate_limited"
        assert int(r.headers["retry-after"]) > 0
        assert httpx.post(gw.base + "/v1/chat/completions", headers=A, json=body).status_code == 200
        # a client address claimed in X-Forwarded-For by an untrusted peer (loopback here) is ignored
        spoofed = {
            "authorization": "Bearer guessing-key-5",
            "x-forwarded-for": "203.0.113.9",
            "forwarded": "for=203.0.113.10",
        }
        assert httpx.post(gw.base + "/v1/chat/completions", headers=spoofed, json=body).status_code == 429
    finally:
        gw.stop()
        mock.stop()
    out = gw.output()
    assert not any(secret in out for secret in SECRETS)


def test_canary_secrets_appear_in_no_output(gateway, tmp_path) -> None:
    """Logs, error bodies, headers, /metrics, ledger records and usage rows, after traffic that
    exercises success and every failure path, hold none of the planted secrets."""
    texts = []
    for model in ("mock-gpt", "mock-401", "mock-500", "mock-400", "failover", "mock-cut"):
        r = httpx.post(
            gateway.base + "/v1/chat/completions",
            headers=A,
            json={"model": model, "messages": MSG, "stream": model == "mock-cut"},
        )
        texts += [r.text, str(dict(r.headers))]
        if "x-request-id" in r.headers:
            from tests.test_ledger import record

            try:
                texts.append(str(record(gateway, r.headers["x-request-id"], timeout=3)))
            except AssertionError:
                pass
    texts.append(httpx.get(gateway.base + "/metrics").text)
    texts.append(
        httpx.get(
            gateway.base + "/admin/usage?bucket=none&group_by=tenant,key,model",
            headers={"authorization": f"Bearer {ADMIN_KEY}"},
        ).text
    )
    texts.append(
        httpx.get(gateway.base + "/admin/requests/top?start=0", headers={"authorization": f"Bearer {ADMIN_KEY}"}).text
    )
    texts.append(gateway.output())
    blob = "\n".join(texts)
    for secret in SECRETS:
        assert secret not in blob


def test_behind_a_trusted_proxy_each_client_has_its_own_throttle(tmp_path) -> None:
    """With the proxy's address in server.trusted_proxies, X-Forwarded-For names the client: one
    client's failures throttle that client, not another behind the same proxy."""
    mock = start_mock(tmp_path / "mock")
    gw = start_gateway(tmp_path / "gw", small_config(mock.base, ", trusted_proxies: [127.0.0.0/8]"))
    body = {"model": "mock-gpt", "messages": MSG}
    try:

        def post(client: str, key: str) -> int:
            h = {"authorization": f"Bearer {key}", "x-forwarded-for": f"198.51.100.77, {client}"}
            return httpx.post(gw.base + "/v1/chat/completions", headers=h, json=body).status_code

        assert [post("203.0.113.1", "guessing-key-x") for _ in range(4)] == [401, 401, 401, 429]
        assert post("203.0.113.2", "guessing-key-x") == 401, "another client behind the proxy is not throttled"
        assert post("203.0.113.1", KEY_A) == 200
    finally:
        gw.stop()
        mock.stop()


def test_behind_the_shipped_nginx_a_bad_key_flood_spares_other_clients(tmp_path) -> None:
    """The compose nginx config (deploy/nginx/nginx.conf, its upstreams pointed at a local gateway):
    1,000 bad keys through it do not refuse another client's valid key, a client's own
    X-Forwarded-For does not get it out of its throttle, and /metrics is not reachable through it."""
    import concurrent.futures
    import shutil
    import subprocess

    from tests.conftest import ROOT, free_port

    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if nginx is None:
        if os.environ.get("CI") == "true":
            pytest.fail("nginx is not installed (.ci/run installs nginx-light)")
        pytest.skip("nginx is not installed")
    mock = start_mock(tmp_path / "mock")
    gw = start_gateway(tmp_path / "gw", small_config(mock.base, ", trusted_proxies: [127.0.0.1]"))
    port = free_port()
    conf = (ROOT / "deploy" / "nginx" / "nginx.conf").read_text()
    upstream = gw.base.removeprefix("http://")
    conf = re.sub(r"server gateway-1:4000[^;]*;", f"server {upstream};", conf)
    conf = re.sub(r"\s*server gateway-2:4000[^;]*;", "", conf)
    conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    conf = conf.replace("http {", "http {\n  access_log off;", 1)
    (tmp_path / "nginx.conf").write_text(conf)
    proc = subprocess.Popen(
        [
            nginx,
            "-p",
            str(tmp_path),
            "-c",
            str(tmp_path / "nginx.conf"),
            "-g",
            f"daemon off; pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log;",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    lb = f"http://127.0.0.1:{port}"
    body = {"model": "mock-gpt", "messages": MSG}
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(lb + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, (tmp_path / "error.log").read_text()
            time.sleep(0.1)
        assert httpx.get(lb + "/metrics").status_code == 404
        assert httpx.get(gw.base + "/metrics").status_code == 200, "Prometheus scrapes the replicas directly"

        def bad(i: int) -> int:
            h = {"authorization": f"Bearer guessing-key-{i}", "x-forwarded-for": f"198.51.100.{i % 250}"}
            return httpx.post(lb + "/v1/chat/completions", headers=h, json=body, timeout=30).status_code

        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            flood = pool.map(bad, range(1000))
            good = [
                httpx.post(lb + "/v1/chat/completions", headers=A, json=body, timeout=30).status_code for _ in range(50)
            ]
            flooded = list(flood)
        # three failures per minute's window: a flood that outlasts a window (a busy machine, the
        # suite's other workers) may start one more, each with its own three
        windows = 1 + int((time.monotonic() - started) // 60)
        assert good == [200] * 50, "the valid key was never refused during the flood"
        assert flooded.count(401) + flooded.count(429) == 1000
        assert 3 <= flooded.count(401) <= 3 * windows, "one client, however it names itself"
        assert httpx.post(lb + "/v1/chat/completions", headers=A, json=body).status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)
        gw.stop()
        mock.stop()
