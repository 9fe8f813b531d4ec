"""OpenAI chat completions, the gateway's own internal shape: its stream encoder relays chunks as
they are and adds the usage chunk (``stream_options.include_usage``) and ``[DONE]``."""

from __future__ import annotations

from typing import Any

import orjson

from router.surfaces.base import Encoder


class ChatEncoder(Encoder):
    def __init__(self, stream_id: str, created: int, model: str, client_usage: bool):
        self.stream_id, self.created, self.model, self.client_usage = stream_id, created, model, client_usage

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def end(self, usage: dict[str, Any], money: dict[str, Any]) -> bytes:
        if not self.client_usage:
            return b"data: [DONE]\n\n"
        tail = {
            "id": self.stream_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage,
            "switchyard": money,
        }
        return b"data: " + orjson.dumps(tail) + b"\n\ndata: [DONE]\n\n"

    def fail(self, message: str, code: str) -> bytes:
        return error_event(message, code)


def error_event(message: str, code: str) -> bytes:
    """An OpenAI-style error as a stream's last event."""
    err = {"error": {"message": message, "type": "api_error", "param": None, "code": code}}
    return b"data: " + orjson.dumps(err) + b"\n\n"
