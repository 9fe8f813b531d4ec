"""Stream events that arrive together leave together: a burst the gateway reads from its upstream in
one go is answered in one write to the client, not one per chunk, while an event that arrives alone
is relayed at once, never held back for more. What the client reads and what is metered are the
same either way, for OpenAI chunks and for an Anthropic deployment's own events relayed to an
Anthropic client; a bad chunk inside a burst still lets the chunks before it through first."""

from __future__ import annotations

import asyncio
import json
from typing import Any, AsyncIterator

import pytest

from router.config import parse_config

KEY = "sk-test-groups-0123456789abcdef"
N = 50  # content events per answer
BASE = {"id": "chatcmpl-groups", "object": "chat.completion.chunk", "created": 1, "model": "up"}


def event(obj: Any) -> bytes:
    return b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n"


def answer(bad_at: int | None = None) -> list[bytes]:
    """The events of one streamed answer: a role chunk, N tokens, a finish, the usage and [DONE];
    ``bad_at``: that token's event is not JSON."""
    out = [event({**BASE, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})]
    for i in range(N):
        tok = {**BASE, "choices": [{"index": 0, "delta": {"content": f"t{i} "}, "finish_reason": None}]}
        out.append(event(b"{not json" if i == bad_at else tok))
    out.append(event({**BASE, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    usage = {"prompt_tokens": 7, "completion_tokens": N, "total_tokens": 7 + N}
    out.append(event({**BASE, "choices": [], "usage": usage}))
    return [*out, b"data: [DONE]\n\n"]


def anthropic_answer() -> list[bytes]:
    """An Anthropic Messages stream of N text deltas, usage in its first and last events."""

    def ev(kind: str, **data: Any) -> bytes:
        return f"event: {kind}\n".encode() + event({"type": kind, **data})

    out = [
        ev("message_start", message={"id": "msg_up", "type": "message", "role": "assistant", "content": [],
                                     "model": "claude-up", "usage": {"input_tokens": 7, "output_tokens": 1}}),
        ev("content_block_start", index=0, content_block={"type": "text", "text": ""}),
    ]  # fmt: skip
    out += [ev("content_block_delta", index=0, delta={"type": "text_delta", "text": f"t{i} "}) for i in range(N)]
    out += [
        ev("content_block_stop", index=0),
        ev("message_delta", delta={"stop_reason": "end_turn"}, usage={"output_tokens": N}),
        ev("message_stop"),
    ]
    return out


class Upstream:
    """A raw HTTP/1.1 upstream. ``burst``: an answer's events in one write. ``paced``: one event at a
    time, each (but the last few) only after ``go`` is released (the test releases it when the
    client has received the event before), so a gateway that waited for more would never finish.
    ``hang``: a burst without the answer's end, then nothing until the gateway closes the connection."""

    def __init__(self, mode: str):
        self.mode = mode
        self.go: asyncio.Queue[None] = asyncio.Queue()
        self.port = 0
        self.aborted = asyncio.Event()  # ``hang``: the gateway closed the connection mid-answer

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        anthropic = b"/v1/messages " in head.split(b"\r\n")[0]
        length = int(next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")).split(b":")[1])
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n")
        events = anthropic_answer() if anthropic else answer(bad_at=N // 2 if self.mode == "bad" else None)
        gated = len(events) - 1 if anthropic else N + 2  # the events the client sees as they come
        if self.mode == "hang":  # a burst of all but the answer's end, then silence until the gateway hangs up
            writer.write(b"".join(events[:-3]))
            await writer.drain()
            await reader.read()
            self.aborted.set()
            return
        if self.mode != "paced":
            writer.write(b"".join(events))
        else:
            for k, ev in enumerate(events):
                writer.write(ev)
                await writer.drain()
                if k < gated:
                    await self.go.get()
        await writer.drain()
        writer.close()


@pytest.fixture
async def gateway() -> AsyncIterator[Any]:
    from router.app import create_app
    from router.accounting.metering import MemorySink
    from router.build import build_services

    up = Upstream("burst")
    server = await asyncio.start_server(up.handle, "127.0.0.1", 0)
    up.port = server.sockets[0].getsockname()[1]
    env = {"SY_GROUPS_KEY": KEY, "SY_GROUPS_UP": "sk-up"}
    cfg = parse_config(
        f"""
model_list:
  - model_name: up
    litellm_params: {{model: openai/up, api_base: 'http://127.0.0.1:{up.port}/v1'}}
    model_info: {{input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}}
  - model_name: claude
    litellm_params: {{model: anthropic/claude-up, api_base: 'http://127.0.0.1:{up.port}', api_key: os.environ/SY_GROUPS_UP}}
    model_info: {{input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}}
auth:
  keys: [{{id: k, tenant: t, key: os.environ/SY_GROUPS_KEY}}]
""",
        env=env,
    )
    sink = MemorySink()
    app = create_app(cfg, services=build_services(cfg, env=env, sink=sink))
    async with app.router.lifespan_context(app):
        yield app, up, sink
    server.close()


async def call(app: Any, up: Upstream, path: str = "/v1/chat/completions", leave: bool = False) -> list[bytes]:
    """One streamed request through the app's ASGI interface (chat, or Anthropic's Messages API to
    the Anthropic deployment): each body message it sent. ``leave``: the client disconnects once it
    has the first."""
    model = "claude" if path == "/v1/messages" else "up"
    req = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True, "max_tokens": 200}
    body = json.dumps(req).encode()
    headers = [(b"content-type", b"application/json"), (b"authorization", f"Bearer {KEY}".encode())]
    scope = {"type": "http", "method": "POST", "path": path, "query_string": b"", "headers": headers}
    finished, wrote = asyncio.Event(), asyncio.Event()
    up.go = asyncio.Queue()
    sent: list[bytes] = []
    request = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if request:
            return request.pop()
        while not (finished.is_set() or (leave and sent)):
            wrote.clear()
            await wrote.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            assert message["status"] == 200, message
        elif message["type"] == "http.response.body":
            if message.get("body"):
                sent.append(message["body"])
                up.go.put_nowait(None)  # the client has this event: the upstream may send the next
            if not message.get("more_body"):
                finished.set()
            wrote.set()

    await asyncio.wait_for(app(scope, receive, send), 30)
    return sent


def text_of(sent: list[bytes]) -> tuple[str, list[str]]:
    """The streamed text, and every data line's payload after it."""
    lines = [ln[6:] for ln in b"".join(sent).decode().split("\n") if ln.startswith("data: ")]
    text = "".join(
        (c.get("delta") or {}).get("content") or ""
        for ln in lines
        if ln != "[DONE]" and "choices" in json.loads(ln)
        for c in json.loads(ln)["choices"]
    )
    return text, lines


async def test_a_burst_leaves_in_a_few_writes_and_a_paced_stream_event_by_event(gateway) -> None:
    app, up, sink = gateway
    up.mode = "burst"
    burst = await call(app, up)
    up.mode = "paced"
    paced = await call(app, up)  # finishes only if each event was relayed before the next was sent
    expected = "".join(f"t{i} " for i in range(N))
    for sent in (burst, paced):
        text, lines = text_of(sent)
        assert text == expected and lines[-1] == "[DONE]"
    # the burst: N + 2 chunks with content, relayed in a handful of writes (they came in one or two reads)
    assert len(burst) <= 4, [len(b) for b in burst]
    # paced: one write for each event that arrived alone, and one for the end
    assert len(paced) >= N + 2, len(paced)
    # metered alike: the upstream's usage, its price, both times
    recs = [r for r in sink.records if r.get("endpoint") == "chat"]
    assert len(recs) == 2
    check_metered(recs)


def check_metered(recs: list[dict[str, Any]]) -> None:
    for r in recs:
        assert r["status"] == 200 and r["usage_source"] == "upstream"
        assert (r["usage"]["prompt_tokens"], r["usage"]["completion_tokens"]) == (7, N)
        assert r["cost_usd"] == pytest.approx(7 * 0.000001 + N * 0.000002)


async def test_a_bad_chunk_inside_a_burst_lets_the_chunks_before_it_through(gateway) -> None:
    app, up, sink = gateway
    up.mode = "bad"
    text, lines = text_of(await call(app, up))
    assert text == "".join(f"t{i} " for i in range(N // 2))  # every token before the bad one
    last = json.loads(lines[-1])
    assert last["error"]["code"] == "upstream_bad_response", last
    rec = [r for r in sink.records if r.get("endpoint") == "chat"][-1]
    assert rec["status"] == 502 and rec["error"] == "upstream_bad_response"
    # metered at what was relayed (estimated: the upstream's usage never came), and priced as such
    used = rec["usage"]
    assert rec["usage_source"] == "estimated" and used["completion_tokens"] >= N // 2
    assert rec["cost_usd"] == pytest.approx(used["prompt_tokens"] * 0.000001 + used["completion_tokens"] * 0.000002)


async def test_an_anthropic_deployments_own_events_are_grouped_alike(gateway) -> None:
    """A /v1/messages stream relayed from an Anthropic deployment as it sent it."""
    app, up, sink = gateway
    sent = {}
    for mode in ("burst", "paced"):
        up.mode = mode
        sent[mode] = await call(app, up, "/v1/messages")
        kinds = [ln[7:] for ln in b"".join(sent[mode]).decode().split("\n") if ln.startswith("event: ")]
        assert kinds[0] == "message_start" and kinds[-1] == "message_stop" and len(kinds) == N + 5
        text = "".join(
            json.loads(ln[6:])["delta"].get("text", "")
            for ln in b"".join(sent[mode]).decode().split("\n")
            if ln.startswith("data: ") and json.loads(ln[6:])["type"] == "content_block_delta"
        )
        assert text == "".join(f"t{i} " for i in range(N))
    assert len(sent["burst"]) <= 4, [len(b) for b in sent["burst"]]
    assert len(sent["paced"]) >= N + 4, len(sent["paced"])
    recs = [r for r in sink.records if r.get("endpoint") == "messages"]
    assert len(recs) == 2
    check_metered(recs)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
async def test_a_client_that_leaves_after_a_burst_aborts_the_upstream_and_is_metered(gateway, path) -> None:
    """The client leaves once it has the burst: the upstream call is closed (its connection hung
    up), and the request is in the ledger as a client disconnect, metered at what was relayed: an
    Anthropic deployment's first event reports the prompt exactly but an output of 1 token, which
    once metered a cut stream of 50 relayed tokens as 1."""
    app, up, sink = gateway
    up.mode = "hang"
    before = len(sink.records)
    sent = await call(app, up, path, leave=True)
    assert 1 <= len(sent) <= 3, [len(b) for b in sent]
    await asyncio.wait_for(up.aborted.wait(), 10)
    [rec] = list(sink.records)[before:]
    assert rec["status"] == 499 and rec["error"] == "client_disconnected"
    used = rec["usage"]
    assert rec["usage_source"] == "estimated"
    assert used["completion_tokens"] >= N // 2  # the burst's N tokens went out before the client left
    if path == "/v1/messages":  # Anthropic's first event counts the prompt exactly (its output count is 1)
        assert used["prompt_tokens"] == 7
    assert rec["cost_usd"] == pytest.approx(used["prompt_tokens"] * 0.000001 + used["completion_tokens"] * 0.000002)
