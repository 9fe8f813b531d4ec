"""How a model's deployments take turns: the balancers (``server.routing_strategy``, LiteLLM's
``router_settings.routing_strategy``) and the live load they read.

A balancer orders one model's deployments for one request: the first leads, the others follow as
fallbacks. Before it does, a deployment with no room is left out: at its ``rpm`` or ``tpm`` for
this minute, or at ``max_parallel_requests`` calls in flight. Deployments with a lower ``order``
come first; higher orders are tried only after them (LiteLLM's ``order``).

What the load holds, and where:
- calls in flight and smoothed latency: this replica's own view (each replica balances what it sends);
- requests and tokens this minute: this replica's, plus the other replicas' as of the last sync
  through the shared state (Redis) every ``USAGE_SYNC_INTERVAL`` seconds. The overshoot of a
  deployment's rpm/tpm across replicas is bounded by what the other replicas sent it in one
  interval (a fixed one-minute window, as the gateway's own rate limits).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable, ClassVar, Sequence

if TYPE_CHECKING:
    from router.registry import Deployment

USAGE_SYNC_INTERVAL = 1.0  # seconds between a replica's exchanges of this minute's usage through the shared state


def _minute(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // 60)


class Load:
    """Live load per deployment id: calls in flight, smoothed latency (seconds per call), and this
    minute's requests and tokens."""

    def __init__(self, alpha: float = 0.2, clock: Callable[[], float] = time.time):
        self.alpha = alpha
        self.clock = clock
        self.in_flight: dict[str, int] = {}
        self.latency: dict[str, float] = {}
        self.window = _minute(clock())
        self.mine: dict[str, list[int]] = {}  # this replica's [requests, tokens] this minute, not yet synced
        self.others: dict[
            str, list[int]
        ] = {}  # every replica's totals as of the last sync (this one's synced part included)

    def _roll(self) -> None:
        now = _minute(self.clock())
        if now != self.window:
            self.window, self.mine, self.others = now, {}, {}

    def started(self, dep_id: str) -> None:
        self._roll()
        self.in_flight[dep_id] = self.in_flight.get(dep_id, 0) + 1
        self.mine.setdefault(dep_id, [0, 0])[0] += 1

    def finished(self, dep_id: str, seconds: float, *, ok: bool) -> None:
        """A call ended: answered (``ok``), failed or cut. A failure counts as slow as it took only when
        it took longer than the smoothed latency (a timeout), so a fast error does not attract traffic."""
        n = self.in_flight.get(dep_id, 0)
        if n > 1:
            self.in_flight[dep_id] = n - 1
        else:
            self.in_flight.pop(dep_id, None)
        prev = self.latency.get(dep_id)
        if ok or (prev is not None and seconds > prev):
            self.latency[dep_id] = seconds if prev is None else prev + self.alpha * (seconds - prev)

    def tokens(self, dep_id: str, n: int) -> None:
        self._roll()
        self.mine.setdefault(dep_id, [0, 0])[1] += n

    def used(self, dep_id: str) -> tuple[int, int]:
        """Requests and tokens this minute, across replicas as far as this one knows."""
        self._roll()
        a, b = self.mine.get(dep_id, (0, 0)), self.others.get(dep_id, (0, 0))
        return a[0] + b[0], a[1] + b[1]

    def has_room(self, dep: "Deployment") -> bool:
        if dep.max_parallel is not None and self.in_flight.get(dep.id, 0) >= dep.max_parallel:
            return False
        if dep.rpm is None and dep.tpm is None:
            return True
        requests, tokens = self.used(dep.id)
        return (dep.rpm is None or requests < dep.rpm) and (dep.tpm is None or tokens < dep.tpm)

    def seconds_to_room(self) -> int:
        return max(1, int((self.window + 1) * 60 - self.clock()) + 1)

    def take_unsynced(self) -> tuple[int, dict[str, tuple[int, int]]]:
        """This minute's usage not yet handed to the shared state (now counted as handed)."""
        self._roll()
        out = {k: (v[0], v[1]) for k, v in self.mine.items() if v[0] or v[1]}
        for k, (r, t) in out.items():
            seen = self.others.setdefault(k, [0, 0])
            seen[0] += r
            seen[1] += t
        self.mine = {}
        return self.window, out

    def give_back(self, window: int, deltas: dict[str, tuple[int, int]]) -> None:
        """The shared state did not take ``deltas``: they are this replica's again, for the next sync."""
        if window != self.window:
            return
        for k, (r, t) in deltas.items():
            mine = self.mine.setdefault(k, [0, 0])
            mine[0] += r
            mine[1] += t
            seen = self.others.get(k)
            if seen is not None:
                seen[0] -= r
                seen[1] -= t

    def synced(self, window: int, totals: dict[str, tuple[int, int]]) -> None:
        """Every replica's totals this minute, as the shared state holds them after this replica's deltas."""
        if window == self.window:
            self.others = {k: [r, t] for k, (r, t) in totals.items()}


class Balancer:
    """Orders one model's deployments (all with room) for one request; the first leads."""

    name: ClassVar[str]

    def __init__(self, load: Load):
        self.load = load

    def order(self, model: str, group: Sequence["Deployment"]) -> list["Deployment"]:
        raise NotImplementedError


class Weighted(Balancer):
    """Each deployment leads in proportion to its weight (smooth weighted round robin, as nginx's
    upstream balancer; LiteLLM's ``simple-shuffle`` draws at random with the same shares). A
    deployment's weight is its ``weight``, else its ``rpm``, else its ``tpm``, else 1, as LiteLLM's."""

    name = "weighted"

    def __init__(self, load: Load):
        super().__init__(load)
        self._current: dict[str, float] = {}  # deployment id -> its running credit

    def order(self, model: str, group: Sequence["Deployment"]) -> list["Deployment"]:
        if len(group) < 2:
            return list(group)
        current, total = self._current, sum(d.weight for d in group)
        for d in group:
            current[d.id] = current.get(d.id, 0.0) + d.weight
        lead = max(group, key=lambda d: current[d.id])
        current[lead.id] -= total
        return [lead, *(d for d in group if d is not lead)]


class LeastBusy(Balancer):
    """The deployment with the fewest calls in flight from this replica leads (ties: configured order)."""

    name = "least-busy"

    def order(self, model: str, group: Sequence["Deployment"]) -> list["Deployment"]:
        busy = self.load.in_flight
        return sorted(group, key=lambda d: busy.get(d.id, 0))


class LowestLatency(Balancer):
    """The deployment with the lowest smoothed latency leads; one not measured yet goes first, so
    every deployment is tried (LiteLLM's ``latency-based-routing``)."""

    name = "latency"

    def order(self, model: str, group: Sequence["Deployment"]) -> list["Deployment"]:
        lat = self.load.latency
        return sorted(group, key=lambda d: lat.get(d.id, -1.0))


class LowestUsage(Balancer):
    """The deployment that has taken the fewest tokens this minute (across replicas) leads, the
    fewest requests breaking ties (LiteLLM's ``usage-based-routing``)."""

    name = "usage"

    def order(self, model: str, group: Sequence["Deployment"]) -> list["Deployment"]:
        used = {d.id: self.load.used(d.id) for d in group}
        return sorted(group, key=lambda d: (used[d.id][1], used[d.id][0]))


BALANCERS: dict[str, type[Balancer]] = {b.name: b for b in (Weighted, LeastBusy, LowestLatency, LowestUsage)}
# LiteLLM's router_settings.routing_strategy names -> Switchyard's
LITELLM_STRATEGIES = {
    "simple-shuffle": "weighted",
    "least-busy": "least-busy",
    "latency-based-routing": "latency",
    "usage-based-routing": "usage",
    "usage-based-routing-v2": "usage",
}
