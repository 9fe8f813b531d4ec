"""Every route the README's HTTP surface table documents answers on a running gateway (a route that
does not exist gets 404 `unknown_url` or 405), and the model routes also answer without `/v1`, as the
README says; the others are refused without it."""

from __future__ import annotations

import os
import re
import signal
import time

import httpx
import pytest

from tests.conftest import ADMIN_KEY, KEY_A, ROOT, start_gateway

CONFIG = """
model_list:
  - {model_name: sim, litellm_params: {model: simulated/small, speed: 1000}}
  - {model_name: sim-embed, litellm_params: {model: simulated/embed}, model_info: {mode: embedding}}
auth:
  admin_key: os.environ/TEST_ADMIN_KEY
  keys: [{id: tenant-a, tenant: a, key: os.environ/TEST_KEY_A}]
"""
BODIES = {
    "chat/completions": {"model": "sim", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3},
    "embeddings": {"model": "sim-embed", "input": "hi"},
    "responses": {"model": "sim", "input": "hi", "max_output_tokens": 3},
    "messages": {"model": "sim", "max_tokens": 3, "messages": [{"role": "user", "content": "hi"}]},
    "messages/count_tokens": {"model": "sim", "messages": [{"role": "user", "content": "hi"}]},
    "completions": {"model": "sim", "prompt": "hi", "max_tokens": 3},
}
MODEL_ROUTES = (
    "chat/completions",
    "embeddings",
    "responses",
    "messages",
    "messages/count_tokens",
    "completions",
    "models",
)


def documented() -> list[tuple[str, str]]:
    """(method, path) of every route in the README's HTTP surface table, placeholders filled in."""
    text = (ROOT / "README.md").read_text()
    table = text[text.index("## HTTP surface") : text.index("The model routes (chat completions")]
    out = []
    for row in table.splitlines():
        if not row.startswith("| `"):
            continue
        cell = row.split("|")[1]
        pending: list[str] = []  # `GET`/`DELETE /v1/x`: a method alone in its backticks goes with the next path
        for chunk in re.findall(r"`([^`]+)`", cell):
            methods = re.findall(r"\b(GET|POST|DELETE|PATCH)\b", chunk)
            path = re.search(r"(/\S*)", chunk)
            if not path:
                pending += methods
                continue
            methods, pending = pending + methods, []
            p = path.group(1).replace("[/{id}]", "").replace("{model:path}", "sim")
            alts = re.search(r"\{([a-z,]+,[a-z,]+)\}", p)
            paths = [p.replace(alts.group(0), a) for a in alts.group(1).split(",")] if alts else [p]
            for m in methods or ["GET"]:
                out += [(m, re.sub(r"\{[a-z_]+\}", "x", q)) for q in paths]
    return sorted(set(out))


def test_the_readme_documents_the_routes_it_should() -> None:
    routes = documented()
    assert ("POST", "/v1/chat/completions") in routes and ("GET", "/v1/insights/whatif") in routes
    assert ("GET", "/v1/responses/x") in routes and ("DELETE", "/v1/responses/x") in routes
    assert len(routes) >= 35, routes


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    p = start_gateway(tmp_path_factory.mktemp("readme"), CONFIG)
    yield p
    assert p.stop() == 0


def call(gw, method: str, path: str) -> httpx.Response:
    key = ADMIN_KEY if path.startswith("/admin") else KEY_A
    name = path.removeprefix("/v1/").removeprefix("/")
    body = BODIES.get(name) if method == "POST" else None
    if path == "/admin/keys" and method == "POST":
        body = {"tenant": "a", "name": "readme"}
    return httpx.request(method, gw.base + path, headers={"authorization": f"Bearer {key}"}, json=body, timeout=30)


def missing(r: httpx.Response) -> bool:
    if r.status_code == 405:
        return True
    try:
        return r.status_code == 404 and r.json()["error"]["code"] == "unknown_url"
    except (ValueError, KeyError, TypeError):
        return r.status_code == 404


def test_every_documented_route_answers(gw) -> None:
    absent = [(m, p, r.status_code) for m, p in documented() for r in [call(gw, m, p)] if missing(r)]
    assert not absent, absent


@pytest.mark.parametrize("name", MODEL_ROUTES)
def test_model_routes_also_answer_without_v1(gw, name) -> None:
    method = "GET" if name == "models" else "POST"
    r = call(gw, method, "/" + name)
    assert not missing(r) and r.status_code < 400, (r.status_code, r.text[:200])


def test_other_routes_need_v1(gw) -> None:
    assert missing(call(gw, "GET", "/usage")) and missing(call(gw, "GET", "/whoami"))


def test_sigusr1_writes_every_threads_stack_to_the_log_and_serving_goes_on(gw) -> None:
    """An operator's (and the tests') view of a gateway that hangs: ``kill -USR1`` dumps its stacks."""
    before = len(gw.output())
    os.kill(gw.proc.pid, signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while "Current thread" not in gw.output()[before:] and time.monotonic() < deadline:
        time.sleep(0.05)
    dump = gw.output()[before:]
    assert "Current thread" in dump and "File " in dump, dump[-2000:]
    assert call(gw, "GET", "/v1/models").status_code == 200 and gw.proc.poll() is None
