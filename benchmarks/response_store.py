"""CPU per stored Responses-API answer (router/ledger/conversations.py), through the driver on a kept
connection (the shipped path) and through SQLAlchemy (``via_driver=False``), on SQLite and, with
``--database-url``, PostgreSQL: one write at a time (each its own transaction) and many at once
(grouped into shared transactions).

    python benchmarks/response_store.py [--writes 2000] [--database-url postgresql://...]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from router.ledger.conversations import ResponseStore  # noqa: E402
from router.ledger.store import LedgerStore, sqlite_url  # noqa: E402

RESPONSE = {
    "id": "resp",
    "object": "response",
    "output": [
        {
            "type": "message",
            "content": [{"type": "output_text", "text": "One short sentence about load testing an LLM gateway. " * 3}],
        }
    ],
}
CONVERSATION = [
    {"role": "user", "content": "Write one short sentence about load testing an LLM gateway."},
    {"role": "assistant", "content": RESPONSE["output"][0]["content"][0]["text"]},
]


async def measure(url: str, via_driver: bool, writes: int) -> dict[str, float]:
    ledger = LedgerStore(url)
    await ledger.migrate()
    store = ResponseStore(ledger, 86400, via_driver=via_driver)
    tag = f"{time.time_ns()}-{via_driver}"
    try:
        await store.put(f"warm-{tag}", "t", RESPONSE, CONVERSATION, time.time())
        t0 = time.process_time()
        for i in range(writes):
            await store.put(f"s{i}-{tag}", "t", RESPONSE, CONVERSATION, time.time())
        one = (time.process_time() - t0) * 1000 / writes
        t0 = time.process_time()
        await asyncio.gather(
            *(store.put(f"c{i}-{tag}", "t", RESPONSE, CONVERSATION, time.time()) for i in range(writes))
        )
        many = (time.process_time() - t0) * 1000 / writes
    finally:
        await store.close()
        await ledger.dispose()
    return {"one_at_a_time_ms": one, "concurrent_ms": many}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--writes", type=int, default=2000)
    ap.add_argument("--database-url")
    args = ap.parse_args()
    urls = {"sqlite": sqlite_url(tempfile.mkdtemp())}
    if args.database_url:
        urls["postgresql"] = args.database_url
    for name, url in urls.items():
        for via_driver in (True, False):
            r = await measure(url, via_driver, args.writes)
            path = "driver, kept connection" if via_driver else "SQLAlchemy engine.begin()"
            print(
                f"{name:<10} {path:<26} CPU per write: one at a time {r['one_at_a_time_ms']:.3f} ms, "
                f"{args.writes} at once {r['concurrent_ms']:.3f} ms",
                flush=True,
            )


if __name__ == "__main__":
    asyncio.run(main())
