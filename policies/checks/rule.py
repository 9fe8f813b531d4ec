"""``rule``: the answer is long enough, parses as JSON when asked, and avoids given phrases."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Literal, Mapping, Sequence

from pydantic import Field

from policies.checks.base import Answer, CheckKind

if TYPE_CHECKING:
    from policies.verifier import Verifier


def rule_ok_text(min_chars: int, must_be_json: bool, not_contains: Sequence[str], text: str) -> bool:
    if len(text.strip()) < min_chars:
        return False
    if must_be_json:
        try:
            json.loads(text)
        except ValueError:
            return False
    lowered = text.lower()
    return not any(p.lower() in lowered for p in not_contains)


class Rule(CheckKind):
    type: Literal["rule"]
    min_chars: int = Field(default=1, ge=0, description="answer at least this long")
    json_: bool = Field(default=False, alias="json", description="answer must parse as JSON")
    not_contains: list[str] = Field(default_factory=list, description="phrases that fail the check")

    def passes(self, answer: Answer, votes: Sequence[Answer], asked: int, verifiers: Mapping[str, "Verifier"]) -> bool:
        return rule_ok_text(self.min_chars, self.json_, self.not_contains, answer.text or "")
