"""The backend interface: one request in, a response or a stream of chunks out, typed errors.

Like an httpx transport, a backend knows one way of reaching models and nothing about routing,
auth or metering. Bodies are OpenAI-shaped dicts in both directions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, AsyncGenerator, Protocol, TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class Call:
    """One upstream call: the OpenAI request body (model already set to the upstream name)."""

    body: dict[str, Any]
    timeout: float
    request_id: str = ""
    extra_headers: dict[str, str] = field(default_factory=dict)


class Backend(Protocol):
    async def chat(self, call: Call) -> dict[str, Any]:
        """A non-streaming chat completion body."""

    def chat_stream(self, call: Call) -> AsyncGenerator[dict[str, Any], None]:
        """Chat completion chunks, as parsed dicts, without ``[DONE]``. Closing the iterator
        (``aclose``) must abort the upstream request. A backend that reads several chunks at once
        may also offer them grouped, ``chat_batches`` (see ``chunk_batches``)."""

    async def embeddings(self, call: Call) -> dict[str, Any]:
        """An embeddings response body."""

    async def aclose(self) -> None:
        """Release pooled connections."""


def chunk_batches(backend: Backend, call: Call) -> AsyncGenerator[list[dict[str, Any]], None]:
    """A streamed answer's chunks in the groups they arrive in, none empty. A backend that reads
    several at once (``chat_batches``: an upstream that sends a burst, or events that queued while
    the gateway was busy) hands over all it has, so the relay answers them in one write instead of
    one per chunk; any other backend, one at a time. Nothing waits for a group to fill."""
    batches = getattr(backend, "chat_batches", None)
    return batches(call) if batches is not None else one_each(backend.chat_stream(call))


async def one_each(items: AsyncGenerator[T, None]) -> AsyncGenerator[list[T], None]:
    """Each item as a group of its own; closing this closes ``items``."""
    try:
        async for item in items:
            yield [item]
    finally:
        await items.aclose()


async def one_by_one(groups: AsyncGenerator[list[T], None]) -> AsyncGenerator[T, None]:
    """The items of each group in turn; closing this closes ``groups``."""
    try:
        async for group in groups:
            for item in group:
                yield item
    finally:
        await groups.aclose()


class UpstreamError(Exception):
    """A failure reaching or reading an upstream. ``retryable``: another deployment may succeed."""

    retryable = True
    status = 502
    kind = "upstream_error"
    by_deadline = False  # the call's timeout was the request's deadline (set by the gateway)

    def __init__(
        self, message: str, *, upstream_status: int | None = None, retry_after: float | None = None, body: Any = None
    ):
        super().__init__(message)
        self.message = message
        self.upstream_status = upstream_status
        self.retry_after = retry_after
        self.body = body


class UpstreamConnectError(UpstreamError):
    kind = "connect_error"


class UpstreamTimeout(UpstreamError):
    status = 504
    kind = "timeout"


class UpstreamRateLimited(UpstreamError):
    status = 429
    kind = "rate_limited"


class UpstreamServerError(UpstreamError):
    kind = "server_error"


class UpstreamUnavailable(UpstreamError):
    status = 503
    kind = "unavailable"


class UpstreamBadResponse(UpstreamError):
    kind = "bad_response"


class UpstreamStreamCut(UpstreamError):
    kind = "stream_cut"


class UpstreamRejected(UpstreamError):
    """The upstream refused the request itself (4xx other than 429): retrying elsewhere with the
    same body would fail the same way, so it goes back to the client."""

    retryable = False
    kind = "rejected"

    def __init__(self, message: str, *, upstream_status: int, body: Any = None):
        super().__init__(message, upstream_status=upstream_status, body=body)
        self.status = upstream_status if upstream_status in (400, 404, 413, 422) else 400


def error_for_status(status: int, message: str, *, retry_after: float | None = None, body: Any = None) -> UpstreamError:
    if status == 429:
        return UpstreamRateLimited(message, upstream_status=status, retry_after=retry_after, body=body)
    if status in (502, 503, 504):
        return UpstreamUnavailable(message, upstream_status=status, retry_after=retry_after, body=body)
    if status >= 500 or status in (401, 403, 408):
        # 401/403 from an upstream is the operator's credential problem, never the client's.
        return UpstreamServerError(message, upstream_status=status, body=body)
    return UpstreamRejected(message, upstream_status=status, body=body)
