"""Prompt features for quality prediction: hashed words and word pairs, plus a few shape signals.

Stable across processes (crc32, not Python's salted ``hash``) so a trained predictor can ship.
Only the last ``max_words`` words are read: that is where the question is (few-shot prefixes are
shared by many prompts and carry little signal), and it bounds the cost per decision.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Callable
from zlib import crc32

if TYPE_CHECKING:
    import numpy as np

WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")
# the same tokens for ASCII text, as bytes (crc32 reads them without an encode per word); a str
# pattern's \s also matches the ASCII separators \x1c-\x1f, a bytes pattern's does not. Possessive
# (``++``, Python 3.11): a run of letters and digits is never given back, which spares the engine
# its backtracking bookkeeping (14% less time on 1,000-character prompts)
_WORD_ASCII = re.compile(rb"[a-z0-9]++|[^ \t\n\r\x0b\x0c\x1c-\x1f a-z0-9]")
_CODE_CHARS = "(){}[]=:_"
_CODE_BYTES = _CODE_CHARS.encode()
DIM_BITS = 18
DIM = 1 << DIM_BITS
MASK = DIM - 1


def _shape_keys(name: str, top: int) -> tuple[int, ...]:
    return tuple(crc32(f"__{name}{i}".encode()) & MASK for i in range(top + 1))


# the hashed keys of the shape buckets, by bucket: __len0..63, __code0..10, __nums0..12, __sent0..12, __words0..30
_LEN, _CODE, _NUMS, _SENT, _WORDS = (
    _shape_keys("len", 63),
    _shape_keys("code", 10),
    _shape_keys("nums", 12),
    _shape_keys("sent", 12),
    _shape_keys("words", 30),
)


def featurize(text: str, max_words: int = 192) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the (L2-normalised) sparse feature vector of ``text``."""
    import numpy as np  # only policies with a learned predictor need it

    # the last max_words words: read a short window first, the full 4,000-character tail only when
    # the window holds too few (a window that holds more than max_words words gives the same words)
    tail = text[-4000:].lower()
    window = 6 * max_words
    n = len(text)
    if tail.isascii():  # the common case: bytes all the way (ASCII text's UTF-8 is itself)
        raw = tail.encode()
        words = _WORD_ASCII.findall(raw[-window:])
        if len(words) <= max_words and len(raw) > window:
            words = _WORD_ASCII.findall(raw)
        words = words[-max_words:]
        hashes = list(map(crc32, words))
        numbers = sum(map(bytes.isdigit, words))
    else:
        words = WORD.findall(tail[-window:])
        if len(words) <= max_words and len(tail) > window:
            words = WORD.findall(tail)
        words = words[-max_words:]
        hashes = list(map(crc32, map(str.encode, words)))
        numbers = sum(map(str.isdigit, words))
    if text.isascii():
        code_chars = n - len(text.encode().translate(None, _CODE_BYTES))
    else:
        code_chars = sum(text.count(c) for c in _CODE_CHARS)
    k = len(words)
    keys = np.empty(2 * k, dtype=np.uint64)
    keys[:k] = hashes
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
    sentences = tail.count(". ") + tail.count("? ") + tail.count("?\n") + 1
    shape = [
        _LEN[int(math.log2(n + 1))],
        _CODE[min(int(code_chars / (n + 1) * 50), 10)],
        _NUMS[min(numbers, 12)],
        _SENT[min(sentences, 12)],
        _WORDS[min(k // 10, 30)],
        0,
    ]  # 0: the bias
    # distinct keys and their counts (np.unique's result, without its general-purpose overhead): where
    # each run of equal sorted keys starts, and a sentinel start past the end (np.diff's append= and
    # np.flatnonzero cost more than the rest of this together)
    keys.sort()
    first = np.empty(2 * k + 1, dtype=bool)
    first[0] = True
    first[-1] = True
    np.not_equal(keys[1:], keys[:-1], out=first[1:-1])
    bounds = first.nonzero()[0]
    starts = bounds[:-1]
    m = len(starts)
    idx = np.empty(m + 6, dtype=np.int64)
    idx[:m] = keys[starts]
    idx[m:] = shape
    val = np.empty(m + 6, dtype=np.float32)
    np.subtract(bounds[1:], starts, out=val[:m], casting="unsafe")
    val[m:] = (2.0, 2.0, 2.0, 2.0, 2.0, 1.0)
    val /= np.sqrt((val * val).sum())
    return idx, val


# where a multiple-choice question's options begin: the last line that opens with "A." / "(a)" / "A)"
_OPTIONS_START = re.compile(r"\n[ \t]*\(?[Aa][.):]")


def featurize_options_apart(text: str, max_words: int = 192) -> tuple[np.ndarray, np.ndarray]:
    """``featurize``, with a multiple-choice question's stem and its options as two texts whose words
    are different features ("4" among the options is not "4" in the question): each part's features
    L2-normalised, the options' keys remapped by a multiplicative hash, duplicates summed, the whole
    normalised again. Text without lettered options gets ``featurize``'s features unchanged. The
    options are found in the last 4,000 characters, the part ``featurize`` reads."""
    import numpy as np

    tail = text[-4000:]
    found = None
    for found in _OPTIONS_START.finditer(tail):
        pass
    if found is None:
        return featurize(text, max_words)
    cut = len(text) - len(tail) + found.start()
    i1, v1 = featurize(text[:cut], max_words)
    i2, v2 = featurize(text[cut:], max_words)
    i2 = ((i2.astype(np.uint64) * np.uint64(0x9E3779B1) + np.uint64(0x7F4A7C15)) & np.uint64(MASK)).astype(np.int64)
    idx = np.concatenate([i1, i2])
    order = idx.argsort(kind="stable")
    idx, val = idx[order], np.concatenate([v1, v2])[order]
    first = np.empty(len(idx), dtype=bool)
    first[0] = True
    np.not_equal(idx[1:], idx[:-1], out=first[1:])
    if not first.all():  # a key of both parts (rare): summed
        starts = first.nonzero()[0]
        idx, val = idx[starts], np.add.reduceat(val, starts)
    val /= np.sqrt((val * val).sum())
    return idx, val


# a predictor's feature set, by the name its training metadata records ("features"; none: "words")
FEATURES = {"words": featurize, "options-apart": featurize_options_apart}


def feature_set(name: str) -> Callable[[str], tuple[np.ndarray, np.ndarray]]:
    """The feature function named ``name``; ValueError naming the known sets for any other."""
    if name not in FEATURES:
        raise ValueError(f"unknown feature set '{name}' ({', '.join(FEATURES)})")
    return FEATURES[name]


_CODE_MARKS = ("```", "def ", "class ", "function", "return ", "#include", "import ", "=>", "};", "python", "code")
_MATH_WORDS = ("solve", "equation", "calculate", "integral", "probability", "how many", "how much", "percent")
_ARITH = re.compile(r"\d\s*[-+*/^=]\s*\d")
# the same test on ASCII text with every digit made "0": a pattern that starts with a literal is
# searched for that character, not tried at every position (5x faster on 2,000 characters)
_ARITH_ASCII = re.compile(rb"0[ \t\n\r\x0b\x0c\x1c-\x1f]*[-+*/^=][ \t\n\r\x0b\x0c\x1c-\x1f]*0")
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
# lettered options on lines of their own, A then B ("A. 4", "(a) Kyle", "A) ..."): a multiple-choice
# question; the pattern starts with a literal newline, which the regex engine scans for
_OPTIONS = re.compile(r"\n[ \t]*\(?a[.):][^\n]*\n[ \t]*\(?b[.):]")


def categorize(prompt: str, wants_json: bool = False) -> str:
    """A coarse task category, read from the prompt alone, for per-category objectives, priors and
    feedback: json (a JSON answer asked for), choice (multiple choice: lettered options), code,
    math or general."""
    if wants_json:
        return "json"
    tail = prompt[-2000:].lower()
    if _OPTIONS.search("\n" + tail[-1500:]):
        return "choice"
    if any(k in tail for k in _CODE_MARKS):
        return "code"
    if any(k in tail for k in _MATH_WORDS):
        return "math"
    if tail.isascii():
        arithmetic = _ARITH_ASCII.search(tail.encode().translate(_DIGITS_AS_ZERO)) is not None
    else:
        arithmetic = _ARITH.search(tail) is not None
    return "math" if arithmetic else "general"
