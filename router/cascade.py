"""Cascade checks applied to OpenAI response bodies (the text logic lives in policies.checks)."""

from __future__ import annotations

from typing import Any

from policies.checks import agree_texts, judge_prompt, judge_says_yes, logprob_ok_values, rule_ok_text
from policies.verifier import Verifier


def answer_text(body: dict[str, Any]) -> str:
    choices = body.get("choices") or [{}]
    msg = choices[0].get("message") or {}
    if msg.get("content"):
        return str(msg["content"])
    calls = msg.get("tool_calls") or []
    return "".join(str((c.get("function") or {}).get("arguments", "")) for c in calls)


def rule_ok(check: dict[str, Any], body: dict[str, Any]) -> bool:
    return rule_ok_text(check, answer_text(body))


def logprob_ok(check: dict[str, Any], body: dict[str, Any]) -> bool:
    lp = ((body.get("choices") or [{}])[0].get("logprobs") or {}).get("content") or []
    return logprob_ok_values(check, [t["logprob"] for t in lp if isinstance(t, dict)
                                     and isinstance(t.get("logprob"), (int, float))])


def agree(first: dict[str, Any], others: list[dict[str, Any]]) -> bool:
    return agree_texts(answer_text(first), [answer_text(o) for o in others])


def verified(verifier: Verifier, check: dict[str, Any], first: dict[str, Any], others: list[dict[str, Any]]) -> bool:
    """The verifier's confidence in the answer (voters that failed count as disagreeing) reaches the bar."""
    voters = [answer_text(o) for o in others] + [""] * (len(check.get("with") or ()) - len(others))
    return verifier.confidence(answer_text(first), voters) >= check.get("min_confidence", 0.5)


def conversation(body: dict[str, Any]) -> str:
    """The request's messages as a transcript of their text (images and tool schemas left out)."""
    lines = []
    for m in body.get("messages") or ():
        content = m.get("content")
        if isinstance(content, list):
            content = "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
        if content:
            lines.append(f"{str(m.get('role', 'user')).capitalize()}: {content}")
    return "\n\n".join(lines)


def judge_request(check: dict[str, Any], body: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    """What each judge is sent: the question of ``check`` about this answer, a short reply wanted."""
    return {"model": body.get("model", ""), "max_tokens": 8, "temperature": 0,
            "messages": [{"role": "user", "content": judge_prompt(check, conversation(body), answer_text(answer))}]}


def approved(verdicts: list[dict[str, Any]]) -> bool:
    return bool(verdicts) and all(judge_says_yes(answer_text(v)) for v in verdicts)
