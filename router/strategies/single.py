"""One answer with fallback: the plan's deployments in order until one answers. A retryable failure
(timeout, 5xx, 429, a broken answer) moves to the next; a rejection (4xx) or the deadline ends it."""

from __future__ import annotations

import time

from starlette.responses import Response

from router.backends.base import UpstreamError
from router.strategies.base import Strategy


class Single(Strategy):
    name = "single"

    async def run(self) -> Response:
        ex, deadline = self.ex, self.deadline
        for dep in ex.plan.deployments:  # type: ignore[union-attr]
            if deadline is not None and time.perf_counter() >= deadline:
                break  # no further attempt: the request's time is up
            t0 = ex.calling(dep)
            try:
                raw, out = await self.call(dep)
            except UpstreamError as exc:
                ex.failed(dep, exc, time.perf_counter() - t0)
                if exc.by_deadline:
                    self.out_of_time = True
                    break
                if not exc.retryable:
                    break
                continue
            answered = time.perf_counter() - t0
            own = self.price(dep, raw, out)
            ex.line(dep, "answer", own)
            ex.served(dep, time.perf_counter() - t0)
            return self.answer(dep, own, out, answered)
        raise self.exhausted()
