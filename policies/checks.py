"""Cascade checks on an answer's text: used live by the gateway and offline by the evaluator.

- ``rule``: long enough, parses as JSON when asked, avoids given phrases;
- ``logprob``: mean token log-probability at least a threshold;
- ``agreement``: other models give the same answer, compared on the normalised first line
  (case, spacing and punctuation ignored).
"""

from __future__ import annotations

import json
import re
from typing import Any, Sequence

_PUNCT = re.compile(r"[\s\W_]+")


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
