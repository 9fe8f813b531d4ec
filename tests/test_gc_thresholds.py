"""After start-up the collector runs rarely (router/memory.py, ``GC_THRESHOLDS``), and still frees
cycles: the rarity must not become a leak."""

from __future__ import annotations

import gc
import weakref
from typing import Any

from router import memory


class Node:
    other: Any = None


def test_collections_are_rare_after_startup_and_still_free_cycles() -> None:
    memory.freeze_startup()  # once per process: a no-op when a gateway in this worker has started
    assert gc.isenabled() and gc.get_threshold() == memory.GC_THRESHOLDS
    gc.collect()
    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle: only the collector frees it
    gone = weakref.ref(a)
    del a, b
    runs: list[int] = []

    def count(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            runs.append(info["generation"])

    gc.callbacks.append(count)
    try:
        alive = [[i] for i in range(2 * memory.GC_THRESHOLDS[0] + 1)]  # twice the threshold, kept alive
    finally:
        gc.callbacks.remove(count)
    assert gone() is None  # a collection ran on its own and freed the cycle
    # CPython's default threshold (700) would have collected about 140 times meanwhile
    assert 1 <= len(runs) <= 3, runs
    assert len(alive) == 2 * memory.GC_THRESHOLDS[0] + 1
