"""Metered token usage of one request, in OpenAI's conventions."""

from __future__ import annotations

from collections.abc import Mapping  # not typing's alias: its isinstance is twice as slow
from dataclasses import dataclass, replace
from typing import Any, TypeGuard


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0  # includes cached_tokens and cache_write_tokens
    completion_tokens: int = 0  # includes reasoning_tokens
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    source: str = "upstream"  # "upstream" (reported by the provider) or "estimated" (counted here)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def from_openai(cls, usage: Mapping[str, Any] | None, *, source: str = "upstream") -> "Usage | None":
        """Parse an OpenAI ``usage`` object; None when it is missing or not well formed."""
        if type(usage) is not dict and not isinstance(usage, Mapping):  # (the ABC's check is slow; JSON is dicts)
            return None
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens", 0)
        if not _is_count(prompt) or not _is_count(completion):
            return None
        pdet = usage.get("prompt_tokens_details") or {}
        cdet = usage.get("completion_tokens_details") or {}
        pmap = type(pdet) is dict or isinstance(pdet, Mapping)
        cached = pdet.get("cached_tokens", 0) if pmap else 0
        written = pdet.get("cache_write_tokens", 0) if pmap else 0
        # Anthropic-style fields, as some OpenAI-compatible servers pass them through.
        written = written or usage.get("cache_creation_input_tokens", 0)
        reasoning = cdet.get("reasoning_tokens", 0) if type(cdet) is dict or isinstance(cdet, Mapping) else 0
        return cls(
            prompt_tokens=prompt,
            completion_tokens=completion,
            cached_tokens=cached if _is_count(cached) else 0,
            cache_write_tokens=written if _is_count(written) else 0,
            reasoning_tokens=reasoning if _is_count(reasoning) else 0,
            source=source,
        )

    def relayed_at_least(self, completion_tokens: int) -> "Usage":
        """A cut stream's usage: what the upstream reported before the cut (its prompt side is
        exact; its completion count may be a placeholder, as Anthropic's first event carries),
        with the completion raised to ``completion_tokens`` (counted from the text relayed), and
        then labelled estimated."""
        if completion_tokens <= self.completion_tokens:
            return self
        return replace(self, completion_tokens=completion_tokens, source="estimated")

    def to_openai(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": self.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }
        if self.cache_write_tokens:
            out["prompt_tokens_details"]["cache_write_tokens"] = self.cache_write_tokens
        return out


def _is_count(v: Any) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0
