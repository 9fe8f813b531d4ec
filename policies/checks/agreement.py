"""``agreement``: other models, asked the same request, give the same answer, compared on the
normalised first line (case, spacing and punctuation ignored)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal, Mapping, Sequence

from pydantic import Field, model_validator

from policies.checks.base import Answer, CheckKind

if TYPE_CHECKING:
    from policies.verifier import Verifier

_PUNCT = re.compile(r"[\s\W_]+")


def normalise(text: str) -> str:
    first = next((line for line in text.strip().splitlines() if line.strip()), "")
    return _PUNCT.sub("", first.lower())


def agree_texts(text: str, others: Sequence[str]) -> bool:
    want = normalise(text)
    return bool(want) and all(normalise(o) == want for o in others)


class Agreement(CheckKind):
    type: Literal["agreement"]
    with_: list[str] = Field(default_factory=list, alias="with", description="models that must agree")

    asks = "same"

    @model_validator(mode="after")
    def _needs(self) -> "Agreement":
        if not self.with_:
            raise ValueError("an agreement check names the models that must agree (with: [...])")
        return self

    def passes(self, answer: Answer, votes: Sequence[Answer], asked: int, verifiers: Mapping[str, "Verifier"]) -> bool:
        return asked > 0 and len(votes) == asked and agree_texts(answer.text or "", [v.text or "" for v in votes])
