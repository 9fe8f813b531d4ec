"""One answer with fallback: the plan's deployments in order until one answers. A retryable failure
(timeout, 5xx, 429, a broken answer) moves to the next; a rejection (4xx) or the deadline ends it."""

from __future__ import annotations

import time

from starlette.responses import Response

from router.strategies.base import Strategy


class Single(Strategy):
    name = "single"

    async def run(self) -> Response:
        for dep in self.ahead():
            got = await self.attempt(dep)
            if got is None:
                continue
            raw, out, t0 = got
            answered = time.perf_counter() - t0
            own = self.price(dep, raw, out)
            self.ex.line(dep, "answer", own)
            self.ex.served(dep, time.perf_counter() - t0)
            return self.answer(dep, own, out, answered)
        raise self.exhausted()
