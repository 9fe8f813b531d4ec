"""The ledger writer: records are queued by the request path and written in batches by one task.

- ``submit`` never blocks and never touches the database: it appends to a bounded queue.
- A background task writes batches (up to ``batch_size`` records or ``flush_interval`` seconds).
- When the database is unreachable, failed batches (and overflow beyond the queue bound) are
  appended to a local spill file (JSON lines); a replay loop re-inserts the file when the
  database answers again. Inserts are idempotent on request id, so each record lands exactly once.
- ``close`` drains the queue and flushes; whatever cannot be written is spilled, never dropped.

What a hard kill (SIGKILL) can lose: the records still in the queue and the batch in flight,
i.e. at most about ``flush_interval`` seconds of traffic (plus one batch). Spilled records are
on disk and survive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Any

import orjson

from router.ledger.schema import to_row
from router.ledger.store import LedgerStore, iter_batches
from router.metrics import Metrics, fast

log = logging.getLogger("switchyard.ledger")


class LedgerWriter:
    def __init__(
        self,
        store: LedgerStore,
        spill_dir: Path,
        metrics: Metrics,
        *,
        batch_size: int = 500,
        flush_interval: float = 0.2,
        max_queue: int = 50_000,
        replay_interval: float = 2.0,
    ):
        self.store = store
        self.metrics = metrics
        self._depth = fast(metrics.ledger_queue)  # set on every submit
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.replay_interval = replay_interval
        self.spill_dir = Path(spill_dir)
        self.spill_dir.mkdir(parents=True, exist_ok=True)
        self.spill_path = self.spill_dir / f"ledger-spill-{os.getpid()}.jsonl"
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=max_queue)
        self._task: asyncio.Task[None] | None = None
        self._replayer: asyncio.Task[None] | None = None
        self._closing = False
        self.written = 0
        self._submitted = 0  # records handed to submit(); _done: of those, written or spilled
        self._done = 0
        self.spilled = 0
        self.db_ok = True

    # -- the request path ---------------------------------------------------------------------------
    def submit(self, record: dict[str, Any]) -> None:
        row = to_row(record)
        self._submitted += 1
        try:
            self._queue.put_nowait(row)
        except asyncio.QueueFull:
            self._spill([row])  # overload: to disk rather than unbounded memory
            self._done += 1
        self._depth.set(self._queue.qsize())

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ledger-writer")
        self._replayer = asyncio.create_task(self._replay_loop(), name="ledger-replay")

    async def close(self) -> None:
        """Flush everything queued; spill what cannot be written. Safe to call twice."""
        self._closing = True
        if self._task is not None:
            await self._queue.put({"__stop__": True})
            await self._task
            self._task = None
        if self._replayer is not None:
            self._replayer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._replayer
            self._replayer = None
        await self.replay()  # one last try, so a clean shutdown leaves no spill when the DB is up

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait until what was submitted before this call is written (or spilled), up to ``timeout``."""
        target = self._submitted
        deadline = time.monotonic() + timeout
        while self._done < target and time.monotonic() < deadline and self._task is not None:
            await asyncio.sleep(0.01)

    # -- writing -----------------------------------------------------------------------------------
    def _drain(self, batch: list[dict[str, Any]]) -> bool:
        """Move what is queued into ``batch`` (up to batch_size) without waiting; True on the stop marker."""
        stop = False
        while len(batch) < self.batch_size:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            if item.get("__stop__"):
                stop = True
                continue
            batch.append(item)
        return stop

    async def _run(self) -> None:
        # Greedy batches: under load the queue refills while a batch is written, so batches grow
        # (one await per batch, never one per record: a saturated event loop would starve that).
        stop = False
        while True:
            batch: list[dict[str, Any]] = []
            if not stop:
                first = await self._queue.get()
                if first.get("__stop__"):
                    stop = True
                else:
                    batch.append(first)
            stop = self._drain(batch) or stop
            if not stop and len(batch) < self.batch_size:
                await asyncio.sleep(self.flush_interval)  # let a batch gather at low rates
                stop = self._drain(batch) or stop
            if batch:
                await self._write(batch)
                self._done += len(batch)
            self._depth.set(self._queue.qsize())
            if stop and self._queue.empty():
                return

    async def _write(self, batch: list[dict[str, Any]]) -> None:
        try:
            await self.store.insert(batch, fresh=True)  # live records: their request ids are new
        except Exception as exc:  # the database is down or refusing: keep the records on disk
            if self.db_ok:
                log.warning("ledger database unreachable (%s); spilling to %s", type(exc).__name__, self.spill_path)
            self.db_ok = False
            self.metrics.ledger_write_errors.inc()
            self._spill(batch)
            return
        if not self.db_ok:
            log.warning("ledger database reachable again")
        self.db_ok = True
        self.written += len(batch)
        self.metrics.ledger_written.inc(len(batch))

    def _spill(self, rows: list[dict[str, Any]]) -> None:
        with open(self.spill_path, "ab") as fh:
            fh.write(b"".join(orjson.dumps(r) + b"\n" for r in rows))
            fh.flush()
            os.fsync(fh.fileno())
        self.spilled += len(rows)
        self.metrics.ledger_spilled.inc(len(rows))
        self.metrics.ledger_spill_bytes.set(self._spill_bytes())

    def _spill_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.spill_dir.glob("ledger-spill-*.jsonl*") if p.exists())

    # -- replay ------------------------------------------------------------------------------------
    async def _replay_loop(self) -> None:
        while True:
            await asyncio.sleep(self.replay_interval)
            try:
                await self.replay()
            except Exception:  # noqa: BLE001 - a replay that fails is retried on the next tick
                log.debug("ledger replay failed; will retry", exc_info=True)

    async def replay(self) -> int:
        """Insert every spilled record (from any process that used this data dir); idempotent."""
        done = 0
        for path in sorted(self.spill_dir.glob("ledger-spill-*.jsonl*")):
            if path.name.endswith(".jsonl"):
                # rotate first: new spills go to a fresh file while this one is replayed
                claimed = path.with_name(f"{path.name}.replay-{os.getpid()}-{time.time_ns()}")
                try:
                    path.rename(claimed)
                except FileNotFoundError:
                    continue
                path = claimed
            rows = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
            try:
                for batch in iter_batches(rows, self.batch_size):
                    await self.store.insert(batch)
            except Exception:
                self.db_ok = False
                raise
            self.db_ok = True
            path.unlink()
            done += len(rows)
            self.metrics.ledger_replayed.inc(len(rows))
        self.metrics.ledger_spill_bytes.set(self._spill_bytes())
        return done
