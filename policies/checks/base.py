"""What every cascade check is: a pydantic model registered under its config ``type`` that judges
one step's answer, live (the gateway) and offline (the evaluator replaying recorded answers).

A check never does I/O. What it needs from the checking models, it says through ``asks``:
``"nothing"`` (it reads the answer alone), ``"same"`` (the models in ``with`` answer the request
itself, once per request) or ``"about_answer"`` (they are sent ``question(...)`` about each checked
step's answer). The gateway's cascade strategy makes those calls and hands the replies to ``passes``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Literal, Mapping, Sequence

from pydantic import BaseModel, ConfigDict

from policies.kinds import Registry

if TYPE_CHECKING:
    from policies.verifier import Verifier


@dataclass(frozen=True)
class Answer:
    """One model's answer as a check reads it: its text (None offline when the data holds none) and,
    live, its tokens' log-probabilities (None when the answer carries none)."""

    text: str | None
    logprobs: Sequence[float] | None = None


class CheckKind(BaseModel):
    """Base of every check. Subclasses declare ``type: Literal[...]`` and their own settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str

    asks: ClassVar[Literal["nothing", "same", "about_answer"]] = "nothing"
    # what recorded outcome data lacks to replay the check offline (None: it replays)
    offline_needs: ClassVar[str | None] = None
    needs_logprobs: ClassVar[bool] = False  # the step is asked for token log-probabilities

    @cached_property
    def as_config(self) -> dict[str, Any]:
        """The check as a policy file writes it (what a decision's explanation shows), built once."""
        return self.model_dump(by_alias=True)

    @property
    def models(self) -> list[str]:
        """The checking models this check calls."""
        return list(getattr(self, "with_", ()))

    def calls(self, steps: int) -> int:
        """Calls to checking models a cascade of ``steps`` steps makes at most (every step escalating)."""
        if self.asks == "same":
            return len(self.models)
        if self.asks == "about_answer":
            return len(self.models) * max(0, steps - 1)
        return 0

    def files(self) -> list[str]:
        """Trained files the check needs (verifiers), relative to the policy file."""
        return []

    def question(self, body: dict[str, Any], conversation: str, answer: str) -> dict[str, Any]:
        """``asks == "about_answer"``: the chat request each checking model is sent about one answer."""
        raise NotImplementedError

    def passes(self, answer: Answer, votes: Sequence[Answer], asked: int, verifiers: Mapping[str, "Verifier"]) -> bool:
        """Whether ``answer`` stands. ``votes``: the checking models' replies that arrived (a failed
        call is missing) out of ``asked`` calls; ``verifiers``: the policy's trained verifiers by name."""
        raise NotImplementedError

    def replay(
        self,
        answer: Answer,
        votes: Sequence[Answer],
        asked: int,
        verifiers: Mapping[str, "Verifier"],
        prior: Callable[[], float],
    ) -> bool:
        """Offline, on recorded answer texts: by default as live, a missing text read as empty.
        ``prior``: the step model's predicted quality on this prompt (for checks that can fall back on it)."""
        return self.passes(
            Answer(answer.text or "", answer.logprobs),
            [Answer(v.text or "", v.logprobs) for v in votes],
            asked,
            verifiers,
        )


CHECKS: Registry[CheckKind] = Registry("check")
