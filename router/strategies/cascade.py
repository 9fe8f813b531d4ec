"""A cascade: each step answers in turn, cheapest first; a check (rule, logprob, agreement with other
models, a verifier, judges) decides whether the answer stands or the next step is asked. The last
step's answer stands. Every call (steps, checking models) is a priced line of the exchange; an
escalation is not a fallback (nothing failed). A step that fails is passed over like a fallback."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from starlette.responses import Response

from policies.checks import CheckKind
from router import cascade as checks
from router.attempts import ESCALATED, late
from router.backends.base import UpstreamError
from router.strategies.base import Strategy


class Cascade(Strategy):
    name = "cascade"

    def __init__(self, *args: Any, **kw: Any):
        super().__init__(*args, **kw)
        decision = self.ex.plan.decision if self.ex.plan is not None else None
        assert decision is not None and decision.cascade is not None, "a cascade runs the plan of a cascade decision"
        self.spec: dict[str, Any] = decision.cascade
        self.check: CheckKind = self.spec["check"]
        self.votes: list[dict[str, Any]] | None = None  # checking models asked the request itself answer once
        # a check that reads logprobs gets them; the client is not sent those it did not ask for
        self.unasked_logprobs = self.check.needs_logprobs and not self.body.get("logprobs")
        if self.unasked_logprobs:
            self.body = {**self.body, "logprobs": True}

    async def run(self) -> Response:
        ex = self.ex
        last = len(ex.plan.deployments) - 1  # type: ignore[union-attr]
        for i, dep in enumerate(self.ahead()):
            got = await self.attempt(dep)
            if got is None:
                continue
            raw, out, t0 = got
            answered = time.perf_counter() - t0
            own = self.price(dep, raw, out)
            at = len(ex.lines)
            ex.line(dep, "answer", own)  # a cascade step until its check passes
            if i < last and not await self._passes(out):
                ex.lines[at] = (dep, "cascade_step", own)
                ex.served(dep, time.perf_counter() - t0, note=ESCALATED)
                continue
            ex.served(dep, time.perf_counter() - t0)
            if self.unasked_logprobs:
                for choice in out.get("choices") or ():
                    choice["logprobs"] = None
            return self.answer(dep, own, out, answered)
        raise self.exhausted()

    async def _passes(self, out: dict[str, Any]) -> bool:
        check = self.check
        if check.asks == "about_answer":  # judges read each step's own answer
            votes = await self._ask(checks.question(check, self.body, out))
        elif check.asks == "same":
            if self.votes is None:
                self.votes = await self._ask(self.body)
            votes = self.votes
        else:
            votes = []
        return check.passes(
            checks.answer_of(out),
            [checks.answer_of(v) for v in votes],
            len(check.models),
            self.ex.plan.verifiers,  # type: ignore[union-attr]
        )

    async def _ask(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The checking models' answers to ``body`` (each called once, in parallel, a priced line);
        a failed one is missing."""
        ex = self.ex
        registry = self.gw.planner.registry
        voters = [d for name in self.check.models for d in registry.candidates(name, "chat")[:1]]
        t0 = time.perf_counter()
        if late(self.deadline):
            return []  # no time to check: the check fails
        results = await asyncio.gather(*(self.call(v, body, "chat") for v in voters), return_exceptions=True)
        answers = []
        for v, res in zip(voters, results):
            if isinstance(res, UpstreamError):
                ex.failed(v, res, time.perf_counter() - t0)
                continue
            if isinstance(res, BaseException):
                raise res
            raw, vout = res
            ex.line(v, "check", self.price(v, raw, vout, body))
            ex.served(v, time.perf_counter() - t0, note="cascade check")
            answers.append(vout)
        return answers
