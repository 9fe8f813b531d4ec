"""Stack profiles: a serving setup described layer by layer, and its per-GPU-hour economics.

A profile says what the chips cost and earn their vendor, what a server costs and how it is
depreciated, what power and colocation cost, what a GPU-hour rents for, how many tokens a GPU
serves per second for each model class and at what utilisation, and what the model lab takes.
Profiles are YAML (pricing/data/profiles.yaml); nothing here hard-codes a figure.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

HOURS_PER_YEAR = 8760.0
HOURS_PER_MONTH = HOURS_PER_YEAR / 12


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Chips(_M):
    accelerator: str
    unit_price_usd: float = Field(gt=0, description="what the operator pays per accelerator")
    vendor_gross_margin: float = Field(ge=0, lt=1, description="the chip vendor's gross margin on that price")


class Server(_M):
    capex_usd: float = Field(gt=0, description="all-in server cost (GPUs, host, network share)")
    gpus_per_server: int = Field(ge=1)
    depreciation_years: float = Field(gt=0)
    kw_per_gpu: float = Field(gt=0, description="IT power per GPU including its share of the host")
    pue: float = Field(ge=1, description="power usage effectiveness of the facility")


class Datacenter(_M):
    colocation_usd_per_kw_month: float = Field(ge=0)
    electricity_usd_per_kwh: float = Field(ge=0)


class Throughput(_M):
    prefill_tokens_per_s: float = Field(gt=0, description="per GPU")
    decode_tokens_per_s: float = Field(gt=0, description="per GPU, aggregate over the batch")


class ModelLab(_M):
    revenue_share: float = Field(default=0.0, ge=0, lt=1, description="share of the token API's revenue")
    licence_usd_per_mtok: float = Field(default=0.0, ge=0, description="licence fee per 1M tokens served")
    cost_share: float = Field(default=0.0, ge=0, le=1, description="share of the lab's take that is its own cost")


class ClassRule(_M):
    match: str | None = Field(default=None, description="glob on the model name")
    max_output_usd_per_mtok: float | None = Field(default=None, description="or: output list price at most this")
    model_class: str = Field(alias="class")


_ECONOMICS: dict[int, tuple["StackProfile", "GpuHour"]] = {}


class StackProfile(_M):
    name: str
    description: str = ""
    chips: Chips
    server: Server
    datacenter: Datacenter
    rental_usd_per_gpu_hour: float = Field(gt=0)
    utilisation: float = Field(gt=0, le=1)
    throughput: dict[str, Throughput] = Field(min_length=1)
    model_lab: ModelLab = ModelLab()
    model_classes: list[ClassRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> "StackProfile":
        if self.chips.unit_price_usd * self.server.gpus_per_server > self.server.capex_usd:
            raise ValueError(
                "the accelerators alone cost more than the whole server (chips.unit_price_usd x gpus_per_server > capex_usd)"
            )
        for rule in self.model_classes:
            if rule.model_class not in self.throughput:
                raise ValueError(f"model class '{rule.model_class}' has no throughput entry")
        return self

    def model_class(self, model: str, output_usd_per_mtok: float | None) -> str:
        for rule in self.model_classes:
            if rule.match is not None and fnmatch.fnmatchcase(model, rule.match):
                return rule.model_class
            if (
                rule.match is None
                and rule.max_output_usd_per_mtok is not None
                and output_usd_per_mtok is not None
                and output_usd_per_mtok <= rule.max_output_usd_per_mtok
            ):
                return rule.model_class
        return next(reversed(self.throughput))  # the last class listed: the most expensive to serve

    def economics(self) -> "GpuHour":
        """USD per GPU-hour by layer. Every priced request asks; a profile's fields never change
        (frozen), so each profile object's answer is remembered (by identity: a copy with other
        values is another object)."""
        held = _ECONOMICS.get(id(self))
        if held is not None and held[0] is self:
            return held[1]
        if len(_ECONOMICS) > 256:
            _ECONOMICS.clear()
        econ = self._economics()
        _ECONOMICS[id(self)] = (self, econ)
        return econ

    def _economics(self) -> "GpuHour":
        s, d = self.server, self.datacenter
        hours = s.depreciation_years * HOURS_PER_YEAR
        depreciation = s.capex_usd / s.gpus_per_server / hours
        chips = self.chips.unit_price_usd / hours
        electricity = s.kw_per_gpu * s.pue * d.electricity_usd_per_kwh
        colocation = s.kw_per_gpu * d.colocation_usd_per_kw_month / HOURS_PER_MONTH
        return GpuHour(
            depreciation=depreciation,
            chips=chips,
            other_capex=depreciation - chips,
            electricity=electricity,
            colocation=colocation,
            all_in=depreciation + electricity + colocation,
            rental=self.rental_usd_per_gpu_hour,
            chip_vendor_margin=chips * self.chips.vendor_gross_margin,
        )


@dataclass(frozen=True)
class GpuHour:
    """USD per GPU-hour, layer by layer."""

    depreciation: float
    chips: float  # the accelerator's share of depreciation: the chip vendor's revenue
    other_capex: float
    electricity: float
    colocation: float
    all_in: float
    rental: float
    chip_vendor_margin: float

    @property
    def iaas_margin(self) -> float:
        return self.rental - self.all_in

    @property
    def iaas_gross_margin(self) -> float:
        return self.iaas_margin / self.rental

    def as_dict(self) -> dict[str, float]:
        return {
            "depreciation": self.depreciation,
            "chips": self.chips,
            "other_capex": self.other_capex,
            "electricity": self.electricity,
            "colocation": self.colocation,
            "all_in": self.all_in,
            "rental": self.rental,
            "iaas_margin": self.iaas_margin,
            "iaas_gross_margin": self.iaas_gross_margin,
            "chip_vendor_margin": self.chip_vendor_margin,
        }


def profiles_from_doc(doc: dict[str, Any]) -> dict[str, StackProfile]:
    """Stack profiles by name from a profiles document (``pricing.loaders.load_profiles`` reads the file)."""
    return {
        name: StackProfile.model_validate({"name": name, **body}) for name, body in (doc.get("profiles") or {}).items()
    }
