"""Handing freed memory back to the operating system (glibc's malloc_trim).

A Python worker's heap is fragmented by short-lived request objects and by the C libraries
beneath it (SQLite batches, tokenizers); glibc keeps the freed pages mapped unless asked. One
``malloc_trim`` every few seconds keeps resident memory near what is live, at about a
millisecond of CPU per call. A no-op off glibc.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import time

_libc = None
try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    _trim = _libc.malloc_trim
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
