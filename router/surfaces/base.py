"""An API surface: one wire protocol apps speak (OpenAI chat completions, legacy completions, the
Responses API, Anthropic's Messages API), adapted in and out of the gateway's one internal request.

A surface turns its client's body into a chat-completions body (``chat``), which the gateway plans,
admits, routes, meters and records like any other (the ledger's ``endpoint`` is the surface's
name), and turns the gateway's OpenAI answer back into its own shape: a whole answer (``answer``),
a stream (``encoder``: an ``Encoder`` turns each OpenAI chunk into the surface's events) and an
error (``error``). A surface object serves one request; it keeps what it needs of the client's
body to answer in kind (the prompt an ``echo`` repeats, the fields a Response echoes back).

A deployment that speaks the surface's API itself (``native_call``) gets the client's request as it
came; its answer (or each stream event) rides under ``NATIVE`` on the OpenAI-shaped view the gateway
meters (``from_native``, ``native_chunks``) and reaches the client as the deployment sent it.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any, AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence, TYPE_CHECKING

import orjson
from starlette.responses import Response

from router.errors import APIError

if TYPE_CHECKING:
    from router.auth import Principal
    from router.registry import Deployment
    from router.ledger.conversations import ResponseStore

log = logging.getLogger("switchyard")
NATIVE = "_native"  # where a native answer or event rides on the gateway's OpenAI-shaped view of it


class Encoder:
    """One stream's events in a surface's shape. ``chunk`` is called once per upstream chunk (an
    OpenAI ``chat.completion.chunk`` already normalised); ``end`` once with the request's usage
    (OpenAI's form) and its money; ``fail`` when the stream breaks after it started."""

    def begin(self) -> bytes:
        return b""

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        raise NotImplementedError

    def end(self, usage: dict[str, Any], money: dict[str, Any]) -> bytes:
        raise NotImplementedError

    def fail(self, message: str, code: str) -> bytes:
        raise NotImplementedError


class BlockEncoder(Encoder):
    """An encoder for APIs whose answers are a sequence of blocks (Anthropic's content blocks, the
    Responses API's output items): the first choice's text opens a text block, each tool call its
    own block; a new block closes the open one. Subclasses say how a block opens, grows and closes."""

    def __init__(self) -> None:
        self.open: str | None = None  # "text" or "tool:<openai index>"
        self.tool_id: str | None = None  # the open tool block's call id
        self.finish: str | None = None  # the choice's finish reason

    def open_text(self) -> bytes:
        raise NotImplementedError

    def text(self, text: str) -> bytes:
        raise NotImplementedError

    def open_tool(self, call_id: str | None, name: str) -> bytes:
        raise NotImplementedError

    def arguments(self, fragment: str) -> bytes:
        raise NotImplementedError

    def close_block(self) -> bytes:
        raise NotImplementedError

    def close(self) -> bytes:
        if self.open is None:
            return b""
        out = self.close_block()
        self.open = None
        return out

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        out = b""
        for ch in chunk["choices"]:
            if ch["index"] != 0:
                continue
            delta = ch["delta"]
            text = delta.get("content")
            if text:
                if self.open != "text":
                    out += self.close() + self.open_text()
                    self.open = "text"
                out += self.text(text)
            for tc in delta.get("tool_calls") or ():
                kind = f"tool:{tc.get('index', 0)}"
                fn = tc.get("function") or {}
                if self.open != kind or (tc.get("id") and tc["id"] != self.tool_id):
                    out += self.close()
                    self.tool_id = tc.get("id")
                    out += self.open_tool(self.tool_id, fn.get("name", ""))
                    self.open = kind
                if fn.get("arguments"):
                    out += self.arguments(fn["arguments"])
            if ch["finish_reason"] is not None:
                self.finish = ch["finish_reason"]
        return out


class Surface:
    """One request on one API surface (``endpoint``: its name in the ledger and usage API)."""

    endpoint = "chat"

    # request headers a deployment that speaks the surface's API natively gets as the client sent them
    NATIVE_HEADERS: tuple[str, ...] = ()

    def __init__(self, body: dict[str, Any], headers: Any = None):
        self.body = body  # the client's own body
        self.native_headers = {h: headers[h] for h in self.NATIVE_HEADERS if h in headers} if headers else {}

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    def parts(self) -> Sequence["Surface"]:
        """The requests this one is served as (a legacy batch of prompts: one each); itself by default."""
        return [self]

    @staticmethod
    async def serve_batch(parts: Sequence[Any], rid: str, serve: Callable[[Any, str], Awaitable[Response]]) -> Response:
        """Several parts (``parts()``) served and answered as one request."""
        raise NotImplementedError

    async def prepare(self, who: Principal, store: ResponseStore | None) -> None:
        """Work before the request is planned (the Responses API loads the conversation it continues)."""

    async def done(self) -> None:
        """Work once the answer is complete, before the client gets its end (the Responses API stores it)."""

    def chat(self, *, max_messages: int, max_tokens_limit: int) -> dict[str, Any]:
        """The internal chat-completions request; APIError (400) for what this surface rejects."""
        raise NotImplementedError

    def answer(self, out: dict[str, Any]) -> dict[str, Any]:
        """The client's answer from an OpenAI chat completion (its ``usage`` is the served call's)."""
        raise NotImplementedError

    # -- deployments that speak this surface's API natively -----------------------------------------
    def native_call(self, dep: Deployment) -> tuple[Any, dict[str, Any]] | None:
        """(the deployment's client for this API, the body it gets) when ``dep`` speaks this surface's
        API itself; None to go through chat completions."""
        return None

    def from_native(self, answer: dict[str, Any], model: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """A native answer as the gateway meters it: (an OpenAI-shaped raw body with its usage, the
        normalised chat completion); the native answer rides along for ``answer``. ValueError when
        it is malformed."""
        raise NotImplementedError

    def native_chunks(
        self, events: AsyncIterator[tuple[dict[str, Any], bytes]], model: str
    ) -> AsyncGenerator[dict[str, Any], None]:
        """A native stream as OpenAI chunks (for metering), exactly one per event, each carrying its
        native event to relay."""
        raise NotImplementedError

    async def native_groups(
        self, groups: AsyncGenerator[list[tuple[dict[str, Any], bytes]], None], model: str
    ) -> AsyncGenerator[list[dict[str, Any]], None]:
        """``native_chunks`` over a stream whose events come in groups (those a read brought in
        together), its chunks grouped alike, so the relay writes each group at once. Closing this
        closes ``groups`` (the upstream call)."""
        sizes: deque[int] = deque()

        async def events() -> AsyncGenerator[tuple[dict[str, Any], bytes], None]:
            async for group in groups:
                sizes.append(len(group))
                for event in group:
                    yield event

        flat = events()
        chunks = self.native_chunks(flat, model)
        out: list[dict[str, Any]] = []
        try:
            async for chunk in chunks:
                out.append(chunk)
                if len(out) == sizes[0]:  # a chunk per event: the group's last event is in
                    sizes.popleft()
                    yield out
                    out = []
            if out:
                yield out
        finally:
            await chunks.aclose()
            await flat.aclose()
            await groups.aclose()  # even if ``native_chunks`` never read from ``flat``

    def encoder(self, stream_id: str, created: int, model: str, client_usage: bool) -> Encoder:
        raise NotImplementedError

    @staticmethod
    def error(exc: APIError) -> Response:
        """An error in this surface's shape (OpenAI's unless the surface says otherwise)."""
        return exc.response()


def sse(event: str, data: dict[str, Any]) -> bytes:
    """One server-sent event with a name (Anthropic's and the Responses API's streams name theirs)."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


async def finish_surface(surface: Surface) -> None:
    """``surface.done()``; its failure (the database down while storing a response) is logged, never
    the client's: the answer was served and metered."""
    try:
        await surface.done()
    except Exception as exc:  # noqa: BLE001 - see above
        log.warning("%s: finishing the answer failed: %s", surface.endpoint, type(exc).__name__)
