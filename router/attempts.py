"""The deployments tried for one request, and the error it ends with when none of them answered."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from router.backends.base import UpstreamError, UpstreamRateLimited
from router.errors import APIError


ESCALATED = "escalated: check failed"  # the note on a cascade step whose answer the check refused


@dataclass
class Attempts:
    """The deployments tried for one request, for metrics, the record and the final error."""

    items: list[dict[str, Any]] = field(default_factory=list)
    last_error: UpstreamError | None = None
    upstream_seconds: float = 0.0


def late(deadline: float | None) -> bool:
    """Whether the request's deadline (a time.perf_counter() reading) has passed."""
    return deadline is not None and time.perf_counter() >= deadline


def final_error(requested: str, attempts: Attempts, deadline_s: float | None = None) -> APIError:
    """The error for a request no attempt answered; ``deadline_s``: its deadline passed, which is why."""
    err = attempts.last_error
    n = len(attempts.items)
    if deadline_s is not None:
        return APIError(
            504,
            f"The request's deadline of {deadline_s:g} s passed after {n} attempt(s) for '{requested}'.",
            type="api_error",
            code="deadline_exceeded",
        )
    if err is None:
        return APIError(503, f"No deployment could serve '{requested}'.", type="api_error", code="no_deployment")
    if not err.retryable:
        return APIError(err.status, err.message, type="invalid_request_error", code="upstream_rejected")
    if isinstance(err, UpstreamRateLimited):
        return APIError(
            429,
            f"Every deployment for '{requested}' is rate limited ({n} tried); retry later.",
            type="rate_limit_error",
            code="upstream_rate_limited",
            headers={"retry-after": str(int(err.retry_after or 1))},
        )
    # an overloaded or unavailable upstream: tell the client when to come back, as the provider did
    retry = {"retry-after": str(max(1, int(err.retry_after or 1)))} if err.status == 503 else None
    return APIError(
        err.status,
        f"Upstream failure for '{requested}' after {n} attempt(s): {err.message}.",
        type="api_error",
        code=f"upstream_{err.kind}",
        headers=retry,
    )
