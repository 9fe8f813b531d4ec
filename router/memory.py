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


# The collector's thresholds after start-up: a young collection once 50,000 more container objects
# are alive than at the last one (CPython's default: 700), an older one every 20 of those (default 10).
GC_THRESHOLDS = (50_000, 20, 20)


def freeze_startup() -> None:
    """Move everything alive after start-up (imported modules, litellm's tables, the price catalog,
    the tokenizer's encodings: a few million objects) into the collector's permanent generation, so
    the collections request garbage triggers no longer traverse it, and make collections rarer
    (``GC_THRESHOLDS``). Once per process (a later start, such as a test's second app, finds it done).

    Why rarer: a request's objects are freed by their reference counts (it leaves no cycles; a run of
    requests under ``gc.DEBUG_SAVEALL`` found none), but each allocates dozens of dicts and lists, and
    at the default threshold a young collection ran every dozen requests, each traversing every
    object alive in the requests in flight; a full one (every 70,000 allocations) paused the loop
    for 20-60 ms. Collections still run, and still free cycles (the test holds that), at most
    ``GC_THRESHOLDS[0]`` objects later. A 20-chunk stream's CPU fell 5-8%, a non-streaming
    request's 1-4% (benchmarks/RESULTS.md).

    The price: an object frozen here that later becomes part of an unreachable cycle (a replaced config's
    structures after a reload) is not reclaimed; reloads are rare and such leftovers small."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)


_frozen = False
