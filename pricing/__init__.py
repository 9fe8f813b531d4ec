"""Pricing: the price catalog, stack economics and cost attribution. Pure: no network, no storage."""

from pricing.catalog import Cost, ModelPrice, PriceCatalog, PricingError, cost_of
from pricing.usage import Usage

__all__ = ["Cost", "ModelPrice", "PriceCatalog", "PricingError", "Usage", "cost_of"]
