"""What goes to an upstream and what comes back: the body a deployment is sent (the gateway's own
fields out, its model named), and answers, stream chunks and embeddings put into OpenAI's exact
shape whatever the upstream said. The client's side (the request's schema and its validation) is
``router/protocol.py``."""

from __future__ import annotations

import time
import uuid
from typing import Any


from router.protocol import CHAT_FIELDS, EMBEDDINGS_FIELDS

# What reaches an upstream is an allow-list: the fields OpenAI's API defines for each endpoint
# (CreateChatCompletionRequest, CreateEmbeddingRequest), plus the pass-through fields an operator
# enables per deployment. Nothing else a client sends is forwarded, so no field can pick an upstream
# URL, a credential, a provider-side mock or an adapter's own control parameter (litellm's
# ``fallbacks``, ``mock_response``, ``api_base``...). ``model`` is always the deployment's own.


def upstream_body(
    body: dict[str, Any], upstream_model: str, mode: str = "chat", pass_through: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """The body forwarded upstream: the API's own fields of the client's body (and the deployment's
    pass-through fields), with the deployment's model name."""
    allowed = CHAT_FIELDS if mode == "chat" else EMBEDDINGS_FIELDS
    out = {k: v for k, v in body.items() if k in allowed or k in pass_through}
    out["model"] = upstream_model
    return out


# -- responses ----------------------------------------------------------------------------------
def _norm_message(msg: Any) -> dict[str, Any]:
    if not isinstance(msg, dict):
        raise ValueError("choice.message is not an object")
    out = dict(msg)
    out["role"] = "assistant"
    content = out.get("content")
    if content is not None and not isinstance(content, str):
        raise ValueError("message.content is neither a string nor null")
    out.setdefault("content", None)
    out.setdefault("refusal", None)
    for key in ("tool_calls", "function_call", "audio", "annotations"):
        if key in out and out[key] is None and key != "audio":
            del out[key]
    if out.get("tool_calls") == []:
        del out["tool_calls"]
    # provider extras that are not in OpenAI's schema (e.g. litellm's provider_specific_fields)
    for key in ("provider_specific_fields", "reasoning_content", "thinking_blocks"):
        out.pop(key, None)
    return out


def content_text(content: Any) -> str:
    """A message's content as text: a string as it is; OpenAI content parts: their text parts, a line
    each (images, audio and files left out)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def normalize_chat(body: dict[str, Any], model: str) -> dict[str, Any]:
    """A chat.completion in OpenAI's exact shape; ValueError when the upstream body is unusable."""
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ValueError("no choices")
    out_choices: list[dict[str, Any]] = []
    for i, ch in enumerate(choices):
        if not isinstance(ch, dict):
            raise ValueError("choice is not an object")
        finish = ch.get("finish_reason")
        out_choices.append(
            {
                "index": ch.get("index", i) if isinstance(ch.get("index", i), int) else i,
                "message": _norm_message(ch.get("message")),
                "logprobs": ch.get("logprobs") if isinstance(ch.get("logprobs"), dict) else None,
                "finish_reason": finish if type(finish) is str and finish in FINISH_REASONS else "stop",
            }
        )
    out = {
        "id": body.get("id") if isinstance(body.get("id"), str) else f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": body.get("created") if isinstance(body.get("created"), int) else int(time.time()),
        "model": model,
        "choices": out_choices,
    }
    if isinstance(body.get("system_fingerprint"), str):
        out["system_fingerprint"] = body["system_fingerprint"]
    if body.get("service_tier") in ("auto", "default", "flex", "scale", "priority"):
        out["service_tier"] = body["service_tier"]
    return out


def _tool_call_delta(tc: Any) -> Any:
    if not isinstance(tc, dict):
        return tc
    out = {k: v for k, v in tc.items() if v is not None}
    if isinstance(out.get("function"), dict):
        out["function"] = {k: v for k, v in out["function"].items() if v is not None}
    return out


def normalize_chunk(chunk: dict[str, Any], model: str, stream_id: str, created: int) -> dict[str, Any] | None:
    """A chat.completion.chunk in OpenAI's shape (without usage); None for an empty keep-alive."""
    choices = chunk.get("choices")
    # Most of a stream's chunks are one token of text: one choice whose delta is its content (the
    # first also names the role), nothing else. Those are built directly, the same as below builds
    # them (tests/test_streaming.py holds the two equal), in about half the time.
    if type(choices) is list and len(choices) == 1:
        ch = choices[0]
        delta = ch.get("delta") if type(ch) is dict else None
        if (
            type(delta) is dict
            and type(delta.get("content")) is str
            and (len(delta) == 1 or (len(delta) == 2 and delta.get("role") == "assistant"))
            and ch.get("finish_reason") is None
            and ch.get("logprobs") is None
        ):
            index = ch.get("index", 0)
            out = {
                "id": stream_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": index if isinstance(index, int) else 0,
                        "delta": delta,
                        "logprobs": None,
                        "finish_reason": None,
                    }
                ],
            }
            if type(chunk.get("system_fingerprint")) is str:
                out["system_fingerprint"] = chunk["system_fingerprint"]
            return out
    return _normalize_chunk(chunk, choices, model, stream_id, created)


def _normalize_chunk(
    chunk: dict[str, Any], choices: Any, model: str, stream_id: str, created: int
) -> dict[str, Any] | None:
    if not isinstance(choices, list):
        raise ValueError("chunk without choices")
    out_choices: list[dict[str, Any]] = []
    for i, ch in enumerate(choices):
        if not isinstance(ch, dict):
            raise ValueError("chunk choice is not an object")
        delta = ch.get("delta") if isinstance(ch.get("delta"), dict) else {}
        delta = {k: v for k, v in delta.items() if v is not None or k in ("content", "refusal")} if delta else {}
        for key in ("provider_specific_fields", "reasoning_content", "thinking_blocks", "function_call", "audio"):
            if delta.get(key) is None:
                delta.pop(key, None)
        if delta.get("tool_calls") == []:
            del delta["tool_calls"]
        elif isinstance(delta.get("tool_calls"), list):  # adapters send null for what a delta leaves out
            delta["tool_calls"] = [_tool_call_delta(tc) for tc in delta["tool_calls"]]
        finish = ch.get("finish_reason")
        out_choices.append(
            {
                "index": ch.get("index", i) if isinstance(ch.get("index", i), int) else i,
                "delta": delta,
                "logprobs": ch.get("logprobs") if isinstance(ch.get("logprobs"), dict) else None,
                "finish_reason": finish if type(finish) is str and finish in FINISH_REASONS else None,
            }
        )
    if not out_choices:
        return None
    if chunk.get("usage") and all(
        all(v is None for v in dict(c["delta"] or {}).values()) and c["finish_reason"] is None and c["logprobs"] is None
        for c in out_choices
    ):
        # usage riding on a choice that carries nothing (LiteLLM's proxy sends one after the stop
        # chunk): the usage is read by the caller; relaying the empty choice would follow "stop"
        return None
    out = {
        "id": stream_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": out_choices,
    }
    if isinstance(chunk.get("system_fingerprint"), str):
        out["system_fingerprint"] = chunk["system_fingerprint"]
    return out


def normalize_embeddings(body: dict[str, Any], model: str) -> dict[str, Any]:
    data = body.get("data")
    if not isinstance(data, list):
        raise ValueError("no data")
    out = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or not isinstance(item.get("embedding"), (list, str)):
            raise ValueError("embedding item malformed")
        out.append({"object": "embedding", "index": item.get("index", i), "embedding": item["embedding"]})
    return {"object": "list", "data": out, "model": model}


FINISH_REASONS = frozenset({"stop", "length", "tool_calls", "content_filter", "function_call"})
