"""Cascade checks: is a cheaper model's answer good enough to send, or must the request escalate?

- ``rule``: the answer is long enough, parses as JSON when asked, avoids given phrases;
- ``logprob``: the answer's mean token log-probability reaches a threshold (requested upstream);
- ``agreement``: other models, asked the same thing, give the same answer (compared on the
  normalised first line: case, spacing and punctuation ignored).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

_PUNCT = re.compile(r"[\s\W_]+")


def answer_text(body: dict[str, Any]) -> str:
    choices = body.get("choices") or [{}]
    msg = choices[0].get("message") or {}
    if msg.get("content"):
        return str(msg["content"])
    calls = msg.get("tool_calls") or []
    return "".join(str((c.get("function") or {}).get("arguments", "")) for c in calls)


def normalise(text: str) -> str:
    first = next((line for line in text.strip().splitlines() if line.strip()), "")
    return _PUNCT.sub("", first.lower())


def rule_ok(check: dict[str, Any], body: dict[str, Any]) -> bool:
    text = answer_text(body)
    if len(text.strip()) < check.get("min_chars", 1):
        return False
    if check.get("json"):
        try:
            orjson.loads(text)
        except orjson.JSONDecodeError:
            return False
    lowered = text.lower()
    return not any(p.lower() in lowered for p in check.get("not_contains") or ())


def logprob_ok(check: dict[str, Any], body: dict[str, Any]) -> bool:
    lp = ((body.get("choices") or [{}])[0].get("logprobs") or {}).get("content") or []
    values = [t.get("logprob") for t in lp if isinstance(t, dict) and isinstance(t.get("logprob"), (int, float))]
    if not values:
        return False  # no evidence of confidence: escalate
    return sum(values) / len(values) >= check.get("min_mean_logprob", -0.5)


def agree(first: dict[str, Any], others: list[dict[str, Any]]) -> bool:
    want = normalise(answer_text(first))
    return bool(want) and all(normalise(answer_text(o)) == want for o in others)
