"""Anthropic's own Messages API, for requests that arrive in that shape (``POST /v1/messages``,
router.surfaces.messages) and are routed to an Anthropic deployment: the body goes through as the
client wrote it (thinking blocks, cache_control marks, top_k, documents and all), with no round trip
through chat completions. Chat requests to the same deployment still go through litellm.

The plumbing (pooled keep-alive connections, size limits, typed server-sent events, error mapping)
is the OpenAI-compatible backend's; only the path, the headers, 529 and mid-stream errors differ.
"""

from __future__ import annotations

from typing import Any

from router.backends import transports as tp
from router.backends.base import UpstreamError, UpstreamServerError, UpstreamUnavailable
from router.backends.openai_compat import NativeAPI, OpenAICompatBackend

API_BASE = "https://api.anthropic.com"
VERSION = "2023-06-01"


class AnthropicBackend(OpenAICompatBackend):
    def __init__(self, *, api_base: str | None, api_key: str | None, max_response_bytes: int = 32 * 1024 * 1024):
        headers = {"anthropic-version": VERSION, **({"x-api-key": api_key} if api_key else {})}
        super().__init__(api_base=api_base or API_BASE, max_response_bytes=max_response_bytes, headers=headers)
        self._secret = api_key  # scrubbed from any error text
        self.native = {"messages": NativeAPI(self, "v1/messages", frozenset({"message_stop"}))}

    def _status_error(self, resp: tp.Response, raw: bytes) -> UpstreamError:
        err = super()._status_error(resp, raw)
        if resp.status == 529:  # Anthropic's "overloaded": come back shortly, as from any 503
            return UpstreamUnavailable(
                f"provider overloaded: {err.message}", upstream_status=529, retry_after=err.retry_after or 1.0
            )
        return err

    def _event_error(self, event: dict[str, Any]) -> UpstreamError:
        err: dict[str, Any] = event["error"] if isinstance(event.get("error"), dict) else {}
        text = self._scrub(str(err.get("message", "")))[:300]
        if err.get("type") == "overloaded_error":
            return UpstreamUnavailable(f"provider overloaded mid-stream: {text}", retry_after=1.0)
        return UpstreamServerError(f"upstream reported an error mid-stream: {text}")
