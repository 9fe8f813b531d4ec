"""Live facts about deployments: circuit breakers, smoothed time to first token and output rate,
output lengths.

A breaker opens after ``threshold`` consecutive retryable failures, stays open ``cooldown``
seconds, then lets one probe through (half-open): a success closes it, a failure re-opens it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class Breaker:
    failures: int = 0
    opened_at: float | None = None
    probing: bool = False


@dataclass
class Health:
    threshold: int = 5
    cooldown: float = 10.0
    alpha: float = 0.2  # smoothing of the moving averages
    _breakers: dict[str, Breaker] = field(default_factory=dict)
    _ttft: dict[str, float] = field(default_factory=dict)
    _out: dict[str, float] = field(default_factory=dict)
    _rate: dict[str, float] = field(default_factory=dict)

    def available(self, deployment: str, now: float | None = None) -> bool:
        b = self._breakers.get(deployment)
        if b is None or b.opened_at is None:
            return True
        now = time.monotonic() if now is None else now
        if now - b.opened_at >= self.cooldown and not b.probing:
            b.probing = True  # half-open: this caller is the probe
            return True
        return False

    def state(self, deployment: str) -> str:
        b = self._breakers.get(deployment)
        if b is None or b.opened_at is None:
            return "closed"
        return "half_open" if b.probing or time.monotonic() - b.opened_at >= self.cooldown else "open"

    def success(self, deployment: str) -> None:
        b = self._breakers.get(deployment)
        if b is not None:
            b.failures, b.opened_at, b.probing = 0, None, False

    def failure(self, deployment: str) -> bool:
        """Record a retryable failure; True when this one opened (or re-opened) the breaker."""
        b = self._breakers.setdefault(deployment, Breaker())
        b.failures += 1
        if b.probing or (b.opened_at is None and b.failures >= self.threshold):
            b.opened_at, b.probing = time.monotonic(), False
            return True
        return False

    def observe_ttft(self, deployment: str, seconds: float) -> None:
        prev = self._ttft.get(deployment)
        ms = seconds * 1000
        self._ttft[deployment] = ms if prev is None else prev + self.alpha * (ms - prev)

    def ttft_ms(self, deployment: str) -> float | None:
        return self._ttft.get(deployment)

    def observe_rate(self, deployment: str, tokens: int, seconds: float) -> None:
        """Output tokens per second after the first token (too short an answer says nothing)."""
        if tokens < 8 or seconds < 0.001:
            return
        rate = tokens / seconds
        prev = self._rate.get(deployment)
        self._rate[deployment] = rate if prev is None else prev + self.alpha * (rate - prev)

    def tokens_per_s(self, deployment: str) -> float | None:
        return self._rate.get(deployment)

    def observe_output(self, model: str, tokens: int) -> None:
        prev = self._out.get(model)
        self._out[model] = tokens if prev is None else prev + self.alpha * (tokens - prev)

    def expected_output(self, model: str) -> float | None:
        return self._out.get(model)
