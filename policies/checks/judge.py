"""``judge``: other models are shown the conversation and the answer and asked whether it is right;
each must reply yes (the first word of its reply)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal, Mapping, Sequence

from pydantic import Field, model_validator

from policies.checks.base import Answer, CheckKind

if TYPE_CHECKING:
    from policies.verifier import Verifier

_WORD = re.compile(r"[^\W\d_]+")

JUDGE_PROMPT = """You are checking another assistant's answer before it is sent.

Conversation:
{conversation}

Answer:
{answer}

Is the answer correct and complete for the last request in the conversation? Reply with one word: YES or NO."""
JUDGE_CHARS = 12_000  # of the conversation, the most recent; and of the answer, the beginning


def judge_prompt(template: str | None, conversation: str, answer: str) -> str:
    # one pass, so that braces in the texts are never read as placeholders
    parts = {"{conversation}": conversation[-JUDGE_CHARS:], "{answer}": answer[:JUDGE_CHARS]}
    return re.sub(r"\{conversation\}|\{answer\}", lambda m: parts[m.group(0)], template or JUDGE_PROMPT)


def judge_says_yes(reply: str) -> bool:
    """The judge's verdict: the first word of its reply is yes (any case, markup around it ignored).
    Anything else, a reasoned reply that does not start with its verdict included, is a no."""
    first = _WORD.search(reply.lower())
    return first is not None and first.group(0) == "yes"


class Judge(CheckKind):
    type: Literal["judge"]
    with_: list[str] = Field(
        default_factory=list,
        alias="with",
        description="models asked whether the answer is right (every one must say yes)",
    )
    prompt: str | None = Field(
        default=None,
        description="the question put to the judges, with {conversation} and "
        "{answer} in it (default: policies.checks.JUDGE_PROMPT)",
    )

    asks = "about_answer"
    offline_needs = "verdicts of the judge models on each answer"

    @model_validator(mode="after")
    def _needs(self) -> "Judge":
        if not self.with_:
            raise ValueError("a judge check names the models that judge the answer (with: [...])")
        if self.prompt is not None and ("{conversation}" not in self.prompt or "{answer}" not in self.prompt):
            raise ValueError("a judge prompt holds {conversation} and {answer}")
        return self

    def question(self, body: dict[str, Any], conversation: str, answer: str) -> dict[str, Any]:
        return {
            "model": body.get("model", ""),
            "max_tokens": 8,
            "temperature": 0,
            "messages": [{"role": "user", "content": judge_prompt(self.prompt, conversation, answer)}],
        }

    def passes(self, answer: Answer, votes: Sequence[Answer], asked: int, verifiers: Mapping[str, "Verifier"]) -> bool:
        return asked > 0 and len(votes) == asked and all(judge_says_yes(v.text or "") for v in votes)
