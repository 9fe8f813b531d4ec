"""Cascade checks on an answer's text: used live by the gateway and offline by the evaluator.

- ``rule``: long enough, parses as JSON when asked, avoids given phrases;
- ``logprob``: mean token log-probability at least a threshold;
- ``agreement``: other models give the same answer, compared on the normalised first line
  (case, spacing and punctuation ignored);
- ``judge``: other models are shown the conversation and the answer and asked whether it is right;
  each must reply yes.
"""

from __future__ import annotations

import json
import re
from typing import Any, Sequence

_PUNCT = re.compile(r"[\s\W_]+")
_WORD = re.compile(r"[^\W\d_]+")


def normalise(text: str) -> str:
    first = next((line for line in text.strip().splitlines() if line.strip()), "")
    return _PUNCT.sub("", first.lower())


def agree_texts(text: str, others: Sequence[str]) -> bool:
    want = normalise(text)
    return bool(want) and all(normalise(o) == want for o in others)


def rule_ok_text(check: dict[str, Any], text: str) -> bool:
    if len(text.strip()) < check.get("min_chars", 1):
        return False
    if check.get("json"):
        try:
            json.loads(text)
        except ValueError:
            return False
    lowered = text.lower()
    return not any(p.lower() in lowered for p in check.get("not_contains") or ())


def logprob_ok_values(check: dict[str, Any], values: Sequence[float]) -> bool:
    if not values:
        return False  # no evidence of confidence: escalate
    return sum(values) / len(values) >= check.get("min_mean_logprob", -0.5)


JUDGE_PROMPT = """You are checking another assistant's answer before it is sent.

Conversation:
{conversation}

Answer:
{answer}

Is the answer correct and complete for the last request in the conversation? Reply with one word: YES or NO."""
JUDGE_CHARS = 12_000  # of the conversation, the most recent; and of the answer, the beginning


def judge_prompt(check: dict[str, Any], conversation: str, answer: str) -> str:
    template = check.get("prompt") or JUDGE_PROMPT
    # one pass, so that braces in the texts are never read as placeholders
    parts = {"{conversation}": conversation[-JUDGE_CHARS:], "{answer}": answer[:JUDGE_CHARS]}
    return re.sub(r"\{conversation\}|\{answer\}", lambda m: parts[m.group(0)], template)


def judge_says_yes(reply: str) -> bool:
    """The judge's verdict: the first word of its reply is yes (any case, markup around it ignored).
    Anything else, a reasoned reply that does not start with its verdict included, is a no."""
    first = _WORD.search(reply.lower())
    return first is not None and first.group(0) == "yes"
