"""One HTTP pipeline: a middleware added to the app runs on the chat route (the hot path) as on
every other; each response carries exactly one request id; errors on the model routes and on
FastAPI's routes come out of the same place in the same shape."""

from __future__ import annotations

from typing import Any

import pytest

from router.config import parse_config

KEY = "sk-test-pipeline-0123456789abcdef"
CONFIG = """
model_list:
  - model_name: small
    litellm_params: {model: simulated/small, speed: 0}
auth:
  keys: [{id: k, tenant: t, key: os.environ/SY_PIPE_KEY}]
"""


class Tagging:
    """A pure-ASGI middleware as an operator would add one: it records what it saw and tags the answer."""

    seen: list[tuple[str, str, str | None]] = []

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        Tagging.seen.append((scope["method"], scope["path"], scope.get("state", {}).get("request_id")))

        async def tagged(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (b"x-tagged", b"yes")]
            await send(message)

        await self.app(scope, receive, tagged)


@pytest.fixture
def gateway():
    from starlette.testclient import TestClient

    from router.app import create_app
    from router.accounting.metering import MemorySink
    from router.build import build_services

    env = {"SY_PIPE_KEY": KEY}
    cfg = parse_config(CONFIG, env=env)
    svc = build_services(cfg, env=env, sink=MemorySink())  # records in memory: no ledger database
    app = create_app(cfg, services=svc)
    app.add_middleware(Tagging)
    Tagging.seen = []
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c, svc


def one_id(r) -> str:
    ids = r.headers.get_list("x-request-id")
    assert len(ids) == 1 and ids[0].startswith("req_"), ids
    return ids[0]


def test_an_added_middleware_runs_on_the_chat_route_and_every_other(gateway) -> None:
    c, _ = gateway
    auth = {"authorization": f"Bearer {KEY}"}
    chat = c.post(
        "/v1/chat/completions", headers=auth, json={"model": "small", "messages": [{"role": "user", "content": "hi"}]}
    )
    assert chat.status_code == 200 and chat.headers["x-tagged"] == "yes"
    models = c.get("/v1/models", headers=auth)
    assert models.status_code == 200 and models.headers["x-tagged"] == "yes"
    legacy = c.post(
        "/chat/completions", headers=auth, json={"model": "small", "messages": [{"role": "user", "content": "hi"}]}
    )
    assert legacy.status_code == 200 and legacy.headers["x-tagged"] == "yes"
    ids = [one_id(r) for r in (chat, models, legacy)]
    # the middleware saw each request, after its id was given (the id it saw is the one answered)
    assert Tagging.seen == [
        ("POST", "/v1/chat/completions", ids[0]),
        ("GET", "/v1/models", ids[1]),
        ("POST", "/chat/completions", ids[2]),
    ]


def test_errors_come_from_one_place_in_one_shape(gateway, monkeypatch) -> None:
    c, svc = gateway
    auth = {"authorization": f"Bearer {KEY}"}
    bad = c.post("/v1/chat/completions", headers={**auth, "content-type": "application/json"}, content=b"{not json")
    unknown = c.get("/v1/nowhere", headers=auth)
    for r, status, code in ((bad, 400, "invalid_json"), (unknown, 404, None)):
        assert r.status_code == status and r.headers["x-tagged"] == "yes"
        one_id(r)
        err = r.json()["error"]
        assert set(err) == {"message", "type", "param", "code"} and (code is None or err["code"] == code)

    async def broken(*a: Any, **k: Any) -> Any:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(svc.gateway, "unary", broken)  # a model route fails unexpectedly
    monkeypatch.setattr(svc, "readiness", broken)  # and so does a FastAPI route
    hot = c.post(
        "/v1/chat/completions", headers=auth, json={"model": "small", "messages": [{"role": "user", "content": "hi"}]}
    )
    other = c.get("/readyz")
    for r in (hot, other):
        assert r.status_code == 500 and r.json() == {
            "error": {
                "message": "The gateway hit an internal error. Quote the x-request-id header when reporting it.",
                "type": "api_error",
                "param": None,
                "code": "internal_error",
            }
        }
        one_id(r)
        assert "secret" not in r.text


def test_request_ids_are_distinct_and_ordered_by_time(monkeypatch) -> None:
    """`req_` and 32 hex digits: milliseconds first, so the ledger's primary key takes each new id at its
    end (random ids landed all over the index, and inserts slowed as it grew), then 80 random bits."""
    import re

    import router.app as app_module

    ids = app_module.RequestIds()
    clock = [1_800_000_000.0]
    monkeypatch.setattr(app_module.time, "time", lambda: clock[0])
    drawn = []
    for _ in range(2000):
        drawn.append(ids())
        clock[0] += 0.0004  # several ids per millisecond
    assert all(re.fullmatch(r"req_[0-9a-f]{32}", i) for i in drawn)
    assert len(set(drawn)) == len(drawn)
    millis = [int(i[4:16], 16) for i in drawn]
    assert millis == sorted(millis) and millis[0] == 1_800_000_000_000
    later = [i for i, m in zip(drawn, millis) if m > millis[0]]
    assert all(i > drawn[0] for i in later), "an id of a later millisecond sorts after"
    assert len({i[16:] for i in drawn}) == len(drawn), "the random part differs within a millisecond"
