"""The upstream stream reader: server-sent events cut anywhere across the body's reads come out as the
same chunks, in groups of what each read completed, up to ``[DONE]``; its connection goes back to the
pool only after a proper end."""

from __future__ import annotations

import asyncio
import json
from typing import Any, AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.backends.base import Call, UpstreamBadResponse, UpstreamServerError, UpstreamStreamCut
from router.backends.openai_compat import OpenAICompatBackend


class FakeResponse:
    """A streamed upstream answer whose body arrives in the given reads."""

    def __init__(self, blocks: list[bytes], ctype: str = "text/event-stream"):
        self.blocks, self.headers, self.ended = blocks, {"content-type": ctype}, ""

    async def iter_body(self) -> AsyncIterator[bytes]:
        for b in self.blocks:
            yield b

    def release(self) -> None:
        self.ended = "released"

    def close(self) -> None:
        self.ended = "closed"


def backend(resp: FakeResponse) -> OpenAICompatBackend:
    b = OpenAICompatBackend(api_base="http://127.0.0.1:9/v1", api_key="sk-up")

    async def post(path: str, call: Call, stream: bool = False) -> FakeResponse:
        return resp

    b._post = post  # type: ignore[method-assign]
    return b


def read_all(resp: FakeResponse) -> list[list[dict[str, Any]]]:
    async def go() -> list[list[dict[str, Any]]]:
        return [g async for g in backend(resp).chat_batches(Call(body={}, timeout=5))]

    return asyncio.run(go())


def cuts(data: bytes, points: list[int]) -> list[bytes]:
    edges = sorted({0, len(data), *(p % (len(data) + 1) for p in points)})
    return [data[a:b] for a, b in zip(edges, edges[1:])]


CHUNKS = st.lists(st.dictionaries(st.sampled_from(["content", "role"]), st.text(max_size=8), max_size=2), max_size=8)


@settings(max_examples=300, deadline=None)
@given(CHUNKS, st.lists(st.integers(0, 10_000), max_size=12), st.booleans(), st.booleans())
def test_events_cut_anywhere_read_as_the_same_chunks(
    deltas: list[dict[str, str]], points: list[int], crlf: bool, comments: bool
) -> None:
    nl = b"\r\n" if crlf else b"\n"
    chunks = [{"choices": [{"index": 0, "delta": d}]} for d in deltas]
    events = [
        (b": keep-alive" + nl if comments else b"") + b"data: " + json.dumps(c).encode() + nl + nl for c in chunks
    ]
    data = b"".join(events) + b"data: [DONE]" + nl + nl + b"data: after the end" + nl + nl
    resp = FakeResponse(cuts(data, points))
    groups = read_all(resp)
    assert [c for g in groups for c in g] == chunks
    assert all(groups), "no empty group"
    assert len(groups) <= len(resp.blocks)
    assert resp.ended == "released"


def test_a_stream_without_done_is_cut_and_its_connection_dropped() -> None:
    resp = FakeResponse([b'data: {"choices": []}\n\n', b'data: {"choices": []'])
    with pytest.raises(UpstreamStreamCut, match="ended without"):
        read_all(resp)
    assert resp.ended == "closed"


def test_a_bad_event_comes_after_the_good_ones_of_its_read() -> None:
    resp = FakeResponse([b'data: {"a": 1}\n\ndata: {"b": 2}\n\ndata: not json\n\ndata: {"c": 3}\n\n'])
    got: list[list[dict[str, Any]]] = []

    async def go() -> None:
        async for g in backend(resp).chat_batches(Call(body={}, timeout=5)):
            got.append(g)

    with pytest.raises(UpstreamBadResponse, match="not valid JSON"):
        asyncio.run(go())
    assert got == [[{"a": 1}, {"b": 2}]] and resp.ended == "closed"
    err = FakeResponse([b'data: {"a": 1}\n\ndata: {"error": {"message": "overloaded"}}\n\n'])
    with pytest.raises(UpstreamServerError, match="overloaded"):
        read_all(err)


def test_a_line_longer_than_the_limit_and_a_wrong_content_type_are_refused() -> None:
    long = FakeResponse([b"data: " + b"x" * 200])
    b = backend(long)
    b._max_bytes = 100

    async def go(x: OpenAICompatBackend) -> None:
        async for _ in x.chat_batches(Call(body={}, timeout=5)):
            pass

    with pytest.raises(UpstreamBadResponse, match="line longer"):
        asyncio.run(go(b))
    with pytest.raises(UpstreamBadResponse, match="application/json"):
        asyncio.run(go(backend(FakeResponse([b"{}"], ctype="application/json"))))


def test_typed_events_end_at_their_last_event() -> None:
    body = b'event: a\ndata: {"type": "message_start"}\n\ndata: {"type": "message_stop"}\n\ndata: {"type": "x"}\n\n'
    resp = FakeResponse([body[:17], body[17:]])

    async def go() -> list[Any]:
        b = backend(resp)
        return [g async for g in b.typed_events("messages", Call(body={}, timeout=5), frozenset({"message_stop"}))]

    groups = asyncio.run(go())
    assert [e["type"] for g in groups for e, _ in g] == ["message_start", "message_stop"]
    assert groups[0][0][1] == b'event: message_start\ndata: {"type": "message_start"}\n\n'
    assert resp.ended == "released"
