"""A chat body of the plain shape most requests have, checked without building the request model.

``router.protocol.validate_chat`` asks ``plainly_valid`` first and builds ``ChatRequest`` only for
the rest: the model is several times the cost of this check, and its result was never used.
`tests/test_plain_chat.py` holds that the verdicts and the errors are the same either way.
"""

from __future__ import annotations

import math
from typing import Any, Callable

# messages of a role and a text only (the other roles and keys go the full way)
_PLAIN_ROLES = frozenset({"system", "developer", "user", "assistant"})
_PLAIN_MESSAGE_KEYS = frozenset({"role", "content", "name"})


def _number_within(v: Any, lo: float, hi: float) -> bool:
    t = type(v)
    return v is None or ((t is int or (t is float and math.isfinite(v))) and lo <= v <= hi)


def _tokens_within(v: Any, body: dict[str, Any], limit: int) -> bool:
    return v is None or (type(v) is int and 1 <= v <= limit)


def _plain_messages(v: Any) -> bool:
    if type(v) is not list or not v:
        return False
    for m in v:
        if type(m) is not dict or m.get("role") not in _PLAIN_ROLES or not _PLAIN_MESSAGE_KEYS.issuperset(m):
            return False
        c = m.get("content")
        if (c is not None and type(c) is not str) or ("name" in m and type(m["name"]) is not str):
            return False
    return True


def _plain_stream_options(v: Any, body: dict[str, Any]) -> bool:
    if v is None:
        return True
    if type(v) is not dict or body.get("stream") is not True or not v.keys() <= {"include_usage"}:
        return False
    usage = v.get("include_usage")
    return usage is None or type(usage) is bool


# field -> the check of its value (the value, the body, the gateway's max_tokens limit)
_PLAIN_FIELDS: dict[str, Callable[[Any, dict[str, Any], int], bool]] = {
    "messages": lambda v, body, limit: _plain_messages(v),
    "model": lambda v, body, limit: type(v) is str and 0 < len(v) <= 256,
    "stream": lambda v, body, limit: v is None or type(v) is bool,
    "max_tokens": _tokens_within,
    "max_completion_tokens": _tokens_within,
    "temperature": lambda v, body, limit: _number_within(v, 0, 2),
    "top_p": lambda v, body, limit: _number_within(v, 0, 1),
    "stream_options": lambda v, body, limit: _plain_stream_options(v, body),
    "user": lambda v, body, limit: v is None or (type(v) is str and len(v) <= 256),
}


def plainly_valid(body: dict[str, Any], max_tokens_limit: int) -> bool:
    """True only for a body ``ChatRequest`` and the checks after it certainly accept, of the plain shape
    most requests have; False for anything else, which then goes the full way (a False is no verdict).

    Building the model costs a request several times this; `tests/test_plain_chat.py` holds that
    `validate_chat` refuses exactly what the full validation refuses, with the same error."""
    for k, v in body.items():
        check = _PLAIN_FIELDS.get(k)
        if check is None or not check(v, body, max_tokens_limit):
            return False
    return "model" in body and "messages" in body
