"""``verifier``: a trained verifier (``policies.verifier``) reads the answer, and the answers of the
models in ``with`` to the same request, and gives P(answer is good); the answer stands at or above
``min_confidence``. Offline, a step whose answer text the data lacks is judged by its predicted quality."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Literal, Mapping, Sequence

from pydantic import Field

from policies.checks.base import Answer, CheckKind

if TYPE_CHECKING:
    from policies.verifier import Verifier


class VerifierCheck(CheckKind):
    type: Literal["verifier"]
    verifier: str = Field(description="a trained verifier (.json), relative to the policy file")
    with_: list[str] = Field(default_factory=list, alias="with", description="models whose answers it compares")
    min_confidence: float = Field(default=0.5, ge=0, le=1, description="accept when P(answer is good) is at least this")

    asks = "same"

    def files(self) -> list[str]:
        return [self.verifier]

    def confidence(
        self, answer: Answer, votes: Sequence[Answer], asked: int, verifiers: Mapping[str, "Verifier"]
    ) -> float:
        """Voters that failed (or whose text is missing) count as disagreeing: an empty answer."""
        texts = [v.text or "" for v in votes] + [""] * max(0, asked - len(votes))
        return verifiers[self.verifier].confidence(answer.text or "", texts)

    def passes(self, answer: Answer, votes: Sequence[Answer], asked: int, verifiers: Mapping[str, "Verifier"]) -> bool:
        return self.confidence(answer, votes, asked, verifiers) >= self.min_confidence

    def replay(
        self,
        answer: Answer,
        votes: Sequence[Answer],
        asked: int,
        verifiers: Mapping[str, "Verifier"],
        prior: Callable[[], float],
    ) -> bool:
        conf = prior() if answer.text is None else self.confidence(answer, votes, asked, verifiers)
        return conf >= self.min_confidence
