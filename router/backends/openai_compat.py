"""Backend for any OpenAI-compatible server (vLLM, SGLang, Ollama, OpenAI, Azure, Together, Groq...).

The hot path: one pooled keep-alive aiohttp session per backend, bodies encoded with orjson,
streams relayed chunk by chunk as they arrive (nothing buffers a whole answer).
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

import aiohttp
import orjson

from router.backends.base import (
    Call,
    UpstreamBadResponse,
    UpstreamConnectError,
    UpstreamError,
    UpstreamServerError,
    UpstreamStreamCut,
    UpstreamTimeout,
    error_for_status,
)

MAX_ERROR_BODY = 64 * 1024


def _is_timeout(exc: BaseException) -> bool:
    """aiohttp reports a read timeout as a ClientError, sometimes wrapping the TimeoutError."""
    while exc is not None:
        if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


class OpenAICompatBackend:
    def __init__(self, *, api_base: str, api_key: str | None = None, azure_api_version: str | None = None,
                 azure_deployment: str | None = None, connect_timeout: float = 5.0,
                 max_response_bytes: int = 32 * 1024 * 1024, max_connections: int = 256,
                 headers: dict[str, str] | None = None):
        self._base = api_base.rstrip("/")
        self._azure_version = azure_api_version
        self._azure_deployment = azure_deployment
        self._connect_timeout = connect_timeout
        self._max_bytes = max_response_bytes
        self._max_connections = max_connections
        self._secret = api_key
        self._headers = {"Content-Type": "application/json", **(headers or {})}
        if api_key:
            if azure_api_version:
                self._headers["api-key"] = api_key
            else:
                self._headers["Authorization"] = f"Bearer {api_key}"
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[bool, float], aiohttp.ClientTimeout] = {}

    # -- plumbing ---------------------------------------------------------------------------
    def _url(self, path: str) -> str:
        if self._azure_version:
            return f"{self._base}/openai/deployments/{self._azure_deployment}/{path}?api-version={self._azure_version}"
        return f"{self._base}/{path}"

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._max_connections, keepalive_timeout=30, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(connector=connector, json_serialize=lambda o: orjson.dumps(o).decode(),
                                                  read_bufsize=1 << 20, skip_auto_headers=("User-Agent",))
        return self._session

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "[redacted]") if self._secret else text

    async def _post(self, path: str, call: Call, *, stream: bool) -> aiohttp.ClientResponse:
        key = (stream, call.timeout)
        timeout = self._timeouts.get(key)
        if timeout is None:  # one immutable ClientTimeout per (stream, timeout) pair, not one per request
            timeout = self._timeouts[key] = aiohttp.ClientTimeout(
                total=None if stream else call.timeout, connect=self._connect_timeout, sock_read=call.timeout)
        headers = {**self._headers, **call.extra_headers} if call.extra_headers else self._headers
        try:
            resp = await self._get_session().post(self._url(path), data=orjson.dumps(call.body), headers=headers,
                                                  timeout=timeout)
        except (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError, ConnectionError) as exc:
            raise UpstreamConnectError(f"could not connect to upstream: {type(exc).__name__}") from None
        except asyncio.TimeoutError:
            raise UpstreamTimeout("upstream timed out before answering") from None
        except aiohttp.ClientError as exc:
            raise UpstreamConnectError(f"upstream request failed: {type(exc).__name__}") from None
        if resp.status != 200:
            try:
                raw = await resp.content.read(MAX_ERROR_BODY)
            except (aiohttp.ClientError, asyncio.TimeoutError):
                raw = b""
            finally:
                resp.release()
            raise self._status_error(resp, raw)
        return resp

    def _status_error(self, resp: aiohttp.ClientResponse, raw: bytes) -> UpstreamError:
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

    async def _read_json(self, resp: aiohttp.ClientResponse) -> dict[str, Any]:
        try:
            if resp.content_length is not None and resp.content_length > self._max_bytes:
                raise UpstreamBadResponse(f"upstream answer of {resp.content_length} bytes exceeds the limit")
            parts, size = [], 0
            while True:  # StreamReader.read(n) returns what has arrived: read to the end, capped
                chunk = await resp.content.read(1 << 16)
                if not chunk:
                    break
                size += len(chunk)
                if size > self._max_bytes:
                    raise UpstreamBadResponse("upstream answer exceeds the response size limit")
                parts.append(chunk)
            body = orjson.loads(b"".join(parts))
        except orjson.JSONDecodeError:
            raise UpstreamBadResponse("upstream answered with invalid JSON") from None
        except asyncio.TimeoutError:
            raise UpstreamTimeout("upstream timed out while sending its answer") from None
        except aiohttp.ClientError as exc:
            if _is_timeout(exc):
                raise UpstreamTimeout("upstream timed out while sending its answer") from None
            raise UpstreamStreamCut(f"upstream connection broke while reading: {type(exc).__name__}") from None
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

    async def chat_stream(self, call: Call) -> AsyncIterator[dict[str, Any]]:
        resp = await self._post("chat/completions", call, stream=True)
        clean = False
        try:
            ctype = resp.headers.get("content-type", "")
            if "text/event-stream" not in ctype:
                raise UpstreamBadResponse(f"upstream answered a stream request with '{ctype[:60]}'")
            data: list[bytes] = []
            seen = 0
            async for line in resp.content:
                line = line.rstrip(b"\r\n")
                if line.startswith(b"data:"):
                    data.append(line[5:].lstrip())
                    continue
                if line or not data:
                    continue  # comments, event:/id: fields, keep-alives
                payload = b"\n".join(data)
                data.clear()
                if payload == b"[DONE]":
                    clean = True
                    return
                seen += len(payload)
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
                yield chunk
            raise UpstreamStreamCut("upstream stream ended without [DONE]")
        except asyncio.TimeoutError:
            raise UpstreamTimeout("upstream stream stalled past the read timeout") from None
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
            if _is_timeout(exc):
                raise UpstreamTimeout("upstream stream stalled past the read timeout") from None
            raise UpstreamStreamCut(f"upstream stream broke: {type(exc).__name__}") from None
        except ValueError as exc:  # aiohttp: a line longer than the read buffer
            raise UpstreamBadResponse(f"upstream stream is malformed: {str(exc)[:100]}") from None
        finally:
            if clean:
                resp.release()
            else:
                resp.close()  # drop the connection: the upstream sees the abort and stops generating

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
