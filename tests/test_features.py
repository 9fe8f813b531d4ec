"""The predictor's prompt features: the fast implementation matches the plain definition exactly
(a shipped predictor's weights are only valid for the features it was trained on)."""

from __future__ import annotations

import math
import random
from zlib import crc32

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.features import _ARITH, _CODE_MARKS, _MATH_WORDS, MASK, WORD, categorize, featurize


def reference(text: str, max_words: int = 192) -> tuple[np.ndarray, np.ndarray]:
    """The definition, written plainly: last max_words words of the 4,000-character tail, their
    hashes and their pairs' hashes counted, five shape buckets, a bias; L2-normalised."""
    tail = text[-4000:].lower()
    words = WORD.findall(tail)[-max_words:]
    hs = [crc32(w.encode()) for w in words]
    keys = [h & MASK for h in hs]
    keys += [((a * 0x9E3779B1) ^ b) & MASK for a, b in zip([0x2545F491, *hs[:-1]], hs)]
    n = len(text)
    code = sum(text.count(c) for c in "(){}[]=:_") / (n + 1)
    numbers = sum(1 for w in words if w.isdigit())
    sentences = tail.count(". ") + tail.count("? ") + tail.count("?\n") + 1
    shape = [
        f"__len{int(math.log2(n + 1))}",
        f"__code{min(int(code * 50), 10)}",
        f"__nums{min(numbers, 12)}",
        f"__sent{min(sentences, 12)}",
        f"__words{min(len(words) // 10, 30)}",
    ]
    idx, counts = np.unique(np.array(keys, dtype=np.int64), return_counts=True)
    idx = np.concatenate([idx, np.array([crc32(k.encode()) & MASK for k in shape] + [0], dtype=np.int64)])
    val = np.concatenate([counts.astype(np.float32), np.array([2.0] * len(shape) + [1.0], dtype=np.float32)])
    val /= np.sqrt((val * val).sum())
    return idx, val


def same(text: str) -> None:
    (i1, v1), (i2, v2) = featurize(text), reference(text)
    assert i1.dtype == i2.dtype and v1.dtype == v2.dtype
    assert np.array_equal(i1, i2) and np.array_equal(v1, v2)


def test_edge_cases_match_the_definition() -> None:
    for text in [
        "",
        " ",
        "a",
        "!!",
        "x " * 500,
        "word" * 1000,
        "abcdefghij " * 300,
        "a." * 700,
        "Q: 12 + 30 = ?\nA) 42\nB) 41\nAnswer:",
        "def f(x):\n    return x[0] == {'a': 1}\n" * 40,
    ]:
        same(text)


def test_long_prompts_whose_window_is_short_of_words_match() -> None:
    rng = random.Random(3)
    for _ in range(50):  # long words: the short window holds fewer than max_words of them
        same(
            " ".join(
                "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(1, 14)))
                for _ in range(rng.randint(100, 700))
            )
        )


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=3000))
def test_any_text_matches_the_definition(text: str) -> None:
    same(text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=3000))
def test_ascii_text_matches_the_definition(text: str) -> None:
    # ASCII text takes a bytes path; its separators (\x1c-\x1f count as spaces) must match the str one
    same(text)


def test_the_ascii_and_unicode_paths_agree_on_mixed_text() -> None:
    for text in [
        "a\x1cb\x1fc d",
        "x = (1 + 2)\n" * 300 + "caf\u00e9",
        "\u00e9" + "word " * 400,
        "word " * 400 + "\u00e9",
        "\U0001f600 (a) [b] {c}" * 50,
        "Q_1: 3*4=12?\nA:" * 200,
    ]:
        same(text)


def lettered(line: str, letter: str) -> bool:
    line = line.lstrip(" \t")
    line = line[1:] if line.startswith("(") else line
    return len(line) >= 2 and line[0] == letter and line[1] in ".):"


def plain_category(prompt: str) -> str:
    tail = prompt[-2000:].lower()
    lines = tail[-1500:].split("\n")
    if any(lettered(a, "a") and lettered(b, "b") for a, b in zip(lines, lines[1:])):
        return "choice"
    if any(k in tail for k in _CODE_MARKS):
        return "code"
    return "math" if any(k in tail for k in _MATH_WORDS) or _ARITH.search(tail) else "general"


ARITHMETIC_TEXT = st.text(
    alphabet=st.sampled_from(list("0123456789+-*/^=xyz \t\n\x0b\x1c\x1f.()") + ["\u0663", "\u00a0"]), max_size=60
)


OPTIONS_TEXT = st.lists(st.sampled_from(list("aAbB.):( \t\n\x0b") + ["A. 4\n", "\nB) x", "(a) y\n"]), max_size=12).map(
    "".join
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(ARITHMETIC_TEXT, OPTIONS_TEXT, st.text(max_size=40)), max_size=8).map("".join))
def test_the_category_matches_its_plain_definition(text: str) -> None:
    # arithmetic on ASCII text is searched with the digits made "0"; Unicode digits and spaces take
    # the str pattern (\u0663 is a digit, \u00a0 a space, to Python's \d and \s)
    assert categorize(text) == plain_category(text)
    assert categorize("x" * 3000 + text) == plain_category("x" * 3000 + text)


def test_categories_of_typical_prompts() -> None:
    assert categorize("What is 12 * 3?") == "math"
    assert categorize("What is 12 *\x1c 3?") == "math"  # \x1c is a space to \s
    assert categorize("What is 12 *\u00a0\u0663?") == "math"
    assert categorize("Call 555-0100 or write to us.") == "math"  # as the definition says: digits around a dash
    assert categorize("Pick A or B.") == "general"
    assert categorize("Write a python function") == "code"
    assert categorize("{}", wants_json=True) == "json"
    # multiple choice: lettered options on lines of their own, whatever the question is about
    assert categorize("Find the degree of Q(sqrt(2)) over Q.\nA. 0\nB. 4\nC. 2\nD. 6\nAnswer:") == "choice"
    assert categorize("Which is shorter?\n  (a) def f(): pass\n  (b) lambda: 0") == "choice"
    assert categorize("Kyle or Logan?\nA) Kyle\nB) Logan\nAnswer:") == "choice"
    assert categorize("Options: A. one, B. two") == "general"  # not on lines of their own
    assert categorize("A. first\nC. third") == "general"  # A then B
