"""The Responses API's stream: its documented event sequence, built from chat-completions chunks."""

from __future__ import annotations

from typing import Any, TYPE_CHECKING


from router.surfaces.base import BlockEncoder, sse
from router.surfaces.responses_translate import call_item, hex_id, message_item

if TYPE_CHECKING:
    from router.surfaces.responses import Responses


class ResponsesEvents(BlockEncoder):
    """The Responses API's stream events from OpenAI chunks (the first choice)."""

    def __init__(self, surface: Responses, model: str, created: float):
        super().__init__()
        self.s, self.model, self.created = surface, model, created
        self.seq = 0
        self.items: list[dict[str, Any]] = []  # output items so far (the open one last)

    def _ev(self, kind: str, **data: Any) -> bytes:
        out = sse(kind, {"type": kind, "sequence_number": self.seq, **data})
        self.seq += 1
        return out

    def begin(self) -> bytes:
        resp = self.s.envelope(self.model, self.created, "in_progress")
        return self._ev("response.created", response=resp) + self._ev("response.in_progress", response=resp)

    def _add(self, item: dict[str, Any]) -> bytes:
        self.items.append(item)
        at = len(self.items) - 1
        shown = {**item, "content": []} if item["type"] == "message" else item
        out = self._ev("response.output_item.added", output_index=at, item=shown)
        if item["type"] == "message":
            out += self._ev(
                "response.content_part.added",
                item_id=item["id"],
                output_index=at,
                content_index=0,
                part={"type": "output_text", "text": "", "annotations": [], "logprobs": []},
            )
        return out

    def open_text(self) -> bytes:
        return self._add(message_item(f"msg_{hex_id()}", "", "in_progress"))

    def text(self, text: str) -> bytes:
        item = self.items[-1]
        item["content"][0]["text"] += text
        return self._ev(
            "response.output_text.delta",
            item_id=item["id"],
            output_index=len(self.items) - 1,
            content_index=0,
            delta=text,
            logprobs=[],
        )

    def open_tool(self, call_id: str | None, name: str) -> bytes:
        return self._add(call_item(f"fc_{hex_id()}", call_id or f"call_{hex_id()}", name, "", "in_progress"))

    def arguments(self, fragment: str) -> bytes:
        item = self.items[-1]
        item["arguments"] += fragment
        return self._ev(
            "response.function_call_arguments.delta",
            item_id=item["id"],
            output_index=len(self.items) - 1,
            delta=fragment,
        )

    def close_block(self) -> bytes:
        item, at = self.items[-1], len(self.items) - 1
        item["status"] = "completed"
        if item["type"] == "message":
            part = item["content"][0]
            out = self._ev(
                "response.output_text.done",
                item_id=item["id"],
                output_index=at,
                content_index=0,
                text=part["text"],
                logprobs=[],
            )
            out += self._ev(
                "response.content_part.done", item_id=item["id"], output_index=at, content_index=0, part=part
            )
        else:
            out = self._ev(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=at,
                name=item["name"],
                arguments=item["arguments"],
            )
        return out + self._ev("response.output_item.done", output_index=at, item=item)

    def end(self, usage: dict[str, Any], money: dict[str, Any]) -> bytes:
        out = self.close()
        resp = self.s.envelope(self.model, self.created, "completed")
        resp["output"] = self.items
        text = "".join(i["content"][0]["text"] for i in self.items if i["type"] == "message")
        calls = [
            {"id": i["call_id"], "type": "function", "function": {"name": i["name"], "arguments": i["arguments"]}}
            for i in self.items
            if i["type"] == "function_call"
        ]
        turn: dict[str, Any] = {
            "role": "assistant",
            "content": text or None,
            **({"tool_calls": calls} if calls else {}),
        }
        resp = self.s.finish(resp, self.finish, usage, turn)
        kind = "response.incomplete" if resp["status"] == "incomplete" else "response.completed"
        return out + self._ev(kind, response=resp)

    def fail(self, message: str, code: str) -> bytes:
        resp = self.s.envelope(self.model, self.created, "failed")
        resp["output"] = self.items
        resp["error"] = {"code": "server_error", "message": message}
        return self._ev("response.failed", response=resp)
