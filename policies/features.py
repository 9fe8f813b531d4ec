"""Prompt features for quality prediction: hashed words and word pairs, plus a few shape signals.

Stable across processes (crc32, not Python's salted ``hash``) so a trained predictor can ship.
Only the last ``max_words`` words are read: that is where the question is (few-shot prefixes are
shared by many prompts and carry little signal), and it bounds the cost per decision.
"""

from __future__ import annotations

import math
import re
from zlib import crc32

import numpy as np

WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")
DIM_BITS = 18
DIM = 1 << DIM_BITS
MASK = DIM - 1


def featurize(text: str, max_words: int = 192) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the (L2-normalised) sparse feature vector of ``text``."""
    tail = text[-4000:].lower()
    words = WORD.findall(tail)[-max_words:]
    feats: dict[int, float] = {}
    prev = "^"
    for w in words:
        for key in (w, prev + " " + w):
            h = crc32(key.encode()) & MASK
            feats[h] = feats.get(h, 0.0) + 1.0
        prev = w
    # shape signals: length of the whole prompt, in log buckets; code-like punctuation density
    n = len(text)
    feats[crc32(f"__len{int(math.log2(n + 1))}".encode()) & MASK] = 2.0
    code = sum(text.count(c) for c in "(){}[]=:_") / (n + 1)
    feats[crc32(f"__code{min(int(code * 50), 10)}".encode()) & MASK] = 2.0
    feats[0] = 1.0  # bias feature
    idx = np.fromiter(feats.keys(), dtype=np.int64, count=len(feats))
    val = np.fromiter(feats.values(), dtype=np.float32, count=len(feats))
    val /= np.sqrt((val * val).sum())
    return idx, val


_CODE = re.compile(r"```|\bdef |\bclass |\bfunction\b|\breturn\b|;\s*$|#include|\bimport |=>", re.M)
_MATH = re.compile(r"\d+\s*[-+*/^=]\s*\d+|\bsolve\b|\bequation\b|\bcalculate\b|\bintegral\b|\bprobability\b", re.I)


def categorize(prompt: str, wants_json: bool = False) -> str:
    """A coarse task category for per-category priors and feedback: code, math, json or general."""
    tail = prompt[-2000:]
    if wants_json:
        return "json"
    if _CODE.search(tail):
        return "code"
    if _MATH.search(tail):
        return "math"
    return "general"
