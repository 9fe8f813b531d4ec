"""FinOps FOCUS export: the ledger as FOCUS 1.2 cost-and-usage rows (with the 1.3 provider columns).

Rows are hourly: one per (hour, tenant, alias, model, provider, token meter). They are built from the
ledger's cost lines (``LedgerStore.lines``): a cascade's cheap step, its checks and its final answer
each count at their own model's SKU and price, not blended under the answering model. Meters are the
token directions and cache actions: Input Tokens, Cached Input Tokens, Cache Write Tokens,
Output Tokens, Reasoning Tokens. A request's charge and its stack slices are split across its
meters in proportion to the meters' API list cost (by token count when the model is unpriced),
so BilledCost over all rows is exactly the ledger's total charge. ``x_`` columns carry the
per-layer margins of the token-factory stack.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator

import orjson

from router.ledger.schema import LINE_COLUMNS, SLICE_COLUMNS

METERS = {  # line name -> (SkuMeter, token column)
    "input": ("Input Tokens", "prompt_tokens"),
    "cached_input": ("Cached Input Tokens", "cached_tokens"),
    "cache_write": ("Cache Write Tokens", "cache_write_tokens"),
    "output": ("Output Tokens", "completion_tokens"),
    "reasoning": ("Reasoning Tokens", "reasoning_tokens"),
}
X_COLUMNS = {
    "application_margin": "x_ApplicationMargin",
    "paas_margin": "x_PaasMargin",
    "model_lab": "x_ModelLabRevenue",
    "iaas_margin": "x_IaasMargin",
    "electricity": "x_Electricity",
    "colocation": "x_Colocation",
    "other_capex": "x_OtherServerCapex",
    "chip_vendor_cost": "x_ChipVendorCost",
    "chip_vendor_margin": "x_ChipVendorMargin",
}
COLUMNS = [
    "AvailabilityZone",
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingAccountType",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "CapacityReservationId",
    "CapacityReservationStatus",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "CommitmentDiscountCategory",
    "CommitmentDiscountId",
    "CommitmentDiscountName",
    "CommitmentDiscountQuantity",
    "CommitmentDiscountStatus",
    "CommitmentDiscountType",
    "CommitmentDiscountUnit",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "ContractedUnitPrice",
    "EffectiveCost",
    "HostProviderName",
    "InvoiceId",
    "InvoiceIssuerName",
    "ListCost",
    "ListUnitPrice",
    "PricingCategory",
    "PricingCurrency",
    "PricingCurrencyContractedUnitPrice",
    "PricingCurrencyEffectiveCost",
    "PricingCurrencyListUnitPrice",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "RegionId",
    "RegionName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "ServiceCategory",
    "ServiceName",
    "ServiceProviderName",
    "ServiceSubcategory",
    "SkuId",
    "SkuMeter",
    "SkuPriceDetails",
    "SkuPriceId",
    "SubAccountId",
    "SubAccountName",
    "SubAccountType",
    "Tags",
    *X_COLUMNS.values(),
    "x_ApiCost",
    "x_Requests",
    "x_Unpriced",
]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _weights(row: dict[str, Any]) -> dict[str, float]:
    """Each meter's share of the request: by API list cost, else by tokens."""
    lines = {name: row.get(col) or 0.0 for name, col in LINE_COLUMNS.items()}
    total = math.fsum(lines.values())
    if total > 0:
        return {k: v / total for k, v in lines.items() if v > 0}
    tokens = _tokens(row)
    n = sum(tokens.values())
    return {k: v / n for k, v in tokens.items() if v > 0} if n else {}


def _tokens(row: dict[str, Any]) -> dict[str, int]:
    cached, written = row["cached_tokens"] or 0, row["cache_write_tokens"] or 0
    reasoning = row["reasoning_tokens"] or 0
    return {
        "input": max(0, (row["prompt_tokens"] or 0) - cached - written),
        "cached_input": cached,
        "cache_write": written,
        "output": max(0, (row["completion_tokens"] or 0) - reasoning),
        "reasoning": reasoning,
    }


async def export_focus(
    rows: AsyncIterator[dict[str, Any]], out: Path, *, operator: str = "Switchyard"
) -> dict[str, float]:
    """Write the FOCUS CSV; returns totals (billed, rows) for the caller to print."""
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    sums: dict[tuple[Any, ...], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    billed_total = 0.0
    async for r in rows:
        hour = math.floor(r["ts"] / 3600) * 3600
        charge = r["charge_usd"] or 0.0
        billed_total += charge
        weights = _weights(r)
        tokens = _tokens(r)
        for meter, w in weights.items():
            tags = r.get("tags")
            key = (
                hour,
                r["tenant"],
                r["alias"],
                r["model"],
                r["provider"],
                meter,
                r["price_version"],
                r["serving"],
                r["charge_usd"] is None,
                r.get("end_user"),
                tuple(sorted(tags.items())) if tags else (),
            )
            groups.setdefault(key, r)
            acc = sums[key]
            acc["billed"] += charge * w
            acc["list"] += r.get(LINE_COLUMNS[meter]) or 0.0
            acc["tokens"] += tokens[meter]
            acc["requests"] += w * r.get("request_share", 1.0)
            for name, col in SLICE_COLUMNS.items():
                acc[name] += (r.get(col) or 0.0) * w
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        for key, acc in sorted(sums.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
            hour, tenant, alias, model, provider, meter, version, serving, unpriced, user, tags = key
            month = datetime.fromtimestamp(hour, timezone.utc).replace(day=1, hour=0)
            next_month = month.replace(year=month.year + (month.month == 12), month=month.month % 12 + 1)
            mtok = acc["tokens"] / 1e6
            host = operator if serving == "self_hosted" else (provider or "unknown")
            row = dict.fromkeys(COLUMNS, "")
            row.update(
                {
                    "BilledCost": repr(acc["billed"]),
                    "EffectiveCost": repr(acc["billed"]),
                    "ContractedCost": repr(acc["billed"]),
                    "ListCost": repr(acc["list"]),
                    "BillingAccountId": operator,
                    "BillingAccountName": operator,
                    "BillingAccountType": "Operator",
                    "BillingCurrency": "USD",
                    "PricingCurrency": "USD",
                    "BillingPeriodStart": _iso(month.timestamp()),
                    "BillingPeriodEnd": _iso(next_month.timestamp()),
                    "ChargeCategory": "Usage",
                    "ChargeFrequency": "Usage-Based",
                    "ChargeDescription": f"{METERS[meter][0]} on {model} via {alias}",
                    "ChargePeriodStart": _iso(hour),
                    "ChargePeriodEnd": _iso(hour + 3600),
                    "ConsumedQuantity": str(int(acc["tokens"])),
                    "ConsumedUnit": "Tokens",
                    "PricingQuantity": repr(mtok),
                    "PricingUnit": "1000000 Tokens",
                    "ListUnitPrice": repr(acc["list"] / mtok) if mtok else "",
                    "ContractedUnitPrice": repr(acc["billed"] / mtok) if mtok else "",
                    "PricingCurrencyListUnitPrice": repr(acc["list"] / mtok) if mtok else "",
                    "PricingCurrencyContractedUnitPrice": repr(acc["billed"] / mtok) if mtok else "",
                    "PricingCurrencyEffectiveCost": repr(acc["billed"]),
                    "PricingCategory": "Standard",
                    "InvoiceIssuerName": operator,
                    "ProviderName": operator,
                    "PublisherName": provider or "",
                    "ServiceProviderName": provider or "",
                    "HostProviderName": host,
                    "ServiceName": f"{provider} models" if provider else "models",
                    "ServiceCategory": "AI and Machine Learning",
                    "ServiceSubcategory": "Generative AI",
                    "ResourceId": model or "",
                    "ResourceName": model or "",
                    "ResourceType": "Model",
                    "SkuId": model or "",
                    "SkuMeter": METERS[meter][0],
                    "SkuPriceId": f"{model}|{meter}|{version}",
                    "SkuPriceDetails": orjson.dumps({"price_version": version}).decode(),
                    "SubAccountId": tenant or "",
                    "SubAccountName": tenant or "",
                    "SubAccountType": "Tenant",
                    # the request's own tags (attribution.tags), then the gateway's: alias, model, user
                    "Tags": orjson.dumps(
                        {**dict(tags), "alias": alias, "model": model, **({"user": user} if user else {})}
                    ).decode(),
                    "x_ApiCost": repr(acc["list"]),
                    "x_Requests": repr(acc["requests"]),
                    "x_Unpriced": "false",
                }
            )
            for name, col in X_COLUMNS.items():
                row[col] = repr(acc[name])
            if unpriced:  # no price is known: nothing was billed, and its cost is unknown (not $0)
                row.update(
                    {
                        "x_Unpriced": "true",
                        "SkuPriceId": f"{model}|{meter}|unpriced",
                        "SkuPriceDetails": "{}",
                        "ListCost": "",
                        "ListUnitPrice": "",
                        "PricingCurrencyListUnitPrice": "",
                        "x_ApiCost": "",
                        "ContractedUnitPrice": "",
                        "PricingCurrencyContractedUnitPrice": "",
                        **{col: "" for col in X_COLUMNS.values()},
                    }
                )
            writer.writerow(row)
    return {"billed": billed_total, "rows": float(len(sums))}
