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

    tail = text[-4000:].lower()
    words = WORD.findall(tail)[-max_words:]
    hs = [crc32(w.encode()) for w in words]
    # unigrams, and word pairs hashed from their two word hashes (no string building)
    keys = [h & MASK for h in hs]
    keys += [((a * 0x9E3779B1) ^ b) & MASK for a, b in zip([0x2545F491, *hs[:-1]], hs)]
    # shape signals: prompt length (log buckets), code-like punctuation density, how many numbers
    # and sentences the question holds (multi-step problems are harder for small models)
    n = len(text)
    code = sum(text.count(c) for c in "(){}[]=:_") / (n + 1)
    numbers = sum(1 for w in words if w.isdigit())
    sentences = tail.count(". ") + tail.count("? ") + tail.count("?\n") + 1
    shape = [f"__len{int(math.log2(n + 1))}", f"__code{min(int(code * 50), 10)}", f"__nums{min(numbers, 12)}",
             f"__sent{min(sentences, 12)}", f"__words{min(len(words) // 10, 30)}"]
    idx, counts = np.unique(np.array(keys, dtype=np.int64), return_counts=True)
    extra = np.array([crc32(k.encode()) & MASK for k in shape] + [0], dtype=np.int64)  # 0: the bias feature
    idx = np.concatenate([idx, extra])
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
