"""``logprob``: the answer's mean token log-probability reaches a threshold (the gateway asks the
step for log-probabilities when the client did not, and strips them from what it returns)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Mapping, Sequence

from pydantic import Field

from policies.checks.base import Answer, CheckKind

if TYPE_CHECKING:
    from policies.verifier import Verifier


def logprob_ok_values(min_mean: float, values: Sequence[float]) -> bool:
    if not values:
        return False  # no evidence of confidence: escalate
    return sum(values) / len(values) >= min_mean


class Logprob(CheckKind):
    type: Literal["logprob"]
    min_mean_logprob: float = Field(default=-0.5, description="mean token logprob at least this")

    offline_needs = "token log-probabilities"
    needs_logprobs = True

    def passes(self, answer: Answer, votes: Sequence[Answer], asked: int, verifiers: Mapping[str, "Verifier"]) -> bool:
        return logprob_ok_values(self.min_mean_logprob, answer.logprobs or ())
