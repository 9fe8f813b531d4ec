"""Prompt features for quality prediction: hashed words and word pairs, plus a few shape signals.

Stable across processes (crc32, not Python's salted ``hash``) so a trained predictor can ship.
Only the last ``max_words`` words are read: that is where the question is (few-shot prefixes are
shared by many prompts and carry little signal), and it bounds the cost per decision.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING
from zlib import crc32

if TYPE_CHECKING:
    import numpy as np

WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")
DIM_BITS = 18
DIM = 1 << DIM_BITS
MASK = DIM - 1


def featurize(text: str, max_words: int = 192) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the (L2-normalised) sparse feature vector of ``text``."""
    import numpy as np  # only policies with a learned predictor need it

    # the last max_words words: read a short window first, the full 4,000-character tail only when
    # the window holds too few (a window that holds more than max_words words gives the same words)
    tail = text[-4000:].lower()
    words = WORD.findall(tail[-6 * max_words:])
    if len(words) <= max_words and len(tail) > 6 * max_words:
        words = WORD.findall(tail)
    words = words[-max_words:]
    k = len(words)
    keys = np.empty(2 * k, dtype=np.uint64)
    keys[:k] = np.fromiter(map(crc32, map(str.encode, words)), dtype=np.uint64, count=k)
    # unigrams, and word pairs hashed from their two word hashes (no string building); uint64
    # arithmetic wraps, which leaves the low DIM_BITS bits the same as exact integer arithmetic
    if k:
        pairs = keys[k:]
        pairs[0] = 0x2545F491
        pairs[1:] = keys[: k - 1]
        pairs *= np.uint64(0x9E3779B1)
        pairs ^= keys[:k]
    keys &= np.uint64(MASK)
    # shape signals: prompt length (log buckets), code-like punctuation density, how many numbers
    # and sentences the question holds (multi-step problems are harder for small models)
    n = len(text)
    code = sum(text.count(c) for c in "(){}[]=:_") / (n + 1)
    numbers = sum(map(str.isdigit, words))
    sentences = tail.count(". ") + tail.count("? ") + tail.count("?\n") + 1
    shape = [f"__len{int(math.log2(n + 1))}", f"__code{min(int(code * 50), 10)}", f"__nums{min(numbers, 12)}",
             f"__sent{min(sentences, 12)}", f"__words{min(len(words) // 10, 30)}"]
    # distinct keys and their counts (np.unique's result, without its general-purpose overhead)
    keys.sort()
    first = np.empty(2 * k, dtype=bool)
    if k:
        first[0] = True
        np.not_equal(keys[1:], keys[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    counts = np.diff(starts, append=2 * k)
    idx = np.concatenate([keys[starts].astype(np.int64),
                          np.array([crc32(s.encode()) & MASK for s in shape] + [0], dtype=np.int64)])  # 0: the bias
    val = np.concatenate([counts.astype(np.float32), np.array([2.0] * len(shape) + [1.0], dtype=np.float32)])
    val /= np.sqrt((val * val).sum())
    return idx, val

_CODE_MARKS = ("```", "def ", "class ", "function", "return ", "#include", "import ", "=>", "};", "python", "code")
_MATH_WORDS = ("solve", "equation", "calculate", "integral", "probability", "how many", "how much", "percent")
_ARITH = re.compile(r"\d\s*[-+*/^=]\s*\d")


def categorize(prompt: str, wants_json: bool = False) -> str:
    """A coarse task category for per-category priors and feedback: code, math, json or general."""
    if wants_json:
        return "json"
    tail = prompt[-2000:].lower()
    if any(k in tail for k in _CODE_MARKS):
        return "code"
    if any(k in tail for k in _MATH_WORDS) or _ARITH.search(tail):
        return "math"
    return "general"
