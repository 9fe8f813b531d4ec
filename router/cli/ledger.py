"""``switchyard export`` (FOCUS rows, the spend log) and ``switchyard alerts`` (a sample budget alert)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from router.cli.common import load_cfg as _load, refuse

export_cli = typer.Typer(no_args_is_help=True, help="Exports of the ledger.")
alerts_cli = typer.Typer(no_args_is_help=True, help="Budget alerts (router/accounting/alerts.py).")


def _ledger_range(since: str, until: Optional[str], config: Optional[Path]) -> tuple[Any, float, float]:
    """The ledger a config names (SQLite in its data dir, or its database_url) and a time range."""
    import time as _time

    from router.config import resolve_env
    from router.ledger.store import LedgerStore, sqlite_url
    from router.analytics.usage_api import parse_time

    cfg = _load(config)
    try:
        start = parse_time(since, 0.0, "since")
        end = parse_time(until, _time.time() + 1, "until")
    except Exception as exc:
        refuse(str(getattr(exc, "message", exc)))
    return (
        LedgerStore(resolve_env(cfg.storage.database_url, literal_ok=True) or sqlite_url(cfg.storage.data_dir)),
        start,
        end,
    )


def _with_ledger(store: Any, work: Any) -> Any:
    import asyncio

    async def run() -> Any:
        try:
            await store.migrate()
            return await work(store)
        finally:
            await store.dispose()

    return asyncio.run(run())


@alerts_cli.command("test")
def alerts_test_cmd(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="The gateway's config (its alerts.webhooks)."),
) -> None:
    """Send a sample budget alert to every configured webhook, signed and retried as a real one."""
    import asyncio

    from router.accounting.alerts import Alerter
    from router.config import resolve_env
    from router.metrics import Metrics
    from router.accounting.state import MemoryState

    cfg = _load(config)
    if not cfg.alerts.webhooks:
        refuse("no alerts.webhooks in this config: nothing to send")
    alerter = Alerter(cfg.alerts, MemoryState(), None, Metrics(), lambda ref: resolve_env(ref))
    status = asyncio.run(alerter.test())
    typer.echo(f"sample alert to {len(cfg.alerts.webhooks)} webhook(s): {status}")
    raise typer.Exit(0 if status == "sent" else 1)


@export_cli.command("focus")
def export_focus_cmd(
    since: str = typer.Option("24h", help="Start: ISO date/datetime, UNIX seconds, or a duration like 24h or 30d."),
    until: Optional[str] = typer.Option(None, help="End (default: now)."),
    out: Path = typer.Option(..., "--out", help="CSV file to write."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="The gateway's config (for its ledger)."),
) -> None:
    """Write the ledger as FinOps FOCUS 1.2 rows (with 1.3 provider columns) to a CSV file."""
    from router.analytics.focus import export_focus

    store, start, end = _ledger_range(since, until, config)
    totals = _with_ledger(store, lambda s: export_focus(s.lines(start, end), out))
    typer.echo(f"wrote {int(totals['rows'])} FOCUS rows to {out}; BilledCost total ${totals['billed']:.6f}")


@export_cli.command("requests")
def export_requests_cmd(
    since: str = typer.Option("24h", help="Start: ISO date/datetime, UNIX seconds, or a duration like 24h or 30d."),
    until: Optional[str] = typer.Option(None, help="End (default: now)."),
    out: Path = typer.Option(..., "--out", help="File to write."),
    fmt: str = typer.Option(
        "jsonl", "--format", help="jsonl (one record per line), csv, or parquet (needs pyarrow: switchyard[parquet])."
    ),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="The gateway's config (for its ledger)."),
) -> None:
    """Write the spend log: every ledger record of the range with its cost lines (no prompt content)."""
    from router.analytics.spendlog import FORMATS, export_requests

    if fmt not in FORMATS:
        raise typer.BadParameter(f"one of {', '.join(FORMATS)}", param_hint="--format")
    store, start, end = _ledger_range(since, until, config)
    t = _with_ledger(store, lambda s: export_requests(s, start, end, out, fmt))
    unpriced = f", {int(t['unpriced'])} unpriced (not in the cost)" if t["unpriced"] else ""
    typer.echo(
        f"wrote {int(t['records'])} records to {out}; charge ${t['charge_usd']:.6f}, "
        f"cost ${t['cost_usd']:.6f}{unpriced}"
    )
