"""Backend for the providers litellm speaks that are not OpenAI-compatible (Anthropic, Bedrock,
Vertex, Gemini, Cohere...). litellm translates; this module maps its results and exceptions onto
the backend interface. litellm is imported on first use: importing it costs seconds."""

from __future__ import annotations

import os
from typing import Any, AsyncIterator

from router.backends.base import (
    Call,
    UpstreamBadResponse,
    UpstreamConnectError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamServerError,
    UpstreamTimeout,
    UpstreamUnavailable,
)

# Fields of the OpenAI body that are the gateway's business, not the provider's.
_GATEWAY_FIELDS = {"model", "messages", "input", "stream"}


def _litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # never fetch the price map
    import litellm

    litellm.drop_params = True
    litellm.telemetry = False
    return litellm


class LiteLLMBackend:
    def __init__(self, *, model: str, api_key: str | None = None, api_base: str | None = None,
                 extra: dict[str, Any] | None = None):
        self._model = model
        self._secret = api_key
        self._kw: dict[str, Any] = {k: v for k, v in (extra or {}).items() if v is not None}
        if api_key:
            self._kw["api_key"] = api_key
        if api_base:
            self._kw["api_base"] = api_base

    def _args(self, call: Call) -> dict[str, Any]:
        params = {k: v for k, v in call.body.items() if k not in _GATEWAY_FIELDS}
        return {**params, **self._kw, "model": self._model, "timeout": call.timeout, "num_retries": 0}

    def _error(self, exc: Exception) -> UpstreamError:
        ll = _litellm()
        text = str(getattr(exc, "message", "") or exc)
        if self._secret:
            text = text.replace(self._secret, "[redacted]")
        status = getattr(exc, "status_code", None)
        mapping: list[tuple[Any, Any]] = [
            (ll.exceptions.RateLimitError, UpstreamRateLimited),
            (ll.exceptions.Timeout, UpstreamTimeout),
            (ll.exceptions.ServiceUnavailableError, UpstreamUnavailable),
            (ll.exceptions.APIConnectionError, UpstreamConnectError),
            (ll.exceptions.AuthenticationError, UpstreamServerError),
            (ll.exceptions.PermissionDeniedError, UpstreamServerError),
            (ll.exceptions.InternalServerError, UpstreamServerError),
        ]
        for cls, ours in mapping:
            if isinstance(exc, cls):
                detail = "" if ours is UpstreamServerError and status in (401, 403) else f": {text[:300]}"
                return ours(f"provider error{detail}", upstream_status=status)
        if isinstance(exc, (ll.exceptions.BadRequestError, ll.exceptions.NotFoundError,
                            ll.exceptions.UnprocessableEntityError)):
            return UpstreamRejected(f"provider rejected the request: {text[:300]}", upstream_status=status or 400)
        return UpstreamServerError(f"provider error: {type(exc).__name__}", upstream_status=status)

    @staticmethod
    def _dump(obj: Any) -> dict[str, Any]:
        if hasattr(obj, "model_dump"):
            return obj.model_dump(exclude_none=False)
        if isinstance(obj, dict):
            return obj
        raise UpstreamBadResponse("provider adapter returned an unexpected object")

    async def chat(self, call: Call) -> dict[str, Any]:
        ll = _litellm()
        try:
            resp = await ll.acompletion(messages=call.body["messages"], stream=False, **self._args(call))
        except Exception as exc:  # litellm raises its own hierarchy; map every one
            raise self._error(exc) from None
        return self._dump(resp)

    async def chat_stream(self, call: Call) -> AsyncIterator[dict[str, Any]]:
        ll = _litellm()
        try:
            stream = await ll.acompletion(messages=call.body["messages"], stream=True, **self._args(call))
            async for chunk in stream:
                yield self._dump(chunk)
        except UpstreamError:
            raise
        except Exception as exc:
            raise self._error(exc) from None

    async def embeddings(self, call: Call) -> dict[str, Any]:
        ll = _litellm()
        try:
            resp = await ll.aembedding(input=call.body["input"], **self._args(call))
        except Exception as exc:
            raise self._error(exc) from None
        return self._dump(resp)

    async def aclose(self) -> None:
        return None
