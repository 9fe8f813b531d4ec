"""A hostile corpus against a running gateway (simulated models, PostgreSQL ledger): every item of the
hardening report that used to get a 500, a stall or plain text, and more of the same kind. Each must
get a 4xx in the API's JSON error shape, quickly; the gateway stays healthy throughout.

Timing figures (``/healthz`` p99 under a 128 MB header and a bad-key flood) are measured by
``benchmarks/hostile.py``, not here.
"""

from __future__ import annotations

import json
import random
import socket
import time
from typing import Any, Callable, Iterator

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.backends import simtext
from tests.conftest import KEY_A, SECRETS, Proc, start_gateway
from tests.servers import fresh_database, shared_database_url

H = {"authorization": f"Bearer {KEY_A}"}
MSG = [{"role": "user", "content": "hi"}]

CONFIG = """
model_list:
  - {model_name: sim, litellm_params: {model: simulated/mid, speed: 50}}
  - {model_name: sim-embed, litellm_params: {model: simulated/embed, speed: 50}}
storage: {database_url: os.environ/SY_PG}
server: {auth_failures_per_minute: 100000, max_header_bytes: 16384, max_headers: 64}
auth:
  admin_key: os.environ/TEST_ADMIN_KEY
  keys: [{id: tenant-a, tenant: a, key: os.environ/TEST_KEY_A}]
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    url, drop = fresh_database(shared_database_url())
    p = start_gateway(tmp_path_factory.mktemp("hostile"), CONFIG, {"SY_PG": url})
    yield p
    p.stop()
    drop()


DEEP = "__DEEP__"


def deep_json(depth: int) -> str:
    """JSON text nested ``depth`` levels (neither json nor orjson writes that deep)."""
    opens = "".join("[" if i % 2 else '{"a":' for i in range(depth - 1))
    closes = "".join("]" if i % 2 else "}" for i in reversed(range(depth - 1)))
    return opens + '"x"' + closes


def with_deep(body: dict[str, Any], depth: int) -> bytes:
    return json.dumps(body).replace(f'"{DEEP}"', deep_json(depth)).encode()


def blowup(levels: int = 3, n: int = 1000) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "array", "minItems": n, "items": schema}
    return schema


BAD_SCHEMAS = [
    {"type": "object", "properties": {"a": {"type": "integer", "minimum": "abc"}}},
    {"type": "object", "properties": [{"a": 1}]},
    {"type": "object", "required": 5, "properties": {"a": {"type": "string"}}},
    {"type": "object", "properties": {"a": {"type": "array", "items": 3}}},
    {"type": "object", "properties": {"a": {"type": "array", "minItems": "x"}}},
    {"type": "object", "properties": {"a": {"type": "array", "maxItems": -1}}},
    {"type": "object", "properties": {"a": {"anyOf": {"type": "string"}}}},
    {"type": "object", "properties": {"a": {"type": "number", "maximum": [1]}}},
    blowup(),
    blowup(6, 5),
    blowup(2, 20000),
]
LAX = [
    ("temperature", "0.5"),
    ("top_p", True),
    ("frequency_penalty", "1"),
    ("presence_penalty", "x"),
    ("n", "2"),
    ("max_tokens", 1.5),
    ("seed", "1"),
    ("logprobs", "true"),
    ("stream", "true"),
    ("stop", 5),
    ("user", 5),
    ("temperature", 3),
    ("top_p", -0.1),
    ("logit_bias", {"1": 500}),
    ("top_logprobs", 21),
    ("n", 0),
    ("metadata", {"k": 1}),
    ("reasoning_effort", "maximal"),
    ("service_tier", "gold"),
    ("store", "yes"),
    ("modalities", ["smell"]),
    ("prediction", {"type": "content"}),
    ("web_search_options", "on"),
    ("verbosity", 3),
    ("audio", {"voice": "x"}),
    ("functions", []),
    ("timeout", True),
    ("timeout", "5"),
]
BAD_PARTS = [
    [{"type": "text"}],
    [{"type": "image_url"}],
    [{"type": "image_url", "image_url": {}}],
    [{"type": "bogus"}],
    [{}],
    [{"type": "text", "text": 5}],
    [{"type": "input_audio", "input_audio": "x"}],
]
FILTERS = ("key", "alias", "model", "provider", "status", "policy", "rule", "category", "endpoint", "tenant")
TIMES = ("nan", "inf", "-inf", "1e300", "-1e300", "NaN", "Infinity", "-1", "99999999999999", "1e309")


def corpus() -> list[tuple[str, Callable[[httpx.Client], httpx.Response]]]:
    out: list[tuple[str, Callable[[httpx.Client], httpx.Response]]] = []

    def chat(name: str, **body: Any) -> None:
        out.append(
            (name, lambda c: c.post("/v1/chat/completions", headers=H, json={"model": "sim", "messages": MSG, **body}))
        )

    def get(name: str, path: str, **params: Any) -> None:
        out.append((name, lambda c: c.get(path, headers=H, params=params)))

    for dim in FILTERS:
        get(f"NUL in filter {dim}", "/v1/usage", **{dim: "a\x00b"})
        get(f"control char in filter {dim}", "/v1/requests/top", **{dim: "a\x1bb"})
    out.append(("NUL in request id", lambda c: c.get("/v1/requests/abc%00def", headers=H)))
    out.append(
        ("NUL in feedback id", lambda c: c.post("/v1/feedback", headers=H, json={"request_id": "a\x00b", "score": 1}))
    )
    out.append(
        (
            "surrogate in feedback id",
            lambda c: c.post(
                "/v1/feedback",
                headers={**H, "content-type": "application/json"},
                content=b'{"request_id": "\\ud800", "score": 1}',
            ),
        )
    )
    for t in TIMES:
        get(f"start={t}", "/v1/usage", start=t)
        get(f"end={t}", "/v1/usage", end=t)
    for status in (10**20, -1, 99, 600, "２００", "2e2"):
        get(f"status={status}", "/v1/usage", status=status)
    for offset in (10**30, -1, "1e3"):
        get(f"offset={offset}", "/v1/usage", offset=offset)
    deep_bodies = [
        (
            "/v1/chat/completions",
            "tool parameters",
            {
                "model": "sim",
                "messages": MSG,
                "tools": [
                    {
                        "type": "function",
                        "function": {"name": "f", "parameters": {"type": "object", "properties": DEEP}},
                    }
                ],
            },
        ),
        (
            "/v1/chat/completions",
            "schema",
            {
                "model": "sim",
                "messages": MSG,
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "s", "schema": {"type": "object", "properties": DEEP}},
                },
            },
        ),
        (
            "/v1/chat/completions",
            "message",
            {"model": "sim", "messages": [{"role": "user", "content": "hi", "x": DEEP}]},
        ),
        ("/v1/feedback", "feedback", {"request_id": "x", "score": DEEP}),
        ("/v1/embeddings", "embeddings", {"model": "sim-embed", "input": DEEP}),
    ]
    for depth in (130, 255, 300, 512, 1000, 1024):
        for path, where, body in deep_bodies:
            out.append(
                (
                    f"{where} {depth} deep",
                    lambda c, p=path, b=body, d=depth: c.post(
                        p, headers={**H, "content-type": "application/json"}, content=with_deep(b, d)
                    ),
                )
            )
    for i, schema in enumerate(BAD_SCHEMAS):
        chat(
            f"bad response schema {i}",
            response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}},
        )
        chat(
            f"bad tool schema {i}",
            tools=[{"type": "function", "function": {"name": "f", "parameters": schema}}],
            tool_choice="required",
        )
        chat(
            f"bad streamed schema {i}",
            stream=True,
            response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}},
        )
    for inputs, dims in ((["x"] * 256, 65536), (["x"], 65536), (["x"] * 4, 1537)):
        out.append(
            (
                f"embeddings {len(inputs)} x {dims}",
                lambda c, i=inputs, d=dims: c.post(
                    "/v1/embeddings", headers=H, json={"model": "sim-embed", "input": i, "dimensions": d}
                ),
            )
        )
    for field, value in LAX:
        chat(f"lax {field}={value!r}", **{field: value})
    for parts in BAD_PARTS:
        chat(f"content parts {parts}", messages=[{"role": "user", "content": parts}])
    for choice in ("auto", "required", {"type": "function", "function": {"name": "f"}}):
        chat(f"tool_choice {choice} without tools", tool_choice=choice)
    chat("function_call without functions", function_call="auto")
    for key in ("", "Bearer", "Bearer x", "Basic abc", "Bearer " + "k" * 600):
        out.append(
            (
                f"auth {key[:12]!r}",
                lambda c, k=key: c.post(
                    "/v1/chat/completions", headers={"authorization": k}, json={"model": "sim", "messages": MSG}
                ),
            )
        )
    return out


RAW = [
    ("unknown method token", b"FO\x01O /v1/models HTTP/1.1\r\nhost: x\r\n\r\n"),
    (
        "Transfer-Encoding with Content-Length",
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    ("NUL in a header", b"GET /v1/models HTTP/1.1\r\nhost: x\r\nx-a: a\x00b\r\n\r\n"),
    ("garbage request line", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"),
    ("bad chunk size", b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"),
    (
        "200 headers",
        b"GET /healthz HTTP/1.1\r\nhost: x\r\n" + b"".join(b"x-h%d: v\r\n" % i for i in range(200)) + b"\r\n",
    ),
    ("1 MB header", b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * (1 << 20) + b"\r\n\r\n"),
    ("1 MB URL", b"GET /healthz?" + b"a" * (1 << 20) + b" HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("space in header name", b"GET /healthz HTTP/1.1\r\nhost: x\r\nbad header: v\r\n\r\n"),
]


def raw_exchange(gw: Proc, payload: bytes) -> tuple[int, dict[str, Any]]:
    port = int(gw.base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        try:
            s.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused mid-send: the answer is already waiting
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


def assert_error(status: int, body: Any, what: str) -> None:
    assert 400 <= status < 500, (what, status, str(body)[:300])
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"], (what, body)
    text = json.dumps(body)
    assert "Traceback" not in text and not any(s in text for s in SECRETS), what


def test_hostile_corpus_gets_4xx_in_the_error_shape_and_the_gateway_stays_healthy(gw: Proc) -> None:
    items = corpus()
    assert len(items) + len(RAW) >= 150, len(items) + len(RAW)
    random.Random(7).shuffle(items)
    with httpx.Client(base_url=gw.base, timeout=30) as c:
        for what, send in items:
            t0 = time.monotonic()
            r = send(c)
            assert time.monotonic() - t0 < 10, f"{what} stalled"
            if r.headers.get("content-type", "").startswith("text/event-stream"):
                raise AssertionError(f"{what}: streamed instead of refused")
            assert_error(r.status_code, r.json(), what)
        for what, payload in RAW:
            status, body = raw_exchange(gw, payload)
            assert_error(status, body, what)
        assert c.get("/healthz").status_code == 200
        ok = c.post("/v1/chat/completions", headers=H, json={"model": "sim", "messages": MSG, "max_tokens": 5})
        assert ok.status_code == 200, ok.text
        usage = c.get("/v1/usage", headers=H, params={"start": "1h", "bucket": "none"})
        assert usage.status_code == 200
    assert gw.proc.poll() is None


def test_header_limits_answer_431_and_keep_alive_requests_still_work(gw: Proc) -> None:
    """Large bodies with small heads (a 64 KB chat body in one read) are not mistaken for large
    heads; a head over the limit is 431 in the JSON shape."""
    big = {"model": "sim", "messages": [{"role": "user", "content": "word " * 20000}], "max_tokens": 3}
    with httpx.Client(base_url=gw.base, timeout=30) as c:
        for _ in range(3):  # on one kept-alive connection
            assert c.post("/v1/chat/completions", headers=H, json=big).status_code == 200
    status, body = raw_exchange(gw, b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 20000 + b"\r\n\r\n")
    assert status == 431 and body["error"]["code"] == "headers_too_large"
    status, body = raw_exchange(gw, b"GET /healthz HTTP/1.1\r\nhost: x\r\n" + b"x-h: v\r\n" * 65 + b"\r\n")
    assert status == 431 and "headers" in body["error"]["message"]
    status, body = raw_exchange(gw, b"GET /healthz HTTP/1.1\r\nhost: x\r\n" + b"x-h: v\r\n" * 60 + b"\r\n")
    assert status == 200


def test_a_chat_request_asking_for_h2c_is_answered_as_http_1_1(gw: Proc) -> None:
    """`curl --http2` on an http:// URL sends `Upgrade: h2c` with the body in the same read; the
    gateway answers it as HTTP/1.1, its body read (it was answered "the request body is empty")."""
    body = json.dumps({"model": "sim", "messages": MSG, "max_tokens": 3}).encode()
    status, answer = raw_exchange(
        gw,
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: "
        + H["authorization"].encode()
        + b"\r\nconnection: Upgrade, HTTP2-Settings, close\r\nupgrade: h2c\r\nhttp2-settings: AAMAAABkAAQCAAAAAAIAAAAA"
        + b"\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)
        + body,
    )
    assert status == 200 and answer["object"] == "chat.completion", answer


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "type",
                    "properties",
                    "items",
                    "required",
                    "minItems",
                    "maxItems",
                    "minimum",
                    "maximum",
                    "anyOf",
                    "enum",
                    "a",
                    "b",
                ]
            ),
            inner,
            max_size=5,
        )
    ),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_any_schema_is_refused_or_instantiated_within_the_value_bound(schema: Any) -> None:
    try:
        simtext.check_schema(schema)
    except simtext.SchemaError:
        return
    value = simtext.instance(schema, random.Random(0))

    def count(v: Any) -> int:
        if isinstance(v, dict):
            return 1 + sum(count(x) for x in v.values())
        if isinstance(v, list):
            return 1 + sum(count(x) for x in v)
        return 1

    assert count(value) <= simtext.MAX_VALUES


def test_slow_request_heads_time_out_and_their_number_is_bounded(tmp_path) -> None:
    """Slowloris: heads sent a piece at a time get 408 after server.header_timeout, and no more than
    server.max_incomplete_requests of them are read at once (503 beyond), while complete requests
    are served throughout."""
    cfg = CONFIG.replace("storage: {database_url: os.environ/SY_PG}\n", "").replace(
        "max_headers: 64}", "max_headers: 64, header_timeout: 2, max_incomplete_requests: 3}"
    )
    gw = start_gateway(tmp_path, cfg)
    port = int(gw.base.rsplit(":", 1)[1])
    pending: list[socket.socket] = []
    refused = None
    try:
        for _ in range(10):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")  # never finished
            s.settimeout(0.5)
            try:
                refused = s.recv(65536)
                s.close()
                break
            except TimeoutError:
                pending.append(s)
        assert refused is not None and b" 503 " in refused.split(b"\r\n")[0], refused
        assert json.loads(refused.partition(b"\r\n\r\n")[2])["error"]["code"] == "server_busy"
        assert 3 <= len(pending) <= 5, len(pending)
        assert httpx.get(gw.base + "/healthz").status_code == 200, "a head that arrives whole is not held up"
        for s in pending:
            s.settimeout(15)
            reply = s.recv(65536)
            assert b" 408 " in reply.split(b"\r\n")[0], reply
            assert json.loads(reply.partition(b"\r\n\r\n")[2])["error"]["code"] == "request_timeout"
        s = socket.create_connection(("127.0.0.1", port), timeout=10)  # room again once they are gone
        s.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        s.sendall(b"connection: close\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
        s.close()
    finally:
        for s in pending:
            s.close()
        gw.stop()
