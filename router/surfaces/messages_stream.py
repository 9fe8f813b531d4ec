"""Anthropic's Messages stream: its event sequence, built from chat-completions chunks."""

from __future__ import annotations

import uuid
from typing import Any


from router.surfaces.base import BlockEncoder, sse
from router.surfaces.messages_translate import STOP_REASONS, anthropic_usage


class MessagesEvents(BlockEncoder):
    """Anthropic's stream events from OpenAI chunks (the first choice)."""

    def __init__(self, msg_id: str, model: str):
        super().__init__()
        self.msg_id, self.model = msg_id, model
        self.index = -1  # the open content block's index

    def begin(self) -> bytes:
        return sse(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": self.msg_id,
                    "type": "message",
                    "role": "assistant",
                    "model": self.model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 0, "output_tokens": 0},
                },
            },
        ) + sse("ping", {"type": "ping"})

    def _block(self, block: dict[str, Any]) -> bytes:
        self.index += 1
        return sse("content_block_start", {"type": "content_block_start", "index": self.index, "content_block": block})

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return sse("content_block_delta", {"type": "content_block_delta", "index": self.index, "delta": delta})

    def open_text(self) -> bytes:
        return self._block({"type": "text", "text": ""})

    def text(self, text: str) -> bytes:
        return self._delta({"type": "text_delta", "text": text})

    def open_tool(self, call_id: str | None, name: str) -> bytes:
        return self._block(
            {"type": "tool_use", "id": call_id or f"toolu_{uuid.uuid4().hex[:24]}", "name": name, "input": {}}
        )

    def arguments(self, fragment: str) -> bytes:
        return self._delta({"type": "input_json_delta", "partial_json": fragment})

    def close_block(self) -> bytes:
        return sse("content_block_stop", {"type": "content_block_stop", "index": self.index})

    def end(self, usage: dict[str, Any], money: dict[str, Any]) -> bytes:
        stop = STOP_REASONS.get(self.finish or "stop", "end_turn")
        return (
            self.close()
            + sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": anthropic_usage(usage),
                },
            )
            + sse("message_stop", {"type": "message_stop"})
        )

    def fail(self, message: str, code: str) -> bytes:
        kind = "overloaded_error" if "rate_limited" in code or "unavailable" in code else "api_error"
        return sse("error", {"type": "error", "error": {"type": kind, "message": message}})
