"""Build or buy (pricing/advisor.py, router/analytics/advise.py): the seed's worked example to the cent, the
cost curves' properties, the advisor against the ledger it reads, the CLI against the view, and
the view in a browser."""

from __future__ import annotations

import json
import math
import sqlite3
import subprocess

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pricing.loaders import load_profiles
from pricing.advisor import Traffic, advise, break_even, fleet, payback_deadline_years
from tests.conftest import ADMIN_KEY, GATEWAY_ENV, KEY_A, SWITCHYARD
from tests.test_dashboard import ADMIN, A, browser, dash, open_dashboard, rendered, shots  # noqa: F401 (fixtures)

H200 = load_profiles()["h200"]
FLAT = tuple([1 / 24] * 24)


def traffic(
    prompt: float,
    cached: float,
    completion: float,
    *,
    days: float = 1.0,
    hourly: tuple[float, ...] = FLAT,
    api: float | None = 1.0,
    cls: str = "mid",
) -> Traffic:
    return Traffic(
        model="m",
        model_class=cls,
        days=days,
        prompt_tokens=int(prompt),
        cached_tokens=int(cached),
        completion_tokens=int(completion),
        hourly=hourly,
        api_cost_usd=api,
    )


# ---- the worked example -------------------------------------------------------------------------


def test_one_h200_server_worked_example_to_the_cent() -> None:
    """The seed's server: $246,391 for 8 x H200 over four years, 10.2 kW at PUE 1.35, $0.087/kWh,
    colocation $110 per kW-month, rented at $1.90 per GPU-hour."""
    e = H200.economics()
    assert round(e.depreciation, 2) == 0.88  # 246,391 / 8 / (4 x 8,760 h)
    assert round(e.electricity, 2) == 0.15  # 1.275 kW x 1.35 x $0.087
    assert round(e.colocation, 2) == 0.19  # 1.275 kW x $110 / 730 h
    assert round(e.all_in, 2) == 1.22
    assert round(e.iaas_margin, 2) == 0.68 and round(e.iaas_gross_margin, 3) == 0.357
    assert round(e.chips * H200.chips.vendor_gross_margin, 2) == 0.51  # the chip vendor's 75% of $0.68
    # a mid-class (70B) model decoding 1,650 tokens/s per GPU (the profile's sourced figure) at 60%
    # utilisation: 3.564 M output tokens per GPU-hour. Traffic sized to fill 10 GPUs exactly, spread
    # evenly over the day (no idle headroom):
    assert H200.throughput["mid"].decode_tokens_per_s == 1650
    per_gpu_day = 1650 * 3600 * 0.6 * 24
    a = advise(traffic(0, 0, 10 * per_gpu_day), H200)
    assert a["rent"]["gpus"] == 10 and a["own"]["gpus"] == 16 and a["own"]["servers"] == 2
    assert round(a["rent"]["usd_per_mtok"], 2) == 0.53  # $1.90 / 3.564
    assert round(a["rent"]["utilisation"], 3) == 0.6
    # owned: two whole servers (16 GPUs) for 10 GPUs of work: $1.2208 x 16 / (10 x 3.564)
    assert round(a["own"]["usd_per_mtok"], 2) == round(1.2208353652968036 * 16 / 35.64, 2) == 0.55
    full = advise(traffic(0, 0, 16 * per_gpu_day), H200)
    assert round(full["own"]["usd_per_mtok"], 2) == 0.34  # $1.2208 / 3.564 once the servers are full


# ---- properties ---------------------------------------------------------------------------------

shares = (
    st.lists(st.floats(0.0, 1.0), min_size=24, max_size=24)
    .filter(lambda xs: sum(xs) > 0.01)
    .map(lambda xs: tuple(x / sum(xs) for x in xs))
)
volumes = st.tuples(st.floats(1e5, 1e10), st.floats(0, 1), st.floats(1e4, 1e9))


@settings(max_examples=200, deadline=None)
@given(volumes, shares, st.sampled_from(["small", "mid", "frontier"]), st.floats(1.01, 50))
def test_per_token_cost_falls_with_volume_and_utilisation(v, hourly, cls, grow) -> None:
    prompt, cached_share, completion = v
    t = traffic(prompt, prompt * cached_share, completion, hourly=hourly, cls=cls)
    base = advise(t, H200)
    for way, whole in (("rent", 1), ("own", H200.server.gpus_per_server)):
        f = fleet(t, H200, H200.utilisation, whole=whole)
        room = f.gpus / (f.work_gpu_hours_per_day * max(hourly) / H200.utilisation)  # scale the same fleet carries
        scale = min(grow, room * 0.999)  # within the same fleet (token counts are rounded to integers)
        if scale > 1.0001:
            bigger = advise(
                traffic(prompt * scale, prompt * cached_share * scale, completion * scale, hourly=hourly, cls=cls), H200
            )
            assert bigger[way]["gpus"] == base[way]["gpus"]
            assert bigger[way]["usd_per_mtok"] <= base[way]["usd_per_mtok"] * (1 + 1e-9)
        busier = advise(t, H200, utilisation=min(1.0, H200.utilisation * 1.3))
        assert busier[way]["usd_per_mtok"] <= base[way]["usd_per_mtok"] * (1 + 1e-9)


@settings(max_examples=200, deadline=None)
@given(volumes, shares, st.floats(1e-3, 1e4), st.sampled_from(["small", "mid", "frontier"]))
def test_break_even_is_where_the_cost_curves_cross(v, hourly, api_per_mtok, cls) -> None:
    prompt, cached_share, completion = v
    api = (prompt + completion) * api_per_mtok / 1e6
    t = traffic(prompt, prompt * cached_share, completion, hourly=hourly, api=api, cls=cls)
    a = advise(t, H200)
    for way in ("rent", "own"):
        be = a[way]["break_even_tokens_per_day"]
        if be is None:  # never: the API is cheaper at every volume, so at every scale tried too
            for s in (0.5, 1, 2, 10, 100):
                scaled = advise(
                    traffic(prompt * s, prompt * cached_share * s, completion * s, hourly=hourly, api=api * s, cls=cls),
                    H200,
                )
                assert scaled[way]["usd_per_day"] >= scaled["buy"]["usd_per_day"] * (1 - 1e-9)
            continue
        s = be / a["tokens_per_day"]["total"]
        at = advise(
            traffic(prompt * s, prompt * cached_share * s, completion * s, hourly=hourly, api=api * s, cls=cls), H200
        )
        if at[way]["gpus"] == (1 if way == "rent" else H200.server.gpus_per_server):  # integer rounding of tokens aside
            assert at[way]["usd_per_day"] == pytest.approx(at["buy"]["usd_per_day"], rel=1e-4)
            below = advise(
                traffic(
                    prompt * s * 0.9,
                    prompt * cached_share * s * 0.9,
                    completion * s * 0.9,
                    hourly=hourly,
                    api=api * s * 0.9,
                    cls=cls,
                ),
                H200,
            )
            assert below[way]["usd_per_day"] > below["buy"]["usd_per_day"]


def test_break_even_by_hand() -> None:
    # $100/day of API traffic; a GPU costs $45.60/day and carries 3x today's traffic: 0.456 of today
    assert break_even(100.0, 0.0, 45.6, 3.0) == pytest.approx(0.456)
    assert break_even(100.0, 0.0, 45.6, 0.4) is None  # one GPU is full before the curves meet
    assert break_even(10.0, 10.0, 45.6, 3.0) is None  # the licence alone costs what the API does


@settings(max_examples=200, deadline=None)
@given(volumes, shares, st.floats(1e-3, 1e3), st.sampled_from(["small", "mid", "frontier"]))
def test_every_layers_margins_sum_to_the_price_paid(v, hourly, api_per_mtok, cls) -> None:
    prompt, cached_share, completion = v
    t = traffic(
        prompt,
        prompt * cached_share,
        completion,
        hourly=hourly,
        api=(prompt + completion) * api_per_mtok / 1e6,
        cls=cls,
    )
    a = advise(t, H200)
    for way in ("buy", "rent", "own"):
        assert math.fsum(a[way]["slices"].values()) == pytest.approx(a[way]["usd_per_day"], rel=1e-9, abs=1e-12)
    assert a["own"]["slices"]["iaas_margin"] == 0.0, "owned GPUs: no cloud takes a margin"
    assert a["rent"]["slices"]["paas_margin"] == a["own"]["slices"]["paas_margin"] == 0.0


def test_payback_deadline_by_hand() -> None:
    # owning costs $100 a year over 4 years; the API bill it avoids is $400/year falling to half each year:
    # bought at s, the avoided bill is 400 x 0.5^s x (0.5^4 - 1) / ln 0.5 = 541.0 x 0.5^s >= 400 until s = 0.436
    s = payback_deadline_years(400, 100, 4, 0.5)
    assert s == pytest.approx(math.log(400 / (400 * (0.5**4 - 1) / math.log(0.5))) / math.log(0.5))
    assert 0.43 < s < 0.44
    assert payback_deadline_years(50, 100, 4, 0.5) is None  # does not pay back even now
    assert payback_deadline_years(200, 100, 4, 1.0) == math.inf  # flat prices: any time


def test_unpriced_traffic_is_never_a_dollar_figure() -> None:
    a = advise(traffic(1e6, 0, 1e6, api=None), H200)
    assert a["buy"]["usd_per_day"] is None and a["buy"]["usd_per_mtok"] is None and "slices" not in a["buy"]
    assert a["rent"]["break_even_tokens_per_day"] is None and a["own"]["payback_deadline_years"] is None


# ---- against the ledger, the CLI and the browser ------------------------------------------------


def _advice(gw, **params) -> dict:
    r = httpx.get(gw.base + "/admin/insights/advise", headers=ADMIN, params={"start": "1d", **params}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def _serve_self_hosted(dash) -> None:
    """Some traffic on the self-hosted model (the shared demo traffic routes elsewhere)."""
    import time

    with sqlite3.connect(dash.extra["ledger"]) as db:
        before = db.execute("SELECT COUNT(*) FROM requests WHERE model = 'sim-open'").fetchone()[0]
    if before:
        return
    for i in range(4):
        r = httpx.post(
            dash.base + "/v1/chat/completions",
            headers=A,
            timeout=30,
            json={
                "model": "sim-open",
                "messages": [{"role": "user", "content": f"Summarise the build-or-buy question ({i})."}],
                "max_tokens": 60,
            },
        )
        assert r.status_code == 200, r.text
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with sqlite3.connect(dash.extra["ledger"]) as db:
            if db.execute("SELECT COUNT(*) FROM requests WHERE model = 'sim-open'").fetchone()[0] == 4:
                return
        time.sleep(0.1)
    raise AssertionError("the ledger did not record the self-hosted requests")


def test_self_hosted_traffic_costs_what_the_ledger_attributed(dash) -> None:
    _serve_self_hosted(dash)
    advice = _advice(dash)
    by_model = {m["model"]: m for m in advice["models"]}
    with sqlite3.connect(dash.extra["ledger"]) as db:
        served = {
            r[0]: r[1:]
            for r in db.execute(
                "SELECT model, SUM(prompt_tokens), SUM(completion_tokens), SUM(cost_usd), SUM(gpu_hours), "
                "SUM(charge_usd - app_margin_usd), COUNT(*) FROM requests WHERE endpoint = 'chat' GROUP BY model"
            )
        }
    assert set(by_model) == set(served)
    for name, m in by_model.items():
        prompt, completion, cost, gpu_hours, attributed, _ = served[name]
        days = m["days"]
        assert m["tokens_per_day"]["total"] * days == pytest.approx(prompt + completion)
        assert m["buy"]["usd_per_day"] * days == pytest.approx(cost)
        if m["self_hosted"]:  # served on the operator's GPUs: the advisor's metered rent is the ledger's cost
            assert m["rent"]["metered_gpu_hours_per_day"] * days == pytest.approx(gpu_hours, rel=1e-9)
            assert m["rent"]["metered_usd_per_day"] * days == pytest.approx(attributed, rel=1e-9)
    assert any(m["self_hosted"] for m in by_model.values()), "the demo traffic includes a self-hosted model"
    assert all(s["model"] == "sim-open" for m in by_model.values() for s in m["substitutes"])
    # tenants do not see operator economics
    assert httpx.get(dash.base + "/admin/insights/advise", headers=A).status_code == 403
    bad = httpx.get(dash.base + "/admin/insights/advise", headers=ADMIN, params={"utilisation": "nan"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "utilisation"
    assert httpx.get(dash.base + "/admin/insights/advise", headers=ADMIN, params={"profile": "x"}).status_code == 400


def test_the_cli_prints_what_the_view_reads(dash) -> None:
    import time

    _serve_self_hosted(dash)
    # a window that has ended: both answers read the same days (one still open would grow between them)
    start, end = str(time.time() - 86400), str(time.time())
    time.sleep(0.01)
    env = {**GATEWAY_ENV, "PATH": "/usr/bin:/bin", "SWITCHYARD_URL": dash.base, "SWITCHYARD_ADMIN_KEY": ADMIN_KEY}
    out = subprocess.run(
        [SWITCHYARD, "advise", "--since", start, "--until", end, "--utilisation", "0.5", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    cli = json.loads(out.stdout)
    view = _advice(dash, start=start, end=end, utilisation="0.5")
    for a, b in zip(cli["models"], view["models"]):  # "buy by" counts from the moment of each answer
        if a["own"]["buy_by"] is not None:
            assert abs(a["own"].pop("buy_by") - b["own"].pop("buy_by")) < 60
        else:
            b["own"].pop("buy_by")
            a["own"].pop("buy_by")
    assert cli == view
    table = subprocess.run(
        [SWITCHYARD, "advise", "--since", start, "--until", end], env=env, capture_output=True, text=True, timeout=60
    )
    assert table.returncode == 0 and "sim-open (self-hosted)" in table.stdout and "Build or buy" in table.stdout
    denied = subprocess.run(
        [SWITCHYARD, "advise"], env={**env, "SWITCHYARD_ADMIN_KEY": KEY_A}, capture_output=True, text=True, timeout=60
    )
    assert denied.returncode == 1 and "403" in denied.stderr and "Traceback" not in denied.stderr


def test_build_or_buy_view_in_a_browser(dash, browser, shots) -> None:
    _serve_self_hosted(dash)
    page, errors, _ = open_dashboard(browser, dash, ADMIN_KEY)
    rendered(page, "spend")
    page.click("nav#tabs button[data-view=advise]")
    rendered(page, "advise")
    page.screenshot(path=str(shots / "advise.png"), full_page=True)
    advice = _advice(dash, start="7d")
    rows = page.locator("#advise-table tbody tr")
    assert rows.count() == len(advice["models"]) > 0
    for i, m in enumerate(advice["models"]):
        cells = rows.nth(i).locator("td")
        assert cells.nth(0).inner_text().startswith(m["model"])
        shown = [float(x) for x in cells.locator("[data-value]").evaluate_all("els => els.map(e => e.dataset.value)")]
        want = [
            m["tokens_per_day"]["total"],
            m["buy"]["usd_per_mtok"],
            m["rent"]["usd_per_mtok"],
            m["rent"]["gpus"],
            m["own"]["usd_per_mtok"],
            m["own"]["servers"],
        ]
        assert shown[:6] == pytest.approx(want, rel=1e-6)
    assert page.locator("#advise-layers tbody tr").count() == 10  # nine slices and the price paid
    first = advice["models"][0]
    assert page.locator("#advise-subs tbody tr").count() == len(first["substitutes"]) > 0
    shape = page.evaluate("() => Chart.getChart(document.getElementById('advise-shape')).data.datasets[0].data")
    assert shape == pytest.approx([100 * x for x in first["hourly_share"]])
    assert not errors, errors
    tenant, _, _ = open_dashboard(browser, dash, KEY_A)
    rendered(tenant, "spend")
    assert tenant.locator("#tab-advise").is_hidden()


def test_report_and_advise_take_the_api_base_and_say_when_no_gateway_answers(dash) -> None:
    from tests.conftest import free_port

    env = {**GATEWAY_ENV, "PATH": "/usr/bin:/bin", "SWITCHYARD_ADMIN_KEY": ADMIN_KEY, "SWITCHYARD_API_KEY": KEY_A}
    ok = subprocess.run(
        [SWITCHYARD, "advise", "--url", dash.base + "/v1/", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0 and json.loads(ok.stdout)["models"], ok.stderr  # the SDK-style base URL works too
    closed = f"http://127.0.0.1:{free_port()}"
    for cmd in (["advise"], ["report"]):
        r = subprocess.run([SWITCHYARD, *cmd, "--url", closed], env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 1 and "cannot reach" in r.stderr and "Traceback" not in r.stderr, r.stderr[-500:]
        assert len(r.stderr.splitlines()) == 1
