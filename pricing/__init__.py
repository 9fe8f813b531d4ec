"""Pricing: the price catalog, stack economics and cost attribution. Pure: no file, network,
storage or clock access; ``pricing.loaders`` reads the bundled data into these types."""

from pricing.attribution import Waterfall, attribute
from pricing.catalog import Cost, ModelPrice, PriceCatalog, PricingError, cost_of, estimate_usd
from pricing.margins import Margin, Traffic, booked, under_plan
from pricing.plans import FixedPrice, Plan
from pricing.profiles import StackProfile, profiles_from_doc
from pricing.usage import Usage

__all__ = [
    "Cost",
    "FixedPrice",
    "Margin",
    "ModelPrice",
    "Plan",
    "PriceCatalog",
    "PricingError",
    "StackProfile",
    "Usage",
    "Traffic",
    "Waterfall",
    "attribute",
    "booked",
    "cost_of",
    "estimate_usd",
    "profiles_from_doc",
    "under_plan",
]
