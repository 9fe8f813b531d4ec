"""Backend for the providers litellm speaks that are not OpenAI-compatible (Anthropic, Bedrock,
Vertex, Gemini, Cohere...). litellm translates; this module maps its results and exceptions onto
the backend interface. litellm is imported on first use: importing it costs seconds."""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from typing import Any, AsyncGenerator

from router.backends.kind import BackendKind, BuildContext, Built
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
from router.protocol import CHAT_FIELDS, EMBEDDINGS_FIELDS

# Fields of the (already allow-listed) OpenAI body passed as litellm's own arguments, not as kwargs.
# OpenAI's ``metadata`` is not passed at all: litellm reads a ``metadata`` argument as its own
# logging and routing metadata, not as the provider's field.
_NOT_KWARGS = {"model", "messages", "input", "stream", "metadata"}
_PATH = re.compile(r"(?:[A-Za-z]:)?(?:[/\\][\w.\-]+)+\.pyc?\b|File \"[^\"]*\"(?:, line \d+)?")
_NOISE = re.compile(r"^(?:litellm\.)?\w*(?:Error|Exception)\s*[:-]\s*")


def _litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # never fetch the price map
    import litellm

    litellm.drop_params = True
    litellm.telemetry = False
    litellm.suppress_debug_info = True  # no "Give Feedback / Get Help" banner on stdout per provider error
    return litellm


@lru_cache(maxsize=1)
def control_params() -> frozenset[str]:
    """litellm's own arguments (credentials, URLs, routing, mocks, callbacks): never a provider field."""
    import inspect

    ll = _litellm()
    from litellm.types.utils import all_litellm_params

    signature = set(inspect.signature(ll.completion).parameters) | set(inspect.signature(ll.embedding).parameters)
    # the signature's non-OpenAI arguments are litellm's own, but for provider features it maps itself
    own = set(all_litellm_params) | (signature - CHAT_FIELDS - EMBEDDINGS_FIELDS - {"thinking"})
    return frozenset(own - {"kwargs"})


def _embedded_error(text: str) -> tuple[str | None, str | None]:
    """The provider's own error (type, message) when litellm's text carries its JSON body."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None, None
    try:
        body = json.loads(text[start : end + 1])
    except ValueError:
        return None, None
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        kind, msg = err.get("type") or err.get("status"), err.get("message")
        return (str(kind) if kind else None), (str(msg) if msg else None)
    return None, (str(err) if isinstance(err, str) else None)


def sanitize(text: str, secret: str | None = None, limit: int = 300) -> str:
    """A provider error's message for a client: the provider's own message where its body is quoted,
    else the first line; no traceback, file paths, litellm's class names or the operator's key."""
    if secret:
        text = text.replace(secret, "[redacted]")
    text = text.split("Traceback (most recent call last)", 1)[0]
    line = _embedded_error(text)[1] or next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    while (stripped := _NOISE.sub("", line, count=1)) != line:
        line = stripped
    line = _PATH.sub("[path]", line)
    line = line.replace("litellm.", "").replace("LiteLLM", "adapter")
    return line[:limit] or "no detail"


def _retry_after(exc: Exception) -> float | None:
    for src in (
        getattr(getattr(exc, "response", None), "headers", None),
        getattr(exc, "litellm_response_headers", None),
    ):
        try:
            value = src.get("retry-after") if src is not None else None
            if value is not None:
                return max(0.0, float(value))
        except (TypeError, ValueError, AttributeError):
            continue
    return None


class LiteLLMBackend:
    def __init__(
        self,
        *,
        model: str,
        api_key: str | None = None,
        api_base: str | None = None,
        extra: dict[str, Any] | None = None,
        pass_through: frozenset[str] = frozenset(),
    ):
        refused = sorted(pass_through & control_params()) if pass_through else []
        if refused:
            raise ValueError(
                f"pass_through_fields {refused} are litellm's own arguments (URLs, credentials, "
                "routing or mocks), not provider fields"
            )
        self._model = model
        # litellm drops json_object for Claude (it has no JSON mode): it is asked as a JSON Schema of
        # any object instead, which litellm answers through a forced tool call, as content
        self._json_object_as_schema = model.startswith("anthropic/") or "claude" in model.lower()
        self._secret = api_key
        self._kw: dict[str, Any] = {k: v for k, v in (extra or {}).items() if v is not None}
        if api_key:
            self._kw["api_key"] = api_key
        if api_base:
            self._kw["api_base"] = api_base
        # APIs this deployment also speaks in their own shape (router.surfaces): a request that arrives
        # in Anthropic's shape goes to an Anthropic deployment as it is
        self.native: dict[str, Any] = {}
        if model.startswith("anthropic/"):
            from router.backends.anthropic_native import AnthropicBackend

            self._anthropic = AnthropicBackend(api_base=api_base, api_key=api_key)
            self.native = self._anthropic.native

    def _args(self, call: Call) -> dict[str, Any]:
        params = {k: v for k, v in call.body.items() if k not in _NOT_KWARGS}
        if self._json_object_as_schema and (params.get("response_format") or {}).get("type") == "json_object":
            params["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "json_object", "schema": {"type": "object"}},
            }
        args = {**params, **self._kw, "model": self._model, "timeout": call.timeout, "num_retries": 0}
        if call.extra_headers:  # (a trace's traceparent) beside the deployment's own extra_headers
            args["extra_headers"] = {**(self._kw.get("extra_headers") or {}), **call.extra_headers}
        return args

    def _error(self, exc: Exception) -> UpstreamError:
        ll = _litellm()
        raw = str(getattr(exc, "message", "") or exc)
        text = sanitize(raw, self._secret)
        status = getattr(exc, "status_code", None)
        overloaded = status == 529 or _embedded_error(raw)[0] == "overloaded_error"  # litellm reports 529 as 500
        if overloaded or (isinstance(exc, ll.exceptions.ServiceUnavailableError) and status in (None, 503)):
            # Anthropic's "overloaded": the client should come back shortly, as from any 503
            return UpstreamUnavailable(
                f"provider overloaded: {text}", upstream_status=status, retry_after=_retry_after(exc) or 1.0
            )
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
                detail = "" if ours is UpstreamServerError and status in (401, 403) else f": {text}"
                retry = _retry_after(exc) if ours is UpstreamRateLimited else None
                return ours(f"provider error{detail}", upstream_status=status, retry_after=retry)
        if isinstance(
            exc, (ll.exceptions.BadRequestError, ll.exceptions.NotFoundError, ll.exceptions.UnprocessableEntityError)
        ):
            return UpstreamRejected(f"provider rejected the request: {text}", upstream_status=status or 400)
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
            # tools are function tools (validated at the edge): litellm's MCP gateway path is never wanted
            resp = await ll.acompletion(
                messages=call.body["messages"], stream=False, _skip_mcp_handler=True, **self._args(call)
            )
        except Exception as exc:  # litellm raises its own hierarchy; map every one
            raise self._error(exc) from None
        return self._dump(resp)

    async def chat_stream(self, call: Call) -> AsyncGenerator[dict[str, Any], None]:
        ll = _litellm()
        try:
            stream = await ll.acompletion(
                messages=call.body["messages"], stream=True, _skip_mcp_handler=True, **self._args(call)
            )
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
        if self.native:
            await self._anthropic.aclose()


class LiteLLMKind(BackendKind):
    """Any provider litellm speaks (what ``auto`` falls back to)."""

    name = "litellm"

    def build(self, ctx: BuildContext) -> Built:
        p = ctx.params
        tls = {"ssl_verify": p.ssl_verify} if p.ssl_verify is not True else {}
        backend = LiteLLMBackend(
            model=p.model,
            api_key=ctx.resolve(p.api_key),
            api_base=ctx.ref_or_literal(p.api_base),
            extra={**ctx.extra, "api_version": p.api_version, **tls},
            pass_through=frozenset(p.pass_through_fields),
        )
        return Built(backend, ctx.listed_price_key())
