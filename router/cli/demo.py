"""``switchyard demo``: the embedded default under a mixed synthetic workload, summarised.

Serves the embedded default on loopback in this process, sends a mix of requests (aliases and
concrete models, streaming and not, tool calls, embeddings) through real HTTP, then prints
which models served what and what it cost, from the gateway's own meter records.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import threading
import time
from collections import defaultdict
from typing import Any

import aiohttp
import uvicorn
from rich.console import Console
from rich.table import Table

from router.app import create_app
from router.keyring import ENV_DEMO_KEY_HASH
from router.build import build_services
from router.auth import hash_key, new_key
from router.config import embedded_default
from router.accounting.metering import MemorySink

PROMPTS = [
    "Summarise the main risks in this contract clause about termination.",
    "Translate 'the invoice is overdue' into French and German.",
    "Write a haiku about falling GPU prices.",
    "Explain the difference between a mutex and a semaphore.",
    "Classify this support ticket: 'my card was charged twice'.",
    "Draft a polite reminder email for an unpaid invoice.",
]
TOOL = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
    },
}


def _workload(n: int, rng: random.Random, user: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    """``n`` requests; each names ``user`` when given (how a run finds its own records)."""
    who = {"user": user} if user else {}
    models = ["auto", "auto", "auto", "cheap", "cheap", "best", "sim-open", "sim-reasoning"]
    out = []
    for i in range(n):
        if i % 10 == 9:
            out.append(("/v1/embeddings", {"model": "sim-embed", "input": rng.sample(PROMPTS, 3), **who}))
            continue
        body: dict[str, Any] = {
            "model": rng.choice(models),
            "max_tokens": rng.choice([64, 128, 256]),
            "messages": [{"role": "user", "content": rng.choice(PROMPTS)}],
            **who,
        }
        if i % 4 == 0:
            body.update(stream=True, stream_options={"include_usage": True})
        if i % 7 == 3:
            body.update(tools=[TOOL])
        out.append(("/v1/chat/completions", body))
    return out


async def _drive(base: str, key: str, work: list[tuple[str, dict[str, Any]]], concurrency: int) -> int:
    sem = asyncio.Semaphore(concurrency)
    ok = 0
    async with aiohttp.ClientSession(headers={"authorization": f"Bearer {key}"}) as http:

        async def one(path: str, body: dict[str, Any]) -> None:
            nonlocal ok
            async with sem, http.post(base + path, json=body) as resp:
                await resp.read()
                ok += resp.status == 200

        await asyncio.gather(*(one(p, b) for p, b in work))
    return ok


def run_demo(*, requests: int, port: int, concurrency: int = 8) -> None:
    console = Console()
    key = new_key("demo")
    sink = MemorySink(maxlen=requests * 2)
    services = build_services(embedded_default(), env={ENV_DEMO_KEY_HASH: hash_key(key)}, sink=sink)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(services=services),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            loop="uvloop",
            http="httptools",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    console.print(f"Switchyard demo: embedded default on {base}/v1, {requests} requests, {concurrency} at a time")
    t0 = time.perf_counter()
    ok = asyncio.run(_drive(base, key, _workload(requests, random.Random(7)), concurrency))
    elapsed = time.perf_counter() - t0
    server.should_exit = True
    thread.join(10)
    _report(console, list(sink.records), ok, elapsed)


def run_demo_against(url: str, key: str, *, requests: int, concurrency: int = 8) -> int:
    """Drive a running gateway (``url``) with the workload, then report from its own ledger (the
    key's tenant's records of this run, as GET /v1/requests gives them). The exit status."""
    console = Console()
    base = url.rstrip("/").removesuffix("/v1")
    console.print(f"Switchyard demo: {requests} requests to {base}/v1, {concurrency} at a time")
    t0, wall = time.perf_counter(), time.time()
    run = f"switchyard-demo-{secrets.token_hex(4)}"  # this run's records, not the gateway's others
    try:
        ok = asyncio.run(_drive(base, key, _workload(requests, random.Random(7), run), concurrency))
    except aiohttp.ClientError as exc:
        console.print(f"cannot reach {base}: {exc}")
        return 1
    elapsed = time.perf_counter() - t0
    records = asyncio.run(_ledger_records(base, key, wall - 1, requests, run))
    _report(console, records, ok, elapsed)
    return 0 if ok else 1


async def _ledger_records(
    base: str, key: str, since: float, expected: int, user: str, wait: float = 5.0
) -> list[dict[str, Any]]:
    """This run's records (its ``user``) in the gateway's ledger (the writer flushes in batches: wait a
    little for them)."""
    deadline = time.monotonic() + wait
    async with aiohttp.ClientSession(headers={"authorization": f"Bearer {key}"}) as http:
        while True:
            rows: list[dict[str, Any]] = []
            cursor = None
            while True:
                params = {
                    "start": str(since),
                    "end": str(time.time() + 60),
                    "limit": "500",
                    "user": user,
                    **({"cursor": cursor} if cursor else {}),
                }
                async with http.get(base + "/v1/requests", params=params) as resp:
                    if resp.status != 200:
                        return rows
                    page = await resp.json()
                rows += page["data"]
                cursor = page.get("next_cursor")
                if not cursor:
                    break
            if len(rows) >= expected or time.monotonic() > deadline:
                return [
                    {
                        "model": r.get("model"),
                        "requested_model": r.get("alias"),
                        "cost_usd": r.get("cost_usd"),
                        "usage": {
                            "prompt_tokens": r.get("prompt_tokens") or 0,
                            "completion_tokens": r.get("completion_tokens") or 0,
                        },
                    }
                    for r in rows
                ]
            await asyncio.sleep(0.2)


def _report(console: Console, records: list[dict[str, Any]], ok: int, elapsed: float) -> None:
    by_model: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    routes: dict[tuple[str, str], int] = defaultdict(int)
    for r in records:
        m = r["model"] or "(failed)"
        row = by_model[m]
        row["requests"] += 1
        if r["usage"]:
            row["input"] += r["usage"]["prompt_tokens"]
            row["output"] += r["usage"]["completion_tokens"]
        row["cost"] += r["cost_usd"] or 0.0
        routes[(r["requested_model"], m)] += 1
    t = Table(title="Where the requests went and what they cost")
    for col in ("model", "requests", "input tok", "output tok", "cost USD"):
        t.add_column(col, justify="left" if col == "model" else "right")
    for m, row in sorted(by_model.items(), key=lambda kv: -kv[1]["cost"]):
        t.add_row(m, f"{row['requests']:.0f}", f"{row['input']:.0f}", f"{row['output']:.0f}", f"{row['cost']:.6f}")
    total = sum(r["cost"] for r in by_model.values())
    t.add_row("total", str(len(records)), "", "", f"{total:.6f}", style="bold")
    console.print(t)
    rt = Table(title="Routing: requested -> served")
    rt.add_column("requested")
    rt.add_column("served by")
    rt.add_column("requests", justify="right")
    for (req, served), n in sorted(routes.items()):
        rt.add_row(req, served, str(n))
    console.print(rt)
    console.print(
        f"{ok}/{len(records)} answered 200 in {elapsed:.1f}s. "
        "Every response carries x-switchyard-model and x-switchyard-cost-usd."
    )
