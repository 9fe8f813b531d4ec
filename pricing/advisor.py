"""Build or buy: what serving observed traffic would cost three ways, and who keeps which margin.

For one model's traffic (tokens by type over a range, and its hour-of-day shape) and a stack
profile (GPU economics and throughput per model class), three ways to get the tokens:

- **buy**: keep paying the token API its list price (what the ledger recorded);
- **rent**: serve it on rented GPUs, enough to carry the busiest hour of the day at the profile's
  utilisation, paid around the clock;
- **own**: the same GPUs bought, in whole servers, at their all-in cost per GPU-hour (straight-line
  depreciation, power with the facility's PUE, colocation).

Each way gets its cost per day and per million tokens, the break-even daily volume (where its
cost curve crosses the API's at the observed mix and shape), and the stack waterfall of the price
paid (slices that sum to it exactly). Sensitivity: utilisation, the GPU rental price, and a yearly
API price decline, which dates the last moment owned hardware still pays back within its
depreciation period. Pure: the caller passes the traffic, the profile and ``now``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pricing.attribution import attribute
from pricing.profiles import GpuHour, StackProfile
from pricing.usage import Usage

DAY_HOURS = 24.0
UTILISATIONS = (0.3, 0.45, 0.6, 0.75, 0.9)
RENTAL_FACTORS = (0.5, 0.75, 1.0, 1.25, 1.5)


@dataclass(frozen=True)
class Traffic:
    """One model's observed traffic over ``days`` days (the ledger's sums)."""

    model: str
    model_class: str
    days: float
    prompt_tokens: int  # cached tokens included, as in OpenAI's usage
    cached_tokens: int
    completion_tokens: int
    hourly: tuple[float, ...]  # 24 shares of the tokens by hour of day (UTC), summing to 1
    api_cost_usd: float | None  # what the token API charged for it at list price; None: unpriced
    self_hosted: bool = False  # served on the operator's own GPUs already
    gpu_hours: float = 0.0  # the ledger's GPU-hours for it (self-hosted traffic)
    quality: float | None = None

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def gpu_seconds(prompt_uncached: float, completion: float, profile: StackProfile, model_class: str) -> float:
    """GPU time the tokens take at full speed (before utilisation)."""
    tp = profile.throughput[model_class]
    return prompt_uncached / tp.prefill_tokens_per_s + completion / tp.decode_tokens_per_s


@dataclass(frozen=True)
class Fleet:
    """GPUs provisioned for a day's traffic: enough for the busiest hour at ``utilisation``."""

    gpus: int
    work_gpu_hours_per_day: float  # GPU time the tokens take at full speed
    utilisation_cap: float  # the share of a GPU-hour that does useful work at the busiest hour
    observed_utilisation: float  # useful work / provisioned GPU time over the whole day
    scale_per_gpu: float  # how many times the traffic one GPU carries at the busiest hour (0: no work)


def fleet(t: Traffic, profile: StackProfile, utilisation: float, whole: int = 1) -> Fleet:
    """The fleet for the traffic, in multiples of ``whole`` GPUs (a server when owned)."""
    per_day = 1.0 / t.days
    work = (
        gpu_seconds(
            (t.prompt_tokens - t.cached_tokens) * per_day, t.completion_tokens * per_day, profile, t.model_class
        )
        / 3600.0
    )
    peak_share = max(t.hourly) if t.hourly and sum(t.hourly) > 0 else 1.0 / DAY_HOURS
    peak = work * peak_share  # GPU-hours of work in the busiest hour
    needed = peak / utilisation
    gpus = max(whole, math.ceil(needed / whole - 1e-9) * whole) if work > 0 else 0
    observed = work / (gpus * DAY_HOURS) if gpus else 0.0
    return Fleet(gpus, work, utilisation, observed, utilisation / peak if peak > 0 else 0.0)


def self_hosted_slices(
    gpu_hours: float, econ: GpuHour, profile: StackProfile, licence: float, rental: float | None
) -> dict[str, float]:
    """The waterfall of serving on GPUs: rented (``rental`` per GPU-hour, the cloud keeps its margin)
    or owned (``rental`` None: no cloud margin). The slices sum to what the operator pays."""
    chips = gpu_hours * econ.chips
    chip_margin = chips * profile.chips.vendor_gross_margin
    return {
        "application_margin": 0.0,
        "paas_margin": 0.0,
        "model_lab": licence,
        "iaas_margin": gpu_hours * (rental - econ.all_in) if rental is not None else 0.0,
        "electricity": gpu_hours * econ.electricity,
        "colocation": gpu_hours * econ.colocation,
        "other_capex": gpu_hours * econ.other_capex,
        "chip_vendor_cost": chips - chip_margin,
        "chip_vendor_margin": chip_margin,
    }


def _per_mtok(cost: float | None, tokens: float) -> float | None:
    return None if cost is None or tokens <= 0 else cost / tokens * 1e6


def _option(cost_day: float | None, tokens_day: float, slices: dict[str, float] | None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"usd_per_day": cost_day, "usd_per_mtok": _per_mtok(cost_day, tokens_day), **extra}
    if slices is not None:
        out["slices"] = slices
        out["slices_total"] = math.fsum(slices.values())
    return out


def break_even(
    api_per_day: float, licence_per_day: float, unit_cost_per_day: float, unit_capacity: float
) -> float | None:
    """The traffic scale (1 = observed) at which serving it yourself costs what the API charges.

    API cost is linear in scale (``api_per_day`` x s); the self-hosted cost is ``unit_cost_per_day``
    for each unit (a GPU, or a server) started, each carrying ``unit_capacity`` of scale, plus the
    licence (linear). With the first unit the curves cross at s = unit cost / (API - licence) if
    that scale fits in one unit; otherwise, or when the licence alone costs what the API does, they
    never cross and the API stays cheaper at every volume (None)."""
    margin = api_per_day - licence_per_day
    if margin <= 0 or unit_capacity <= 0:
        return None
    s = unit_cost_per_day / margin
    return s if s <= unit_capacity * (1 + 1e-12) else None


def payback_deadline_years(api_per_year: float, own_per_year: float, years: float, decline: float) -> float | None:
    """How long from now owned hardware bought then still pays back within ``years`` (its
    depreciation period), when API prices fall by ``decline`` a year (0.1: to a tenth each year;
    1: flat). Pays back: the API bill it avoids over those years is at least what owning costs over
    them. None: it does not pay back even if bought now; ``math.inf``: it always does (flat prices)."""
    need = own_per_year * years
    if need <= 0:
        return math.inf  # owning costs nothing (no traffic to serve): it always pays back
    if decline >= 1.0 - 1e-12:
        return math.inf if api_per_year * years >= need else None
    avoided_now = api_per_year * (decline**years - 1) / math.log(decline)  # integral of f^t from 0 to years
    if avoided_now < need:
        return None
    return math.log(need / avoided_now) / math.log(decline)


def advise(
    t: Traffic,
    profile: StackProfile,
    *,
    utilisation: float | None = None,
    rental: float | None = None,
    decline: float = 0.1,
    now: float = 0.0,
) -> dict[str, Any]:
    """Buy, rent and own for one model's traffic, with break-even, waterfalls and sensitivity."""
    util = utilisation if utilisation is not None else profile.utilisation
    econ = profile.economics()
    rate = rental if rental is not None else econ.rental
    tokens_day = t.tokens / t.days
    licence_day = tokens_day * profile.model_lab.licence_usd_per_mtok / 1e6
    api_day = t.api_cost_usd / t.days if t.api_cost_usd is not None else None

    usage_day = Usage(
        prompt_tokens=round(t.prompt_tokens / t.days),
        completion_tokens=round(t.completion_tokens / t.days),
        cached_tokens=round(t.cached_tokens / t.days),
    )
    buy_slices = None
    if api_day is not None:
        buy_slices = dict(
            attribute(usage_day, charge=api_day, api_cost=api_day, profile=profile, model_class=t.model_class).slices
        )
    rented = fleet(t, profile, util)
    owned = fleet(t, profile, util, whole=profile.server.gpus_per_server)
    rent_day = rented.gpus * DAY_HOURS * rate + licence_day
    own_day = owned.gpus * DAY_HOURS * econ.all_in + licence_day
    # the ledger's way: GPU time at the profile's utilisation, paid per GPU-hour used
    work_hours = rented.work_gpu_hours_per_day / util
    metered_day = work_hours * rate + licence_day

    unit_scale = rented.scale_per_gpu
    per_server = unit_scale * profile.server.gpus_per_server
    be_rent = be_own = None
    if api_day is not None:
        be_rent = break_even(api_day, licence_day, DAY_HOURS * rate, unit_scale)
        be_own = break_even(api_day, licence_day, DAY_HOURS * econ.all_in * profile.server.gpus_per_server, per_server)

    years = profile.server.depreciation_years
    deadline = None
    if api_day is not None:
        deadline = payback_deadline_years(api_day * 365, own_day * 365, years, decline)

    def at(util_cap: float, rate_: float) -> dict[str, float | None]:
        r = fleet(t, profile, util_cap)
        o = fleet(t, profile, util_cap, whole=profile.server.gpus_per_server)
        return {
            "rent_usd_per_mtok": _per_mtok(r.gpus * DAY_HOURS * rate_ + licence_day, tokens_day),
            "own_usd_per_mtok": _per_mtok(o.gpus * DAY_HOURS * econ.all_in + licence_day, tokens_day),
            "rent_gpus": r.gpus,
            "own_gpus": o.gpus,
        }

    return {
        "model": t.model,
        "model_class": t.model_class,
        "quality": t.quality,
        "self_hosted": t.self_hosted,
        "days": t.days,
        "tokens_per_day": {
            "prompt": t.prompt_tokens / t.days,
            "cached": t.cached_tokens / t.days,
            "completion": t.completion_tokens / t.days,
            "total": tokens_day,
        },
        "hourly_share": list(t.hourly),
        "peak_hour_utc": max(range(len(t.hourly)), key=lambda h: t.hourly[h]) if t.hourly else None,
        "throughput": profile.throughput[t.model_class].model_dump(),
        "buy": _option(api_day, tokens_day, buy_slices, unpriced=api_day is None),
        "rent": _option(
            rent_day,
            tokens_day,
            self_hosted_slices(rented.gpus * DAY_HOURS, econ, profile, licence_day, rate),
            gpus=rented.gpus,
            utilisation=rented.observed_utilisation,
            usd_per_gpu_hour=rate,
            break_even_tokens_per_day=be_rent * tokens_day if be_rent is not None else None,
            metered_usd_per_day=metered_day,
            metered_gpu_hours_per_day=work_hours,
        ),
        "own": _option(
            own_day,
            tokens_day,
            self_hosted_slices(owned.gpus * DAY_HOURS, econ, profile, licence_day, None),
            gpus=owned.gpus,
            servers=owned.gpus // profile.server.gpus_per_server,
            utilisation=owned.observed_utilisation,
            usd_per_gpu_hour=econ.all_in,
            capex_usd=owned.gpus // profile.server.gpus_per_server * profile.server.capex_usd,
            break_even_tokens_per_day=be_own * tokens_day if be_own is not None else None,
            payback_deadline_years=deadline if deadline is None or math.isfinite(deadline) else None,
            payback_always=deadline == math.inf,
            buy_by=(now + deadline * 365.25 * 86400)
            if deadline is not None and math.isfinite(deadline) and deadline >= 0
            else None,
        ),
        "sensitivity": {
            "utilisation": [{"utilisation": u, **at(u, rate)} for u in UTILISATIONS],
            "rental": [{"usd_per_gpu_hour": rate * f, **at(util, rate * f)} for f in RENTAL_FACTORS],
            "api_price_decline_per_year": decline,
        },
    }


__all__ = [
    "Fleet",
    "Traffic",
    "advise",
    "break_even",
    "fleet",
    "gpu_seconds",
    "payback_deadline_years",
    "self_hosted_slices",
]
