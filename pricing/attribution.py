"""Cost and margin attribution: one request's dollars split across the token-factory stack.

Layers, top down: application (the operator: Switchyard's user), PaaS (the token API), model
lab, IaaS (the GPU cloud) and chips (the accelerator vendor), plus the pass-through costs the
GPU cloud pays (electricity and colocation) and the rest of the server's depreciation.

Each layer has revenue, cost and margin (negative margins are losses). The *slices* partition
the tenant's charge (summed exactly, ``math.fsum``): application margin + PaaS margin + model lab take + IaaS margin +
electricity + colocation + other server capex + chip vendor cost + chip vendor margin = charge.

For API-served models the upstream price is known and everything beneath it is estimated from
the stack profile (``estimated: True``). For self-hosted models the serving cost is built bottom
up from GPU-hours and there is no third-party PaaS (its margin is zero).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

from pricing.profiles import StackProfile
from pricing.usage import Usage

LAYERS = ("application", "paas", "model_lab", "iaas", "chips")
SLICES = (
    "application_margin",
    "paas_margin",
    "model_lab",
    "iaas_margin",
    "electricity",
    "colocation",
    "other_capex",
    "chip_vendor_cost",
    "chip_vendor_margin",
)


class Layer(NamedTuple):
    """One layer's share of a request: an immutable tuple (five per priced request)."""

    name: str
    revenue: float
    cost: float
    estimated: bool

    @property
    def margin(self) -> float:
        return self.revenue - self.cost


@dataclass(frozen=True, slots=True)
class Waterfall:
    charge: float
    api_cost: float
    gpu_hours: float
    model_class: str
    serving: Literal["api", "self_hosted"]
    layers: tuple[Layer, ...]
    slices: dict[str, float]

    def layer(self, name: str) -> Layer:
        return next(layer for layer in self.layers if layer.name == name)

    def as_dict(self) -> dict[str, object]:
        return {
            "charge": self.charge,
            "api_cost": self.api_cost,
            "gpu_hours": self.gpu_hours,
            "model_class": self.model_class,
            "serving": self.serving,
            "layers": [
                {"name": x.name, "revenue": x.revenue, "cost": x.cost, "margin": x.margin, "estimated": x.estimated}
                for x in self.layers
            ],
            "slices": dict(self.slices),
        }


def gpu_hours(usage: Usage, profile: StackProfile, model_class: str) -> float:
    """GPU time to serve ``usage``: prefill of uncached prompt tokens plus decode, at utilisation."""
    tp = profile.throughput[model_class]
    prefill = max(usage.prompt_tokens - usage.cached_tokens, 0) / tp.prefill_tokens_per_s
    decode = usage.completion_tokens / tp.decode_tokens_per_s
    return (prefill + decode) / profile.utilisation / 3600.0


def self_hosted_cost(usage: Usage, profile: StackProfile, model_class: str) -> float:
    """What serving ``usage`` on the operator's own GPUs costs: GPU rent at the profile's throughput
    and utilisation, plus the model licence (the cost ``attribute`` books for self-hosted traffic)."""
    rent = gpu_hours(usage, profile, model_class) * profile.economics().rental
    return rent + usage.total_tokens * profile.model_lab.licence_usd_per_mtok / 1e6


def attribute(
    usage: Usage,
    *,
    charge: float,
    api_cost: float | None,
    profile: StackProfile,
    model_class: str,
    self_hosted: bool = False,
) -> Waterfall:
    """Split ``charge`` across the stack. ``api_cost`` is the upstream price of ``usage`` (None
    or ignored when self-hosted: the serving cost is then built from GPU-hours)."""
    econ = profile.economics()
    hours = gpu_hours(usage, profile, model_class)
    rent = hours * econ.rental
    lab_cfg = profile.model_lab
    licence = usage.total_tokens * lab_cfg.licence_usd_per_mtok / 1e6
    if self_hosted or api_cost is None:
        lab = licence
        api = rent + lab  # what serving cost the operator (self_hosted_cost): no third-party token API
        serving: Literal["api", "self_hosted"] = "self_hosted"
    else:
        api = api_cost
        lab = api * lab_cfg.revenue_share + licence
        serving = "api"
    electricity, colocation = hours * econ.electricity, hours * econ.colocation
    chips, other_capex = hours * econ.chips, hours * econ.other_capex
    all_in = hours * econ.all_in
    chip_margin = chips * profile.chips.vendor_gross_margin
    est = serving == "api"
    layers = (
        Layer("application", charge, api, estimated=False),
        Layer("paas", api, rent + lab if est else api, estimated=est),
        Layer("model_lab", lab, lab * lab_cfg.cost_share, estimated=True),
        Layer("iaas", rent, all_in, estimated=True),
        Layer("chips", chips, chips - chip_margin, estimated=True),
    )
    lower = {
        "paas_margin": api - rent - lab,
        "model_lab": lab,
        "iaas_margin": rent - all_in,
        "electricity": electricity,
        "colocation": colocation,
        "other_capex": other_capex,
        "chip_vendor_cost": chips - chip_margin,
        "chip_vendor_margin": chip_margin,
    }
    # The application margin is the remainder, so the slices sum to the charge exactly; it
    # differs from charge - api_cost by float rounding only.
    slices = {"application_margin": charge - math.fsum(lower.values()), **lower}
    return Waterfall(
        charge=charge,
        api_cost=api,
        gpu_hours=hours,
        model_class=model_class,
        serving=serving,
        layers=layers,
        slices=slices,
    )


def merge(parts: list[Waterfall]) -> Waterfall:
    """One waterfall for several calls of one request (a cascade): layers and slices add up."""
    if len(parts) == 1:
        return parts[0]
    layers = tuple(
        Layer(
            name,
            sum(p.layer(name).revenue for p in parts),
            sum(p.layer(name).cost for p in parts),
            any(p.layer(name).estimated for p in parts),
        )
        for name in LAYERS
    )
    slices = {k: math.fsum(p.slices[k] for p in parts) for k in SLICES}
    return Waterfall(
        charge=math.fsum(p.charge for p in parts),
        api_cost=math.fsum(p.api_cost for p in parts),
        gpu_hours=sum(p.gpu_hours for p in parts),
        model_class=parts[-1].model_class,
        serving=parts[-1].serving,
        layers=layers,
        slices=slices,
    )
