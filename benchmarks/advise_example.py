"""The build-or-buy advisor on the seed's figures: one 8 x H200 server's economics, and a 70B-class
model's traffic at several daily volumes, priced by its API at $0.60 per 1M tokens (blended), with
a business-hours shape (two thirds of the tokens between 08:00 and 20:00 UTC).

    python benchmarks/advise_example.py
"""

from __future__ import annotations

import datetime

from pricing.loaders import load_profiles
from pricing.advisor import Traffic, advise

profile = load_profiles()["h200"]
e = profile.economics()
print(
    f"per GPU-hour: depreciation ${e.depreciation:.4f} (chips ${e.chips:.4f}), electricity ${e.electricity:.4f}, "
    f"colocation ${e.colocation:.4f}, all-in ${e.all_in:.4f}; rental ${e.rental:.2f} "
    f"(cloud margin {e.iaas_gross_margin:.1%})\n"
)
day = [1.0] * 8 + [3.0] * 12 + [1.0] * 4
shape = tuple(h / sum(day) for h in day)
print(
    "| tokens/day | API $/day | rent: GPUs, util, $/day, $/Mtok | own: servers, $/day, $/Mtok | break-even rent / own "
    "(tokens/day) | own pays back if bought by |"
)
print("|---:|---:|---|---|---|---|")
for billions in (0.1, 1, 5, 20, 100):
    tokens = billions * 1e9
    prompt, completion = tokens * 0.75, tokens * 0.25
    t = Traffic(
        model="70b",
        model_class="mid",
        days=1.0,
        prompt_tokens=int(prompt),
        cached_tokens=int(prompt * 0.2),
        completion_tokens=int(completion),
        hourly=shape,
        api_cost_usd=tokens * 0.60 / 1e6,
    )
    a = advise(t, profile, decline=0.1, now=datetime.datetime(2026, 11, 30, tzinfo=datetime.timezone.utc).timestamp())
    r, o = a["rent"], a["own"]
    be = " / ".join(
        f"{x / 1e9:.2f} B" if x else "never" for x in (r["break_even_tokens_per_day"], o["break_even_tokens_per_day"])
    )
    by = datetime.datetime.fromtimestamp(o["buy_by"], datetime.timezone.utc).date() if o["buy_by"] else "never"
    print(
        f"| {billions:g} B | ${a['buy']['usd_per_day']:,.0f} | {r['gpus']}, {r['utilisation']:.0%}, ${r['usd_per_day']:,.0f}, "
        f"${r['usd_per_mtok']:.3f} | {o['servers']}, ${o['usd_per_day']:,.0f}, ${o['usd_per_mtok']:.3f} | {be} | {by} |"
    )
print()
print("20 B tokens/day, owned hardware bought now or later, by the yearly API price factor:\n")
print("| API price after a year | owning pays back if bought by |")
print("|---:|---|")
for decline in (0.1, 0.5, 0.7, 0.9, 1.0):
    tokens = 20e9
    t = Traffic(
        model="70b",
        model_class="mid",
        days=1.0,
        prompt_tokens=int(tokens * 0.75),
        cached_tokens=int(tokens * 0.15),
        completion_tokens=int(tokens * 0.25),
        hourly=shape,
        api_cost_usd=tokens * 0.60 / 1e6,
    )
    o = advise(
        t, profile, decline=decline, now=datetime.datetime(2026, 11, 30, tzinfo=datetime.timezone.utc).timestamp()
    )["own"]
    when = (
        "any time"
        if o["payback_always"]
        else datetime.datetime.fromtimestamp(o["buy_by"], datetime.timezone.utc).date()
        if o["buy_by"]
        else "never"
    )
    print(f"| x{decline:g} | {when} |")
