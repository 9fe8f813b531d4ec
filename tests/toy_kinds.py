"""Three toy kinds, each what a contributor writes to add one: an objective, a cascade check and a
backend. Nothing else in the code base changes; tests/test_kinds.py registers them (one line each)."""

from __future__ import annotations

import time
from typing import Any, AsyncIterator, Literal, Mapping, Sequence

from pydantic import Field

from policies.checks import Answer, CheckKind
from policies.objectives import Choice, Context, ObjectiveKind
from router.backends.base import Call
from router.backends.kind import BackendKind, BuildContext, Built


class Alphabetical(ObjectiveKind):
    """Objective ``alphabetical``: the candidate whose name sorts first (``reverse``: last)."""

    type: Literal["alphabetical"]
    reverse: bool = False

    def choose(self, ctx: Context) -> Choice:
        order = sorted(ctx.names, reverse=self.reverse)
        return Choice(order, f"alphabetical(reverse={self.reverse})", f"{order[0]} sorts first")


class HasDigit(CheckKind):
    """Check ``has_digit``: the answer holds at least ``min_digits`` digits."""

    type: Literal["has_digit"]
    min_digits: int = Field(default=1, ge=1)

    def passes(self, answer: Answer, votes: Sequence[Answer], asked: int, verifiers: Mapping[str, Any]) -> bool:
        return sum(ch.isdigit() for ch in answer.text or "") >= self.min_digits


class CannedBackend:
    """Answers every chat request with the deployment's ``reply`` parameter."""

    def __init__(self, reply: str, model: str) -> None:
        self.reply, self.model = reply, model

    async def chat(self, call: Call) -> dict[str, Any]:
        words = len(self.reply.split())
        return {
            "id": "canned-1",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": self.reply}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": words, "total_tokens": 10 + words},
        }

    async def chat_stream(self, call: Call) -> AsyncIterator[dict[str, Any]]:
        yield {
            "id": "canned-1",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model,
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": self.reply}, "finish_reason": "stop"}],
        }

    async def embeddings(self, call: Call) -> dict[str, Any]:
        raise NotImplementedError

    async def aclose(self) -> None:
        pass


class CannedKind(BackendKind):
    """Backend ``canned``: serves the provider ``canned`` (``canned/<name>``) under ``backend: auto``."""

    name = "canned"

    def serves(self, provider: str) -> bool:
        return provider == "canned"

    def problems(self, provider: str, params: Any) -> list[tuple[str, str]]:
        return (
            [] if (params.model_extra or {}).get("reply") else [("reply", "a canned deployment says what it replies")]
        )

    def build(self, ctx: BuildContext) -> Built:
        return Built(CannedBackend(str(ctx.extra["reply"]), ctx.upstream), None, {"region": "toy-land"})
