"""Budget alerts: a budget crossing a threshold (default 50, 80 and 100% of its limit), or forecast
to exceed it, raises one alert per threshold and period across all replicas, delivered to webhooks.

- **When**: as each request's charge settles (router.accounting.limits), against the spend that request saw
  plus its own charge. The check is by level, not by edge: a budget at or above a threshold that
  has not alerted yet alerts on its next settlement, so two replicas crossing together (each
  seeing the other's spend late) cannot both miss it.
- **Once**: the first replica to claim ``alert:<budget>:<threshold>`` in the shared state (a
  lock that lives until the period ends) sends it; the others skip it. Each replica remembers its
  claims, so a budget above a threshold costs one state round trip per replica, not per request.
- **Delivery**: off the request path, as a task: a JSON body signed with HMAC-SHA256
  (``x-switchyard-timestamp``, ``x-switchyard-signature: v1=<hex of hmac(secret, timestamp.body)>``),
  or Slack's ``{"text": ...}``; each webhook retried with exponential backoff (``retries``,
  ``backoff``); when the retries run out the alert is dead-lettered (``status: dead`` in the
  ``alerts`` table, the history ``GET /admin/alerts`` and the dashboard's Budgets view show).
  With no webhook configured an alert is logged and kept in the history (``status: logged``).
- **Exhausted**: a hard budget never spends past its limit, so its 100% alert is raised when a
  request is refused for lack of room (``exhausted: true``).
- **Forecast**: once ``forecast_after`` of the period has passed, the run-rate (spend x period /
  elapsed) over the limit raises one ``forecast`` alert per budget and period.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from typing import TYPE_CHECKING, Any, Callable

import orjson

from router.config_sections import AlertsConfig
from router.accounting.budgets import ADVERB
from router.accounting.state import NANO, StateStore

if TYPE_CHECKING:
    from router.ledger.store import LedgerStore
    from router.accounting.budgets import BudgetKey
    from router.metrics import Metrics

log = logging.getLogger("switchyard.alerts")
MAX_PENDING = 1000  # alerts being raised or delivered at once; beyond, a new one waits for a later settlement


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return "v1=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def slack_text(alert: dict[str, Any]) -> str:
    b = alert["budget"]
    if alert.get("exhausted"):
        what = "exhausted: a request was refused for lack of room"
    else:
        what = (
            f"forecast to reach ${alert['forecast_usd']:.2f}"
            if alert["kind"] == "forecast"
            else f"at {alert['threshold_pct']}%"
        ) + f" (${alert['spent_usd']:.4f} spent)"
    return (
        f"Switchyard budget alert: the {ADVERB.get(b['period'], b['period'])} {b['scope']} budget '{b['id']}' of ${b['limit_usd']:.2f} "
        f"is {what}{' [test]' if alert['kind'] == 'test' else ''}."
    )


class Alerter:
    def __init__(
        self,
        cfg: AlertsConfig,
        state: StateStore,
        ledger: "LedgerStore | None",
        metrics: "Metrics",
        resolve: Callable[[str | None], str | None],
    ):
        self.cfg = cfg
        self.state = state
        self.ledger = ledger
        self.metrics = metrics
        self.thresholds = sorted(set(cfg.thresholds))
        self.hooks = [
            (resolve(h.url) if h.url.startswith("os.environ/") else h.url, resolve(h.secret), h.format)
            for h in cfg.webhooks
        ]
        self._claimed: set[str] = set()  # alert claims this replica has made or seen taken
        self._tasks: set[asyncio.Task[None]] = set()

    # -- raising ----------------------------------------------------------------------------------------
    def exhausted(self, key: "BudgetKey", now: float) -> None:
        """A request was refused: the budget has no room left, so its 100% alert is due (the lower ones
        come from the settlements, which say what was spent; reservations may hold the rest)."""
        if 100 in self.thresholds:
            self._due(key, "threshold", 100, int(key.rule.usd * NANO), now, True)

    def observe(self, key: "BudgetKey", total_nano: int, now: float) -> None:
        """A settlement on ``key`` brought it to ``total_nano`` (as this replica knows it): raise what is due."""
        limit = key.rule.usd * NANO
        for t in self.thresholds:
            if total_nano < limit * t / 100:
                break
            self._due(key, "threshold", t, total_nano, now)
        if self.cfg.forecast:
            elapsed = now - key.start
            span = key.end - key.start
            if elapsed >= self.cfg.forecast_after * span and total_nano * span / max(elapsed, 1.0) > limit:
                self._due(key, "forecast", None, total_nano, now)

    def _due(
        self, key: "BudgetKey", kind: str, threshold: int | None, total_nano: int, now: float, exhausted: bool = False
    ) -> None:
        claim = f"alert:{key.key}:{threshold if kind == 'threshold' else kind}"
        if claim in self._claimed or len(self._tasks) >= MAX_PENDING:
            return
        self._claimed.add(claim)
        if len(self._claimed) > 100_000:  # the periods ended long ago for most of them
            self._claimed = {claim}
        self._spawn(self._raise(claim, key, kind, threshold, total_nano, now, exhausted))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _raise(
        self,
        claim: str,
        key: "BudgetKey",
        kind: str,
        threshold: int | None,
        total_nano: int,
        now: float,
        exhausted: bool,
    ) -> None:
        try:  # once across replicas: the first claim wins, until a day past the period's end
            won = await self.state.lock(claim, max(60.0, key.end - now + 86400))
        except Exception as exc:  # noqa: BLE001 - the state is down: try again on a later settlement
            log.debug("alert claim failed: %s", type(exc).__name__)
            self._claimed.discard(claim)
            return
        if won is None:
            return
        spent = None if exhausted else total_nano / NANO  # refused: the spend is the state's, not known here
        r = key.rule
        alert = {
            "id": "alert_" + secrets.token_hex(12),
            "object": "budget.alert",
            "kind": kind,
            "created": now,
            "threshold_pct": threshold,
            "budget": {
                "scope": r.scope,
                "id": key.scope_id,
                "period": r.period,
                "limit_usd": r.usd,
                "soft": r.soft,
                "period_start": key.start,
                "period_end": key.end,
            },
            "spent_usd": spent,
            "exhausted": exhausted,
            "forecast_usd": None if spent is None else spent * (key.end - key.start) / max(now - key.start, 1.0),
        }
        await self.deliver(alert, key.key)

    # -- delivering -----------------------------------------------------------------------------------
    async def deliver(self, alert: dict[str, Any], budget: str) -> str:
        """Record the alert, send it to every webhook with retries; its final status (sent | dead)."""
        await self._record(alert, budget, "pending", 0, None)
        attempts, error = 0, None
        status = "sent"
        for url, secret, fmt in self.hooks:
            ok, n, error = await self._send(url, secret, fmt, alert)
            attempts += n
            if not ok:
                status = "dead"
        if not self.hooks:  # the history (and the log) is where it goes
            status = "logged"
            log.warning("budget alert: %s", slack_text(alert))
        self.metrics.alerts.labels(alert["kind"], status).inc()
        if status == "dead":
            log.warning("budget alert %s dead-lettered after %d attempts: %s", alert["id"], attempts, error)
        await self._record(alert, budget, status, attempts, error)
        return status

    async def _send(
        self, url: str | None, secret: str | None, fmt: str, alert: dict[str, Any]
    ) -> tuple[bool, int, str | None]:
        import aiohttp

        if not url:
            return False, 0, "the webhook URL's variable is not set"
        body = orjson.dumps({"text": slack_text(alert)} if fmt == "slack" else alert)
        delay, error = self.cfg.backoff, None
        timeout = aiohttp.ClientTimeout(total=self.cfg.timeout)
        for attempt in range(1 + self.cfg.retries):
            ts = str(int(time.time()))
            headers = {
                "content-type": "application/json",
                "user-agent": "switchyard-alerts",
                "x-switchyard-timestamp": ts,
                "x-switchyard-alert-id": alert["id"],
            }
            if secret:
                headers["x-switchyard-signature"] = sign(secret, ts, body)
            try:
                async with aiohttp.ClientSession(timeout=timeout) as s, s.post(url, data=body, headers=headers) as resp:
                    if 200 <= resp.status < 300:
                        return True, attempt + 1, None
                    error = f"HTTP {resp.status}"
            except Exception as exc:  # noqa: BLE001 - unreachable, refused, timed out: retried
                error = type(exc).__name__
            if attempt < self.cfg.retries:
                await asyncio.sleep(delay)
                delay *= 2
        return False, 1 + self.cfg.retries, error

    async def _record(self, alert: dict[str, Any], budget: str, status: str, attempts: int, error: str | None) -> None:
        if self.ledger is None:
            return
        try:
            await self.ledger.put_alert(
                {
                    "id": alert["id"],
                    "ts": alert["created"],
                    "kind": alert["kind"],
                    "budget": budget[:300],
                    "threshold": alert["threshold_pct"],
                    "payload": orjson.dumps(alert).decode(),
                    "status": status,
                    "attempts": attempts,
                    "last_error": (error or "")[:300] or None,
                    "updated_at": time.time(),
                }
            )
        except Exception as exc:  # noqa: BLE001 - the history is best effort; delivery goes on
            log.warning("could not record budget alert %s: %s", alert["id"], type(exc).__name__)

    async def test(self) -> str:
        """A sample alert to every webhook (``switchyard alerts test``): its final status."""
        now = time.time()
        alert = {
            "id": "alert_" + secrets.token_hex(12),
            "object": "budget.alert",
            "kind": "test",
            "created": now,
            "threshold_pct": 80,
            "budget": {
                "scope": "tenant",
                "id": "example",
                "period": "month",
                "limit_usd": 100.0,
                "soft": False,
                "period_start": now,
                "period_end": now,
            },
            "spent_usd": 80.0,
            "forecast_usd": 80.0,
        }
        return await self.deliver(alert, "test")

    async def drain(self, timeout: float = 5.0) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
