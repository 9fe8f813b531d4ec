"""Pricing: the price catalog, stack economics and cost attribution. Pure: no network, no storage."""

from pricing.attribution import Waterfall, attribute
from pricing.catalog import Cost, ModelPrice, PriceCatalog, PricingError, cost_of, estimate_usd
from pricing.margins import Margin, Traffic, booked, under_plan
from pricing.plans import FixedPrice, Plan
from pricing.profiles import StackProfile, load_profiles
from pricing.usage import Usage

__all__ = ["Cost", "FixedPrice", "Margin", "ModelPrice", "Plan", "PriceCatalog", "PricingError", "StackProfile", "Usage",
           "Traffic", "Waterfall", "attribute", "booked", "cost_of", "estimate_usd", "load_profiles",
           "under_plan"]
