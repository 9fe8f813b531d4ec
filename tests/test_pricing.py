"""Pricing, pure: the catalog's dated prices, stack economics, plans and the attribution waterfall."""

from __future__ import annotations

import json
import math
import subprocess
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pricing import Plan, Usage, attribute, cost_of
from pricing.loaders import load_catalog, load_profiles
from pricing.attribution import LAYERS, SLICES
from pricing.catalog import ModelPrice
from pricing.plans import FixedPrice
from pricing.profiles import StackProfile
from tests.conftest import SWITCHYARD

H200 = load_profiles()["h200"]


def test_h200_profile_pins_the_reference_figures() -> None:
    e = H200.economics()
    # $246,391 / 8 GPUs / (4 years x 8,760 h) = $0.879 per GPU-hour
    assert e.depreciation == pytest.approx(246391 / 8 / (4 * 8760))
    assert round(e.depreciation, 2) == 0.88
    # all-in with 1.275 kW per GPU (10.2 kW server / 8) and PUE 1.35: within 2% of $1.23
    assert H200.server.kw_per_gpu == 1.275 and H200.server.pue == 1.35
    assert e.all_in == pytest.approx(1.23, rel=0.02)
    assert e.electricity == pytest.approx(1.275 * 1.35 * 0.087)
    assert e.colocation == pytest.approx(1.275 * 110 / 730)
    # rented at $1.90: a neocloud gross margin within 1 point of 35%
    assert abs(e.iaas_gross_margin - 0.35) <= 0.01
    assert H200.chips.vendor_gross_margin == 0.75
    assert e.chip_vendor_margin == pytest.approx(0.75 * e.chips)


def test_a_profiles_economics_are_remembered_per_object_and_follow_a_copy() -> None:
    """``economics()`` is asked on every priced request and remembered; a copy of the profile with
    other figures is another object and gets its own."""
    assert H200.economics() is H200.economics()
    dearer = H200.model_copy(update={"rental_usd_per_gpu_hour": 3.8})
    assert dearer.economics().rental == 3.8 and H200.economics().rental == 1.90
    assert dearer.economics() == H200.model_copy(update={"rental_usd_per_gpu_hour": 3.8})._economics()
    assert H200.economics() == H200._economics()


def test_economics_cli_prints_the_same_figures() -> None:
    r = subprocess.run(
        [SWITCHYARD, "economics", "--profile", "h200", "--json"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    e = H200.economics()
    assert data["per_gpu_hour"]["depreciation"] == pytest.approx(e.depreciation)
    assert data["per_gpu_hour"]["all_in"] == pytest.approx(e.all_in)
    assert data["per_gpu_hour"]["iaas_gross_margin"] == pytest.approx(e.iaas_gross_margin)
    assert set(data["per_mtok"]) == set(H200.throughput)
    small = data["per_mtok"]["small"]
    # decode: 1M tokens / (7,700 tok/s x 0.6 utilisation) GPU-seconds at the all-in cost
    assert H200.throughput["small"].decode_tokens_per_s == 7700
    assert small["output"]["iaas_cost"] == pytest.approx(1e6 / (7700 * 0.6) / 3600 * e.all_in)
    r = subprocess.run([SWITCHYARD, "economics", "--profile", "h200"], capture_output=True, text=True, timeout=60)
    assert "all-in" in r.stdout and "rental" in r.stdout


def test_price_versions_apply_from_their_date_and_never_rewrite_the_past() -> None:
    cat = load_catalog()
    old = cat.price("gpt-4o", datetime.now(timezone.utc))
    cat.add_overrides(
        {"models": {"gpt-4o": [{"effective_from": "2030-01-01", "input_per_mtok": 1.0, "output_per_mtok": 4.0}]}},
        source="test",
    )
    before = cat.price("gpt-4o", datetime(2029, 12, 31, tzinfo=timezone.utc))
    after = cat.price("gpt-4o", datetime(2030, 1, 2, tzinfo=timezone.utc))
    assert before == old and after.input == pytest.approx(1e-6) and after.output == pytest.approx(4e-6)
    assert after.version == "test@2030-01-01"
    assert cat.price("gpt-4o", datetime.now(timezone.utc)) == old  # "now" is before 2030
    assert cat.price("no-such-model", datetime.now(timezone.utc)) is None


def test_override_file_adds_self_hosted_model() -> None:
    p = load_catalog().price("self-hosted/llama-3.1-8b-instruct", datetime.now(timezone.utc))
    assert p is not None and p.input == pytest.approx(0.02e-6) and p.source.startswith("overrides:")


def test_cost_lines_by_token_type() -> None:
    p = ModelPrice(input=1e-6, output=4e-6, cache_read=0.5e-6, cache_write=1.25e-6, reasoning=8e-6)
    c = cost_of(Usage(1000, 500, cached_tokens=200, cache_write_tokens=300, reasoning_tokens=100), p)
    assert c.lines == pytest.approx(
        {"input": 500e-6, "cached_input": 100e-6, "cache_write": 375e-6, "output": 1600e-6, "reasoning": 800e-6}
    )


def test_plans() -> None:
    u = Usage(1_000_000, 500_000)
    assert Plan(markup=0.25).charge("gpt-4o", u, 10.0) == pytest.approx(12.5)
    flat = Plan(fixed={"auto": FixedPrice(input_per_mtok=1.0, output_per_mtok=4.0)})
    assert flat.charge("auto", u, 0.3) == pytest.approx(3.0)
    assert flat.charge("gpt-4o", u, None) is None  # unpriced stays unpriced


def test_api_waterfall_layers() -> None:
    u = Usage(2000, 500)
    w = attribute(u, charge=0.02, api_cost=0.015, profile=H200, model_class="frontier")
    assert w.serving == "api"
    app = w.layer("application")
    assert (app.revenue, app.cost, app.estimated) == (0.02, 0.015, False)
    assert w.layer("paas").revenue == 0.015 and w.layer("paas").estimated
    assert w.layer("iaas").revenue == pytest.approx(w.gpu_hours * 1.90)
    assert w.layer("model_lab").revenue == pytest.approx(0.015 * 0.15)
    assert sum(w.slices.values()) == pytest.approx(0.02, abs=1e-12)


def test_self_hosted_waterfall_is_bottom_up() -> None:
    u = Usage(1000, 1000)
    w = attribute(u, charge=0.001, api_cost=None, profile=H200, model_class="small")
    assert w.serving == "self_hosted"
    assert w.api_cost == pytest.approx(w.gpu_hours * 1.90)
    assert w.layer("paas").margin == 0.0


profiles = st.builds(
    lambda capex, gpus, years, kw, pue, colo, elec, rent, util, pre, dec, share, lic, chip_frac, gm: (
        StackProfile.model_validate(
            {
                "name": "p",
                "chips": {"accelerator": "X", "unit_price_usd": capex / gpus * chip_frac, "vendor_gross_margin": gm},
                "server": {
                    "capex_usd": capex,
                    "gpus_per_server": gpus,
                    "depreciation_years": years,
                    "kw_per_gpu": kw,
                    "pue": pue,
                },
                "datacenter": {"colocation_usd_per_kw_month": colo, "electricity_usd_per_kwh": elec},
                "rental_usd_per_gpu_hour": rent,
                "utilisation": util,
                "throughput": {"c": {"prefill_tokens_per_s": pre, "decode_tokens_per_s": dec}},
                "model_lab": {"revenue_share": share, "licence_usd_per_mtok": lic},
            }
        )
    ),
    st.floats(1e3, 1e7),
    st.integers(1, 16),
    st.floats(0.5, 10),
    st.floats(0.1, 3),
    st.floats(1, 2.5),
    st.floats(0, 500),
    st.floats(0, 1),
    st.floats(0.01, 20),
    st.floats(0.05, 1),
    st.floats(100, 1e6),
    st.floats(20, 1e5),
    st.floats(0, 0.99),
    st.floats(0, 5),
    st.floats(0.01, 0.99),
    st.floats(0, 0.99),
)
usages = st.builds(
    lambda p, c, cached, rsn: Usage(p, c, cached_tokens=min(cached, p), reasoning_tokens=min(rsn, c)),
    st.integers(0, 1_000_000),
    st.integers(0, 100_000),
    st.integers(0, 1_000_000),
    st.integers(0, 100_000),
)


@settings(max_examples=300, deadline=None)
@given(
    usage=usages,
    profile=profiles,
    charge=st.floats(0, 1000),
    api=st.one_of(st.none(), st.floats(0, 1000)),
    self_hosted=st.booleans(),
)
def test_waterfall_always_sums_to_the_charge(usage, profile, charge, api, self_hosted) -> None:
    """Any usage (to 1M prompt / 100k output tokens), any profile (throughput down to 20 tok/s
    per GPU, 5% utilisation), any charge and API cost up to $1,000: the exact sum of the slices is
    the charge to within 1e-12 USD. (Float64 resolves 1e-12 only below about $4,000 per slice.)"""
    w = attribute(usage, charge=charge, api_cost=api, profile=profile, model_class="c", self_hosted=self_hosted)
    assert tuple(x.name for x in w.layers) == LAYERS
    assert tuple(w.slices) == SLICES
    assert abs(math.fsum(w.slices.values()) - charge) <= 1e-12
    assert w.layer("application").margin == pytest.approx(charge - w.api_cost, abs=1e-12)
