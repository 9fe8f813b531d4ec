"""Token counting with tiktoken, offline.

OpenAI-family models use their own encoding (o200k_base for the gpt-4o/4.1/5 and o-series,
cl100k_base for gpt-4, gpt-3.5 and the embedding models). Every other model is counted with
cl100k_base: a documented approximation (typically within 10-15% of the model's own tokenizer
for English text), and metered records counted this way say ``usage_source: estimated``.
The BPE files ship inside the pinned litellm package, so nothing is downloaded.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterable

import orjson
import tiktoken

from router import memory

_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o", "gpt-oss")
# Per-message overheads from OpenAI's published counting recipe for chat models.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
COUNT_CACHE = 4096  # message texts whose token counts are remembered
IMAGE_TOKENS = 85  # a low-detail image; high-detail tiles are not counted (approximation)
# A routing decision's prompt tokens (``count_messages(sample=True)``): a text up to SAMPLE_ABOVE
# characters is counted; a longer one is estimated from SAMPLE_SLICES slices of about SAMPLE_CHARS
# characters spread over it, so a decision tokenises at most about a kilobyte of each text (how close
# the estimate comes: benchmarks/decision_tokens.py, benchmarks/RESULTS.md; tests/test_decision_tokens.py).
SAMPLE_ABOVE, SAMPLE_SLICES, SAMPLE_CHARS = 2048, 8, 128


def _bundled_cache_dir() -> str | None:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "litellm_core_utils" / "tokenizers"
    return str(path) if path.is_dir() else None


def _release_python_ranks(enc: tiktoken.Encoding) -> None:
    """Drop the encoding's Python copy of its BPE ranks and hand the memory back to the OS.

    tiktoken keeps the ranks twice: in its Rust core, which encodes and decodes, and as a Python
    dict (100-200k bytes keys, 15-30 MB) that only pickling reads. Counting needs only the core.
    """
    if isinstance(getattr(enc, "_mergeable_ranks", None), dict):
        enc._mergeable_ranks = {}
        gc.collect()
        memory.trim()


def encoding_name(model: str) -> str:
    name = model.rsplit("/", 1)[-1].lower()
    return "o200k_base" if name.startswith(_O200K_PREFIXES) else "cl100k_base"


class Tokenizer:
    """Counts tokens for a model name. Encodings load once per instance, on first use."""

    def __init__(self) -> None:
        cache = _bundled_cache_dir()
        if cache and not os.environ.get("TIKTOKEN_CACHE_DIR"):
            # tiktoken reads its cache location from the environment only.
            os.environ["TIKTOKEN_CACHE_DIR"] = cache
        self._encodings: dict[str, tiktoken.Encoding] = {}
        self._lock = threading.Lock()
        # Token counts of recently seen message texts: system prompts and conversation history
        # come back on every turn, so a conversation's estimate costs about its newest message.
        # Keyed by (encoding, hash, length), not the text, so it holds no prompt and stays small.
        self._counts: OrderedDict[tuple[str, int, int], int] = OrderedDict()

    def encoding(self, model: str) -> tiktoken.Encoding:
        name = encoding_name(model)
        enc = self._encodings.get(name)
        if enc is None:
            with self._lock:
                enc = self._encodings.get(name)
                if enc is None:
                    enc = tiktoken.get_encoding(name)
                    _release_python_ranks(enc)
                    self._encodings[name] = enc
        return enc

    def warm(self, models: Iterable[str] = ("gpt-4o", "gpt-4")) -> None:
        """Load the encodings these models use now, rather than on a first request."""
        for name in models:
            self.encoding(name)

    def count(self, model: str, text: str) -> int:
        return len(self.encoding(model).encode(text, disallowed_special=())) if text else 0

    def encode(self, model: str, text: str) -> list[int]:
        return self.encoding(model).encode(text, disallowed_special=())

    def decode(self, model: str, tokens: list[int]) -> str:
        return self.encoding(model).decode(tokens)

    def _counter(self, model: str) -> Callable[[str], int]:
        """A text's token count for ``model``, remembered (``_counts``)."""
        enc, cache = self.encoding(model), self._counts

        def n(text: str) -> int:
            if not text:
                return 0
            key = (enc.name, hash(text), len(text))
            hit = cache.get(key)
            if hit is None:
                hit = cache[key] = len(enc.encode(text, disallowed_special=()))
                if len(cache) > COUNT_CACHE:
                    cache.popitem(last=False)
            return hit

        return n

    def _sampler(self, model: str) -> Callable[[str], int]:
        """A text's token count for ``model``, estimated when it is long (``SAMPLE_ABOVE``): the count of
        slices spread over it, scaled by its length over theirs."""
        enc, exact = self.encoding(model), self._counter(model)

        def n(text: str) -> int:
            if len(text) <= SAMPLE_ABOVE:
                return exact(text)
            parts = _slices(text)
            tokens = sum(len(enc.encode(p, disallowed_special=())) for p in parts)
            # never above the byte bound: a window the bound shows a prompt fits is not refused on the estimate
            return max(1, min(_utf8_bytes(text), round(tokens * len(text) / sum(map(len, parts)))))

        return n

    def count_messages(
        self,
        model: str,
        messages: Iterable[dict[str, Any]],
        tools: Any = None,
        *,
        bound: bool = False,
        sample: bool = False,
    ) -> int:
        """The prompt's tokens by OpenAI's recipe. ``bound``: an upper bound instead, as cheap as the
        bytes it reads: every text counts as its UTF-8 length. A byte-level BPE token covers at least
        one byte (tiktoken's encodings; SentencePiece with byte fallback too), so that length is never
        fewer than the text's tokens, for any of them, at the cost of a len() instead of a
        tokenisation (which a distinct prompt would miss the cache for). ``sample``: an estimate for
        a routing decision, long texts estimated from slices of them (``SAMPLE_ABOVE``)."""
        # a bound reads bytes (no encoding needed); a sample encodes about a kilobyte of each long text
        n = _utf8_bytes if bound else self._sampler(model) if sample else self._counter(model)

        total = REPLY_PRIMING
        for msg in messages:
            total += TOKENS_PER_MESSAGE + n(str(msg.get("role", "")))
            content = msg.get("content")
            if isinstance(content, str):
                total += n(content)
            elif isinstance(content, list):
                total += _parts(content, n)
            if msg.get("name"):
                total += TOKENS_PER_NAME + n(str(msg["name"]))
            for call in msg.get("tool_calls") or ():
                fn = call.get("function") or {} if isinstance(call, dict) else {}
                total += n(str(fn.get("name", ""))) + n(str(fn.get("arguments", "")))
        if tools:
            total += n(orjson.dumps(tools).decode())
        return total


def _slices(text: str) -> list[str]:
    """SAMPLE_SLICES pieces of about SAMPLE_CHARS characters spread evenly over ``text`` (the first at
    its start, the last at its end), each cut at spaces where one is near so no word is split."""
    n, size, k = len(text), SAMPLE_CHARS, SAMPLE_SLICES
    out = []
    for i in range(k):
        start = (n - size) * i // (k - 1)
        end = start + size
        if i:
            space = text.find(" ", start, start + 24)
            start = space + 1 if space >= 0 else start
        if end < n:
            space = text.rfind(" ", end - 24, end)
            end = space if space > start else end
        out.append(text[start:end])
    return out


def _utf8_bytes(text: str) -> int:
    """At least ``text``'s tokens under any byte-level BPE (``count_messages``'s bound)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _parts(content: list[Any], n: Callable[[str], int]) -> int:
    """A message's content parts: texts counted by ``n``, images at a flat rate."""
    total = 0
    for part in content:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text":
            total += n(str(part.get("text", "")))
        elif part.get("type") in ("image_url", "input_image"):
            total += IMAGE_TOKENS
    return total
