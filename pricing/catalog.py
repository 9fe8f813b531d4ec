"""Price catalog: litellm's bundled price map as the base, YAML overrides on top.

Pure: built from those documents as data (``pricing.loaders.load_catalog`` reads the files); every
lookup is told the time it prices at.

Prices are per token in USD. Every price carries an effective date: a lookup at time T uses
the newest price whose ``effective_from`` is at or before T, so a price change applies from its
date on and never rewrites what was metered before it.
"""

from __future__ import annotations

import bisect
import functools
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping


from pricing.usage import Usage

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_TIER_RE = re.compile(
    r"^(input_cost_per_token|output_cost_per_token|cache_read_input_token_cost|"
    r"cache_creation_input_token_cost)_above_(\d+)(k?)_tokens$"
)
_TIER_FIELD = {
    "input_cost_per_token": "input",
    "output_cost_per_token": "output",
    "cache_read_input_token_cost": "cache_read",
    "cache_creation_input_token_cost": "cache_write",
}


@dataclass(frozen=True, slots=True)
class Tier:
    """Prices that apply to the whole request once its prompt exceeds ``above_tokens``."""

    above_tokens: int
    input: float | None = None
    output: float | None = None
    cache_read: float | None = None
    cache_write: float | None = None
    inclusive: bool = False  # the tier starts AT the threshold (xAI bills that way)


@functools.lru_cache(maxsize=4096)
def _version(source: str, effective_from: datetime) -> str:
    """A price's version label (every request's ledger line carries it): a catalog holds few."""
    return f"{source}@{effective_from.date().isoformat()}"


@dataclass(frozen=True, slots=True)
class ModelPrice:
    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None
    reasoning: float | None = None  # None: reasoning tokens are billed as output
    tiers: tuple[Tier, ...] = ()
    effective_from: datetime = EPOCH
    source: str = "litellm"
    provider: str | None = None
    mode: str = "chat"
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None

    @property
    def version(self) -> str:
        return _version(self.source, self.effective_from)


@dataclass(frozen=True, slots=True)
class Cost:
    """The API cost of one request's usage at one price. ``lines`` maps a meter to USD."""

    total: float
    lines: Mapping[str, float]
    price: ModelPrice


class PricingError(ValueError):
    pass


def _f(v: Any) -> float | None:
    if v is None:
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def price_from_litellm_entry(
    entry: Mapping[str, Any], *, source: str, effective_from: datetime = EPOCH, rules: Mapping[str, Any] | None = None
) -> ModelPrice | None:
    """A ModelPrice from one entry in litellm's map format; None when it has no token prices.

    ``rules`` are provider-level pricing rules (pricing/data/overrides.yaml ``providers``):
    ``default_cache_read_ratio`` (cached input billed at this share of input when the entry
    names no cache price) and ``inclusive_thresholds`` (long-context tiers start at the threshold).
    """
    inp, out = _f(entry.get("input_cost_per_token")), _f(entry.get("output_cost_per_token"))
    if inp is None and out is None:
        return None
    rules = rules or {}
    tiers: dict[int, dict[str, float]] = {}
    for key, value in entry.items():
        m = _TIER_RE.match(key)
        if m and _f(value) is not None:
            tiers.setdefault(int(m.group(2)) * (1000 if m.group(3) else 1), {})[_TIER_FIELD[m.group(1)]] = float(value)
    cache_read = _f(entry.get("cache_read_input_token_cost"))
    if cache_read is None and inp is not None and rules.get("default_cache_read_ratio") is not None:
        cache_read = inp * float(rules["default_cache_read_ratio"])
    inclusive = bool(rules.get("inclusive_thresholds"))
    return ModelPrice(
        input=inp or 0.0,
        output=out or 0.0,
        cache_read=cache_read,
        cache_write=_f(entry.get("cache_creation_input_token_cost")),
        reasoning=_f(entry.get("output_cost_per_reasoning_token")),
        tiers=tuple(Tier(above_tokens=k, inclusive=inclusive, **v) for k, v in sorted(tiers.items())),
        effective_from=effective_from,
        source=source,
        provider=entry.get("litellm_provider"),
        mode=str(entry.get("mode") or "chat"),
        max_input_tokens=entry.get("max_input_tokens") if isinstance(entry.get("max_input_tokens"), int) else None,
        max_output_tokens=entry.get("max_output_tokens") if isinstance(entry.get("max_output_tokens"), int) else None,
    )


def _parse_date(value: Any, where: str) -> datetime:
    if isinstance(value, datetime):
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(str(value))
        except ValueError as exc:
            raise PricingError(f"{where}: effective_from {value!r} is not an ISO date") from exc
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


@dataclass
class PriceCatalog:
    """Model name -> dated price history. Build with :meth:`from_documents`; immutable once built."""

    _history: dict[str, list[ModelPrice]] = field(default_factory=dict)

    @classmethod
    def from_documents(
        cls,
        price_map: Mapping[str, Any],
        overrides: Iterable[tuple[str, Mapping[str, Any]]] = (),
        *,
        source: str = "litellm",
    ) -> "PriceCatalog":
        """litellm's price map (its JSON, parsed), then each (name, overrides document) on top, in order."""
        cat = cls()
        docs = list(overrides)
        rules: dict[str, Any] = {}
        for _, doc in docs:
            rules.update(doc.get("providers") or {})
        for name, entry in price_map.items():
            if name == "sample_spec" or not isinstance(entry, dict):
                continue
            price = price_from_litellm_entry(entry, source=source, rules=rules.get(str(entry.get("litellm_provider"))))
            if price is not None:
                cat._history[name] = [price]
        for doc_name, doc in docs:
            cat.add_overrides(doc, source=f"overrides:{doc_name}")
        return cat

    def add_overrides(self, doc: Mapping[str, Any], *, source: str) -> None:
        """Add price versions from an overrides document (see pricing/data/overrides.yaml)."""
        models = doc.get("models") or {}
        if not isinstance(models, Mapping):
            raise PricingError(f"{source}: 'models' must be a mapping of model name to prices")
        for name, versions in models.items():
            for i, ver in enumerate(versions if isinstance(versions, list) else [versions]):
                where = f"{source}: models.{name}[{i}]"
                if not isinstance(ver, Mapping):
                    raise PricingError(f"{where}: expected a mapping")
                entry = dict(ver)
                for per_m, per_tok in (
                    ("input_per_mtok", "input_cost_per_token"),
                    ("output_per_mtok", "output_cost_per_token"),
                    ("cache_read_per_mtok", "cache_read_input_token_cost"),
                    ("cache_write_per_mtok", "cache_creation_input_token_cost"),
                    ("reasoning_per_mtok", "output_cost_per_reasoning_token"),
                ):
                    if per_m in entry:
                        entry[per_tok] = float(entry.pop(per_m)) / 1e6
                when = _parse_date(entry.pop("effective_from", EPOCH), where)
                price = price_from_litellm_entry(entry, source=source, effective_from=when)
                if price is None:
                    raise PricingError(f"{where}: needs input and output prices")
                self.add(name, price)

    def add(self, name: str, price: ModelPrice) -> None:
        hist = self._history.setdefault(name, [])
        keys = [p.effective_from for p in hist]
        idx = bisect.bisect_right(keys, price.effective_from)
        if idx and hist[idx - 1].effective_from == price.effective_from:
            hist[idx - 1] = price  # same date: the later file wins
        else:
            hist.insert(idx, price)

    def history(self, name: str) -> list[ModelPrice]:
        return list(self._history.get(name, ()))

    def key_for(self, model: str, base_model: str | None = None) -> str | None:
        """The catalog key for a deployment's ``provider/name`` (or its declared base model)."""
        provider, sep, name = model.partition("/")
        for key in (base_model, model, name if sep else None, f"{provider}/{name.rsplit('/', 1)[-1]}" if sep else None):
            if key and key in self._history:
                return key
        return None

    def __contains__(self, name: str) -> bool:
        return name in self._history

    def __len__(self) -> int:
        return len(self._history)

    def price(self, name: str, at: datetime) -> ModelPrice | None:
        """The price in force for ``name`` at ``at``; None when unpriced."""
        hist = self._history.get(name)
        if not hist:
            return None
        if len(hist) == 1:
            return hist[0] if hist[0].effective_from <= at else None
        idx = bisect.bisect_right([p.effective_from for p in hist], at)
        return hist[idx - 1] if idx else None


def estimate_usd(
    price: ModelPrice, prompt_tokens: int, output_tokens: int, cached_tokens: int = 0, reasoning: int = 0
) -> float:
    """``cost_of(...).total`` for an estimate, without building the cost lines when nothing but the
    input and output rates applies (the routing decision prices every candidate this way).
    ``reasoning``: reasoning tokens billed on top of the ``output_tokens`` of the visible answer."""
    if not price.tiers and not cached_tokens and not reasoning:
        return prompt_tokens * price.input + output_tokens * price.output
    return cost_of(
        Usage(
            prompt_tokens,
            output_tokens + reasoning,
            cached_tokens=min(cached_tokens, prompt_tokens),
            reasoning_tokens=reasoning,
        ),
        price,
    ).total


def cost_of(usage: Usage, price: ModelPrice) -> Cost:
    """API cost of ``usage`` at ``price``.

    OpenAI conventions: ``prompt_tokens`` includes cached (read) and cache-write tokens;
    ``completion_tokens`` includes reasoning tokens. A tier whose threshold the prompt exceeds
    reprices the whole request, as providers bill long-context requests.
    """
    inp, out, cread, cwrite = price.input, price.output, price.cache_read, price.cache_write
    for tier in price.tiers:
        if usage.prompt_tokens > tier.above_tokens or (tier.inclusive and usage.prompt_tokens == tier.above_tokens):
            inp = tier.input if tier.input is not None else inp
            out = tier.output if tier.output is not None else out
            cread = tier.cache_read if tier.cache_read is not None else cread
            cwrite = tier.cache_write if tier.cache_write is not None else cwrite
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    written = min(usage.cache_write_tokens, usage.prompt_tokens - cached)
    fresh = usage.prompt_tokens - cached - written
    reasoning = min(usage.reasoning_tokens, usage.completion_tokens)
    lines = {
        "input": fresh * inp,
        "cached_input": cached * (cread if cread is not None else inp),
        "cache_write": written * (cwrite if cwrite is not None else inp),
        "output": (usage.completion_tokens - reasoning) * out,
        "reasoning": reasoning * (price.reasoning if price.reasoning is not None else out),
    }
    return Cost(total=sum(lines.values()), lines=lines, price=price)
