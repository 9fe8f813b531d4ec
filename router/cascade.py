"""Cascade checks meet OpenAI response bodies: what a check reads of an answer (its text and token
log-probabilities) and the transcript a judge is shown. The checks themselves live in policies.checks."""

from __future__ import annotations

from typing import Any

from policies.checks import Answer, CheckKind
from router.wire import content_text


def answer_text(body: dict[str, Any]) -> str:
    choices = body.get("choices") or [{}]
    msg = choices[0].get("message") or {}
    if msg.get("content"):
        return str(msg["content"])
    calls = msg.get("tool_calls") or []
    return "".join(str((c.get("function") or {}).get("arguments", "")) for c in calls)


def answer_of(body: dict[str, Any]) -> Answer:
    lp = ((body.get("choices") or [{}])[0].get("logprobs") or {}).get("content") or []
    return Answer(
        answer_text(body),
        [t["logprob"] for t in lp if isinstance(t, dict) and isinstance(t.get("logprob"), (int, float))],
    )


def conversation(body: dict[str, Any]) -> str:
    """The request's messages as a transcript of their text (images and tool schemas left out)."""
    lines = []
    for m in body.get("messages") or ():
        content = content_text(m.get("content"))
        if content:
            lines.append(f"{str(m.get('role', 'user')).capitalize()}: {content}")
    return "\n\n".join(lines)


def question(check: CheckKind, body: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    """What each checking model of a check that asks about an answer (a judge) is sent about this one."""
    return check.question(body, conversation(body), answer_text(answer))
