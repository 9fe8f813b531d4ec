"""Anthropic's own Messages API, for requests that arrive in that shape (``POST /v1/messages``,
router.surfaces.messages) and are routed to an Anthropic deployment: the body goes through as the
client wrote it (thinking blocks, cache_control marks, top_k, documents and all), with no round trip
through chat completions. Chat requests to the same deployment still go through litellm.

The plumbing (pooled keep-alive connections, size limits, server-sent events, error mapping) is the
OpenAI-compatible backend's; only the path, the headers and the stream's end differ.
"""

from __future__ import annotations

from typing import Any, AsyncIterator

import orjson

from router.backends import http1
from router.backends.base import (Call, UpstreamBadResponse, UpstreamError, UpstreamServerError, UpstreamStreamCut,
                                  UpstreamTimeout, UpstreamUnavailable)
from router.backends.openai_compat import OpenAICompatBackend

API_BASE = "https://api.anthropic.com"
VERSION = "2023-06-01"


class AnthropicMessages(OpenAICompatBackend):
    def __init__(self, *, api_base: str | None, api_key: str | None, max_response_bytes: int = 32 * 1024 * 1024):
        headers = {"anthropic-version": VERSION, **({"x-api-key": api_key} if api_key else {})}
        super().__init__(api_base=api_base or API_BASE, max_response_bytes=max_response_bytes, headers=headers)
        self._secret = api_key  # scrubbed from any error text

    def _status_error(self, resp: http1.Connection, raw: bytes) -> UpstreamError:
        err = super()._status_error(resp, raw)
        if resp.status == 529:  # Anthropic's "overloaded": come back shortly, as from any 503
            return UpstreamUnavailable(f"provider overloaded: {err.message}", upstream_status=529,
                                       retry_after=err.retry_after or 1.0)
        return err

    async def create(self, call: Call) -> dict[str, Any]:
        return await self._read_json(await self._post("v1/messages", call, stream=False))

    async def stream(self, call: Call) -> AsyncIterator[tuple[dict[str, Any], bytes]]:
        """Each event of the answer: (its data, the event as the client gets it)."""
        resp = await self._post("v1/messages", call, stream=True)
        clean = False
        try:
            ctype = resp.headers.get("content-type", "")
            if "text/event-stream" not in ctype:
                raise UpstreamBadResponse(f"upstream answered a stream request with '{ctype[:60]}'")
            async for payload in self._events(resp):
                try:
                    event = orjson.loads(payload)
                except orjson.JSONDecodeError:
                    raise UpstreamBadResponse("upstream sent a stream event that is not valid JSON") from None
                kind = event.get("type") if isinstance(event, dict) else None
                if not isinstance(kind, str):
                    raise UpstreamBadResponse("upstream sent a stream event without a type")
                if kind == "error":
                    err = event.get("error") if isinstance(event.get("error"), dict) else {}
                    text = self._scrub(str(err.get("message", "")))[:300]
                    if err.get("type") == "overloaded_error":
                        raise UpstreamUnavailable(f"provider overloaded mid-stream: {text}", retry_after=1.0)
                    raise UpstreamServerError(f"upstream reported an error mid-stream: {text}")
                yield event, b"event: " + kind.encode() + b"\ndata: " + payload + b"\n\n"
                if kind == "message_stop":
                    clean = True
                    return
            raise UpstreamStreamCut("upstream stream ended without message_stop")
        except http1.TimedOut:
            raise UpstreamTimeout("upstream stream stalled past the read timeout") from None
        except http1.BadResponse as exc:
            raise UpstreamBadResponse(f"upstream stream is malformed: {str(exc)[:100]}") from None
        except http1.HTTPClientError as exc:
            raise UpstreamStreamCut(f"upstream stream broke: {exc}") from None
        finally:
            if clean:
                resp.release()
            else:
                resp.close()
