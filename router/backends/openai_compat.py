"""Backend for any OpenAI-compatible server (vLLM, SGLang, Ollama, OpenAI, Azure, Together, Groq...).

The hot path: one pooled keep-alive connection set per backend (``router.backends.transports``: the
lean HTTP/1.1 pool for http, httpx with HTTP/2 for https, or as ``transport:`` says), bodies
encoded with orjson, streams relayed chunk by chunk as they arrive (nothing buffers a whole answer).
"""

from __future__ import annotations

import ssl
from typing import Any, AsyncGenerator, Callable, TYPE_CHECKING
from urllib.parse import urlsplit

import orjson

from router.backends import transports as tp
from router.backends.kind import BackendKind, BuildContext, Built
from router.backends.base import (
    Call,
    UpstreamBadResponse,
    UpstreamConnectError,
    UpstreamError,
    UpstreamServerError,
    UpstreamStreamCut,
    UpstreamTimeout,
    error_for_status,
    one_by_one,
)

if TYPE_CHECKING:
    from router.config import LiteLLMParams

MAX_ERROR_BODY = 64 * 1024


class OpenAICompatBackend:
    def __init__(
        self,
        *,
        api_base: str,
        api_key: str | None = None,
        azure_api_version: str | None = None,
        azure_deployment: str | None = None,
        connect_timeout: float = 5.0,
        max_response_bytes: int = 32 * 1024 * 1024,
        max_connections: int = 256,
        headers: dict[str, str] | None = None,
        native_apis: frozenset[str] = frozenset(),
        ssl_context: ssl.SSLContext | None = None,
        transport: str = "auto",
    ):
        self._azure_version = azure_api_version
        self._azure_deployment = azure_deployment
        self._max_bytes = max_response_bytes
        self._secret = api_key
        static = {"Content-Type": "application/json", **(headers or {})}
        if api_key:
            if azure_api_version:
                static["api-key"] = api_key
            else:
                static["Authorization"] = f"Bearer {api_key}"
        base = api_base.rstrip("/")
        if urlsplit(base).query:
            raise ValueError("api_base must not carry a query string")
        self._pool = tp.make_transport(
            base,
            transport,
            max_connections=max_connections,
            connect_timeout=connect_timeout,
            keepalive_timeout=30.0,
            headers=static,
            ssl_context=ssl_context,
            max_decompressed=max(max_response_bytes, 1 << 20),
        )
        # client APIs this server also speaks in their own shape (router.surfaces): a request that
        # arrives in that shape and is routed here goes through as it came
        self.native: dict[str, Any] = (
            {"responses": NativeAPI(self, "responses", RESPONSES_ENDS)} if "responses" in native_apis else {}
        )

    # -- plumbing ---------------------------------------------------------------------------
    def _path(self, path: str) -> str:
        if self._azure_version:
            return f"openai/deployments/{self._azure_deployment}/{path}?api-version={self._azure_version}"
        return path

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "[redacted]") if self._secret else text

    async def _post(self, path: str, call: Call, *, stream: bool) -> tp.Response:
        try:
            resp = await self._pool.request(
                "POST",
                self._path(path),
                orjson.dumps(call.body),
                timeout=call.timeout,
                total=None if stream else call.timeout,
                headers=call.extra_headers or None,
            )
        except tp.TimedOut:
            raise UpstreamTimeout("upstream timed out before answering") from None
        except tp.BadResponse as exc:
            raise UpstreamBadResponse(f"upstream answer is malformed: {exc}") from None
        except tp.HTTPClientError as exc:
            raise UpstreamConnectError(f"upstream request failed: {exc}") from None
        if resp.status != 200:
            try:
                raw = await resp.read(MAX_ERROR_BODY)
            except tp.HTTPClientError:
                raw = b""
            error = self._status_error(resp, raw)  # before release: a released connection is reset
            resp.release()
            raise error
        return resp

    def _status_error(self, resp: tp.Response, raw: bytes) -> UpstreamError:
        body: Any = None
        message = f"upstream answered HTTP {resp.status}"
        try:
            body = orjson.loads(raw)
            err = body.get("error") if isinstance(body, dict) else None
            detail = err.get("message") if isinstance(err, dict) else (err if isinstance(err, str) else None)
            if isinstance(detail, str) and resp.status not in (401, 403):
                message = f"{message}: {self._scrub(detail)[:500]}"
        except orjson.JSONDecodeError:
            pass
        retry_after = None
        ra = resp.headers.get("retry-after")
        if ra:
            try:
                retry_after = max(0.0, float(ra))
            except ValueError:
                retry_after = None
        return error_for_status(resp.status, message, retry_after=retry_after, body=body)

    async def _read_json(self, resp: tp.Response) -> dict[str, Any]:
        try:
            length = resp.content_length()
            if length is not None and length > self._max_bytes:
                raise UpstreamBadResponse(f"upstream answer of {length} bytes exceeds the limit")
            body = orjson.loads(await resp.read(self._max_bytes))
        except orjson.JSONDecodeError:
            raise UpstreamBadResponse("upstream answered with invalid JSON") from None
        except tp.TimedOut:
            raise UpstreamTimeout("upstream timed out while sending its answer") from None
        except tp.BadResponse:
            raise UpstreamBadResponse("upstream answer exceeds the response size limit or is malformed") from None
        except tp.HTTPClientError as exc:
            raise UpstreamStreamCut(f"upstream connection broke while reading: {exc}") from None
        finally:
            resp.release()
        if not isinstance(body, dict):
            raise UpstreamBadResponse("upstream answered with a JSON value that is not an object")
        return body

    # -- the interface ----------------------------------------------------------------------
    async def chat(self, call: Call) -> dict[str, Any]:
        return await self._read_json(await self._post("chat/completions", call, stream=False))

    async def embeddings(self, call: Call) -> dict[str, Any]:
        return await self._read_json(await self._post("embeddings", call, stream=False))

    async def _stream(
        self, path: str, call: Call, read: Callable[[bytes], tuple[Any, bool]], cut: str
    ) -> AsyncGenerator[list[Any], None]:
        """A streamed answer's items, in the groups each block of its body completes: ``read`` turns
        each server-sent event's data into (its item, or None for none; whether the stream ends
        there), and an event ``read`` refuses comes after the items before it, as it would have
        alone. Transport failures are mapped; the connection goes back to the pool only after a
        proper end, and is dropped otherwise (the upstream sees the abort and stops generating).
        One generator from the body's blocks to the groups: each layer of async generators costs
        every event that arrives alone (a paced stream's every token) a resumption and a yield."""
        resp = await self._post(path, call, stream=True)
        done = False
        try:
            ctype = resp.headers.get("content-type", "")
            if "text/event-stream" not in ctype:
                raise UpstreamBadResponse(f"upstream answered a stream request with '{ctype[:60]}'")
            data: list[bytes] = []  # the data lines of the event being read
            tail = b""
            async for block in resp.iter_body():
                lines = (tail + block).split(b"\n")
                tail = lines.pop()
                if len(tail) > self._max_bytes:
                    raise UpstreamBadResponse("upstream stream has a line longer than the response size limit")
                group, failure, done = _read_events(lines, data, read)
                if group:
                    yield group
                if failure is not None:
                    raise failure
                if done:
                    return
            raise UpstreamStreamCut(f"upstream stream {cut}")
        except tp.TimedOut:
            raise UpstreamTimeout("upstream stream stalled past the read timeout") from None
        except tp.BadResponse as exc:
            raise UpstreamBadResponse(f"upstream stream is malformed: {str(exc)[:100]}") from None
        except tp.HTTPClientError as exc:
            raise UpstreamStreamCut(f"upstream stream broke: {exc}") from None
        finally:
            if done:
                resp.release()
            else:
                resp.close()

    def chat_stream(self, call: Call) -> AsyncGenerator[dict[str, Any], None]:
        return one_by_one(self.chat_batches(call))

    def chat_batches(self, call: Call) -> AsyncGenerator[list[dict[str, Any]], None]:
        """The chunks in the groups they arrive in (``router.backends.base.chunk_batches``)."""
        return self._stream("chat/completions", call, self._chat_chunks(), "ended without [DONE]")

    def _chat_chunks(self) -> Callable[[bytes], tuple[dict[str, Any] | None, bool]]:
        """A reader of one chat stream's events: each chunk, up to ``[DONE]``."""
        seen = 0

        def chunk(payload: bytes) -> tuple[dict[str, Any] | None, bool]:
            nonlocal seen
            if payload == b"[DONE]":
                return None, True
            seen += len(payload)
            return self._chunk(payload, seen), False

        return chunk

    def _chunk(self, payload: bytes, seen: int) -> dict[str, Any]:
        """One stream event's data as a chunk; ``seen``: the stream's bytes so far, this one's included."""
        if seen > self._max_bytes:
            raise UpstreamBadResponse("upstream stream exceeds the response size limit")
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise UpstreamBadResponse("upstream sent a stream chunk that is not valid JSON") from None
        if not isinstance(chunk, dict):
            raise UpstreamBadResponse("upstream sent a stream chunk that is not an object")
        if "error" in chunk and "choices" not in chunk:
            err = chunk["error"]
            msg = err.get("message") if isinstance(err, dict) else str(err)
            raise UpstreamServerError(f"upstream reported an error mid-stream: {self._scrub(str(msg))[:300]}")
        return chunk

    def typed_events(
        self, path: str, call: Call, ends: frozenset[str]
    ) -> AsyncGenerator[list[tuple[dict[str, Any], bytes]], None]:
        """A stream of typed events (each event's data names its ``type``, as Anthropic's and the
        Responses API's do), up to one of ``ends``, in the groups they arrive in: (the data, the
        event as the client gets it). An ``error`` event, or the stream ending early, is the
        upstream's failure."""

        def typed(payload: bytes) -> tuple[tuple[dict[str, Any], bytes], bool]:
            try:
                event = orjson.loads(payload)
            except orjson.JSONDecodeError:
                raise UpstreamBadResponse("upstream sent a stream event that is not valid JSON") from None
            kind = event.get("type") if isinstance(event, dict) else None
            if not isinstance(kind, str):
                raise UpstreamBadResponse("upstream sent a stream event without a type")
            if kind == "error":
                raise self._event_error(event)
            return (event, b"event: " + kind.encode() + b"\ndata: " + payload + b"\n\n"), kind in ends

        return self._stream(path, call, typed, "ended before its last event")

    def _event_error(self, event: dict[str, Any]) -> UpstreamError:
        err: dict[str, Any] = event["error"] if isinstance(event.get("error"), dict) else event
        return UpstreamServerError(
            f"upstream reported an error mid-stream: {self._scrub(str(err.get('message', '')))[:300]}"
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


def _read_events(
    lines: list[bytes], data: list[bytes], read: Callable[[bytes], tuple[Any, bool]]
) -> tuple[list[Any], UpstreamError | None, bool]:
    """The items of the server-sent events ``lines`` complete (``data``: the data lines of the event
    being read, carried to the next block), the failure ``read`` raised for one of them, and whether
    the stream ended there (nothing after that event is read)."""
    group: list[Any] = []
    for line in lines:
        line = line.removesuffix(b"\r")
        if line.startswith(b"data:"):
            data.append(line[5:].lstrip())
        elif not line and data:  # a blank line ends an event; comments and other fields are skipped
            payload = b"\n".join(data)
            data.clear()
            try:
                item, done = read(payload)
            except UpstreamError as exc:
                return group, exc, False
            if item is not None:
                group.append(item)
            if done:
                return group, None, True
    return group, None, False


RESPONSES_ENDS = frozenset({"response.completed", "response.incomplete", "response.failed"})


class NativeAPI:
    """One client API a backend speaks itself at ``path``: a whole answer, or its typed events."""

    def __init__(self, backend: OpenAICompatBackend, path: str, ends: frozenset[str]):
        self.backend, self.path, self.ends = backend, path, ends

    async def create(self, call: Call) -> dict[str, Any]:
        b = self.backend
        return await b._read_json(await b._post(self.path, call, stream=False))

    def stream(self, call: Call) -> AsyncGenerator[list[tuple[dict[str, Any], bytes]], None]:
        """The answer's events, in the groups they arrive in."""
        return self.backend.typed_events(self.path, call, self.ends)


# OpenAI-compatible providers and their public endpoints (None: the deployment names its api_base)
OPENAI_COMPAT_BASES: dict[str, str | None] = {
    "openai": "https://api.openai.com/v1",
    "azure": None,
    "groq": "https://api.groq.com/openai/v1",
    "together_ai": "https://api.together.xyz/v1",
    "deepseek": "https://api.deepseek.com/v1",
    "fireworks_ai": "https://api.fireworks.ai/inference/v1",
    "mistral": "https://api.mistral.ai/v1",
    "openrouter": "https://openrouter.ai/api/v1",
    "ollama_chat": "http://127.0.0.1:11434/v1",
    "hosted_vllm": None,
    "vllm": None,
    "sglang": None,
    "lm_studio": None,
    "llamafile": None,
}


class OpenAIKind(BackendKind):
    """OpenAI's API and the servers that speak it (vLLM, SGLang, Azure OpenAI, Groq...), called directly."""

    name = "openai"

    def serves(self, provider: str) -> bool:
        return provider in OPENAI_COMPAT_BASES

    def problems(self, provider: str, params: "LiteLLMParams") -> list[tuple[str, str]]:
        if params.api_base is None and OPENAI_COMPAT_BASES.get(provider) is None:
            return [("api_base", f"provider '{provider}' needs an api_base")]
        return []

    def build(self, ctx: BuildContext) -> Built:
        p, provider = ctx.params, ctx.provider
        base = ctx.ref_or_literal(p.api_base) or OPENAI_COMPAT_BASES.get(provider)
        if base is None:
            raise ValueError(f"model_list[{ctx.index}]: provider '{provider}' needs an api_base")
        azure = provider == "azure"
        own = provider == "openai" and base == OPENAI_COMPAT_BASES["openai"]
        native = p.native_apis if p.native_apis is not None else (["responses"] if own else [])
        backend = OpenAICompatBackend(
            api_base=base,
            api_key=ctx.resolve(p.api_key),
            ssl_context=ctx.tls(),
            transport=p.transport,
            azure_api_version=p.api_version if azure else None,
            azure_deployment=ctx.upstream if azure else None,
            max_response_bytes=ctx.cfg.server.max_response_bytes,
            headers={str(k): str(v) for k, v in (ctx.extra.get("extra_headers") or {}).items()},
            native_apis=frozenset(native),
        )
        return Built(backend, ctx.listed_price_key())
