"""Cost by user and tag: who a request is for and what it is part of, with bounded cardinality.

A request's **user** is OpenAI's ``user`` field (``metadata.user_id`` on the Messages API); its
**tags** are the values of the ``metadata`` keys the operator lists in ``attribution.tags`` (for
example ``feature``, ``team``, ``env``), or set by the ``x-switchyard-tags: feature=search,team=core``
header (which wins); keys not listed are ignored. Both reach the ledger (``end_user`` and ``tags``
columns), the usage API (``group_by=user``, ``group_by=tag:feature``; ``user=``, ``tag=feature=...``
filters), FOCUS's ``Tags`` column, and budgets and rate limits scoped to a user or a tag value.

Cardinality is bounded: per tenant and UTC day, at most ``attribution.max_values`` distinct users,
and as many distinct values of each tag; the rest are recorded as ``(other)``. With Redis the bound
is global (one set per tenant, day and dimension, admitted by a script), else per process. A value a
budget or rate-limit rule names is always kept. Each replica remembers the values it has seen
admitted today, so only a value new to it costs a Redis round trip. Users and tags are never
Prometheus labels.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from router.config_sections import AttributionConfig
from router.accounting.state import StateStore

log = logging.getLogger("switchyard.attribution")
OTHER = "(other)"
MAX_VALUE_CHARS = 128
HEADER = "x-switchyard-tags"


@dataclass(frozen=True, slots=True)
class Attributes:
    user: str | None
    tags: dict[str, str] | None


def _clip(value: Any) -> str | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value[:MAX_VALUE_CHARS] if value else None


def parse_header(text: str | None, keys: frozenset[str]) -> dict[str, str]:
    """``key=value,key=value``; keys not configured (and malformed parts) are ignored."""
    out: dict[str, str] = {}
    for part in (text or "").split(","):
        k, sep, v = part.partition("=")
        k, value = k.strip(), _clip(v)
        if sep and k in keys and value is not None:
            out[k] = value
    return out


class Attribution:
    def __init__(self, cfg: AttributionConfig, state: StateStore, exempt: Iterable[tuple[str, str]] = ()):
        self.keys = frozenset(cfg.tags)
        self.max_values = cfg.max_values
        self.state = state
        self.exempt = frozenset(
            exempt
        )  # (dimension, value) pairs a rule names: "user", "alice"; "tag:feature", "search"
        self._day = -1
        self._seen: dict[tuple[str, str], set[str]] = {}  # (tenant, dimension) -> values admitted today
        self._full: set[tuple[str, str]] = set()  # known full today (local counting only)

    def extract(self, body: Mapping[str, Any], header: str | None) -> tuple[str | None, dict[str, str]]:
        user = _clip(body.get("user"))
        tags: dict[str, str] = {}
        if self.keys:
            meta = body.get("metadata")
            if isinstance(meta, dict):
                for k in self.keys:
                    value = _clip(meta.get(k))
                    if value is not None:
                        tags[k] = value
            if header:
                tags.update(parse_header(header, self.keys))
        return user, tags

    async def resolve(self, tenant: str, body: Mapping[str, Any], header: str | None) -> Attributes | None:
        """The request's user and tags, each value beyond the day's bound as ``(other)``; None: neither."""
        user, tags = self.extract(body, header)
        if user is None and not tags:
            return None
        day = int(time.time() // 86400)
        if day != self._day:
            self._day, self._seen, self._full = day, {}, set()
        if user is not None:
            user = await self._bounded(tenant, "user", user, day)
        for k, v in tags.items():
            tags[k] = await self._bounded(tenant, "tag:" + k, v, day)
        return Attributes(user, tags or None)

    async def _bounded(self, tenant: str, dim: str, value: str, day: int) -> str:
        seen = self._seen.setdefault((tenant, dim), set())
        if value in seen or (dim, value) in self.exempt:
            return value
        if not self.state.shared:  # this process's own count is the bound
            if len(seen) >= self.max_values:
                return OTHER
            seen.add(value)
            return value
        try:
            ok = await self.state.distinct_add(f"card:{tenant}:{dim}:{day}", value, self.max_values, 2 * 86400)
        except Exception as exc:  # noqa: BLE001 - Redis down: count locally until it answers
            log.debug("cardinality check failed: %s", type(exc).__name__)
            ok = len(seen) < self.max_values
        if not ok:
            return OTHER
        if len(seen) < self.max_values:  # (a replica remembers at most the bound's worth)
            seen.add(value)
        return value


def rule_values(budgets: Iterable[Any], rates: Iterable[Any]) -> list[tuple[str, str]]:
    """The (dimension, value) pairs budget and rate-limit rules name: always recorded as themselves."""
    out = []
    for r in (*budgets, *rates):
        if r.id == "*" or r.scope not in ("user", "tag"):
            continue
        if r.scope == "user":
            out.append(("user", r.id))
        else:
            k, _, v = r.id.partition("=")
            if v != "*":
                out.append(("tag:" + k, v))
    return out
