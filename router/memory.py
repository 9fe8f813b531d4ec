"""Handing freed memory back to the operating system (glibc's malloc_trim), and keeping the
start-up heap out of the garbage collector's way.

A Python worker's heap is fragmented by short-lived request objects and by the C libraries
beneath it (SQLite batches, tokenizers); glibc keeps the freed pages mapped unless asked. One
``malloc_trim`` every few seconds keeps resident memory near what is live, at about a
millisecond of CPU per call. A no-op off glibc.
"""

from __future__ import annotations

import asyncio
import ctypes
from typing import Any
import gc
import ctypes.util
import time

_trim: Any = None
try:
    _trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
except (OSError, AttributeError):  # musl, macOS: nothing to call
    _trim = None


def trim() -> float:
    """Return freed heap pages to the OS; the seconds it took."""
    if _trim is None:
        return 0.0
    t0 = time.perf_counter()
    _trim(0)
    return time.perf_counter() - t0


async def trim_periodically(interval: float = 5.0) -> None:
    while True:
        await asyncio.sleep(interval)
        trim()


def freeze_startup() -> None:
    """Move everything alive after start-up (imported modules, litellm's tables, the price catalog,
    the tokenizer's encodings: a few million objects) into the collector's permanent generation, so
    the collections request garbage triggers no longer traverse it. Request objects are collected as
    before. Once per process (a later start, such as a test's second app, finds it done).

    The price: an object frozen here that later becomes part of an unreachable cycle (a replaced config's
    structures after a reload) is not reclaimed; reloads are rare and such leftovers small."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()


_frozen = False
