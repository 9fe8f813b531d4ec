// The "Build or buy" view (admin only): /admin/insights/advise for the filtered range, as the
// `switchyard advise --json` command prints it. Uses app.js's helpers.
"use strict";

const ADVISE_SLICES = [["paas_margin", "Token API: margin"], ["model_lab", "Model lab"], ["iaas_margin", "GPU cloud: margin"],
  ["electricity", "Electricity"], ["colocation", "Colocation"], ["other_capex", "Other server capex"],
  ["chip_vendor_cost", "Chip vendor: cost"], ["chip_vendor_margin", "Chip vendor: margin"], ["application_margin", "Operator"]];
const WAYS = [["buy", "Keep buying (API)"], ["rent", "Rent GPUs"], ["own", "Own GPUs"]];
const unpriced = () => el("span", { class: "est", "data-kind": "unpriced" }, "unpriced");
const maybe = (v, f) => (v === null || v === undefined ? unpriced() : f(v));
const share = (v) => (v > 0 && v < 0.001 ? "<0.1%" : pct(100 * v));
const perDay = (v) => (v === null || v === undefined ? el("span", { "data-kind": "never" }, "never") : count(v));

async function viewAdvise() {
  const params = filters({});
  for (const [id, name] of [["advise-profile", "profile"], ["advise-util", "utilisation"], ["advise-rental", "rental"], ["advise-decline", "decline"]]) {
    if ($(id).value) params[name] = $(id).value;
  }
  const d = await call("/admin/insights/advise", params);
  S.advise = d;
  fill("advise-profile", d.profiles, false);
  $("advise-profile").value = d.profile;
  $("advise-util").value = d.params.utilisation;
  $("advise-rental").value = d.params.usd_per_gpu_hour;
  $("advise-decline").value = d.params.api_price_decline_per_year;
  const e = d.economics;
  kpis("advise-kpis", [["Owned, all-in per GPU-hour", money(e.all_in), "all_in"], ["Rented per GPU-hour", money(d.params.usd_per_gpu_hour), "rental"],
    ["GPU cloud margin", el("span", {}, pct(100 * e.iaas_gross_margin)), "iaas_gross_margin"],
    [`Server (${d.gpus_per_server} GPUs)`, money(d.server_capex_usd), "server_capex_usd"], ["Models in range", count(d.models.length), "models"]]);
  const ms = d.models;
  chart("advise-chart", { type: "bar", data: { labels: ms.map((m) => m.model), datasets: WAYS.map(([k, label], i) => ({
    label, backgroundColor: PALETTE[i], data: ms.map((m) => m[k].usd_per_mtok) })) },
    options: { scales: { y: { type: "logarithmic", title: { display: true, text: "USD per 1M tokens (log)" } } } } });
  table("advise-table", ["Model", "Class", "Quality#", "Tokens/day#", "API $/Mtok#", "Rent $/Mtok#", "GPUs#", "Utilisation#",
    "Own $/Mtok#", "Servers#", "Break-even rent, tokens/day#", "Break-even own, tokens/day#", "Buy hardware by"],
  ms.map((m) => [m.model + (m.self_hosted ? " (self-hosted)" : ""), m.model_class, m.quality === null ? "-" : m.quality.toFixed(2),
    count(m.tokens_per_day.total), maybe(m.buy.usd_per_mtok, money), money(m.rent.usd_per_mtok), count(m.rent.gpus),
    share(m.rent.utilisation), money(m.own.usd_per_mtok), count(m.own.servers), perDay(m.rent.break_even_tokens_per_day),
    perDay(m.own.break_even_tokens_per_day),
    m.own.buy_by ? el("span", { "data-value": String(m.own.buy_by) }, new Date(m.own.buy_by * 1000).toISOString().slice(0, 10))
      : m.own.payback_always ? "any time" : m.buy.unpriced ? unpriced() : "never pays back"]));
  const sel = $("advise-model"), keep = sel.value;
  fill("advise-model", ms.map((m) => m.model), false);
  if (ms.some((m) => m.model === keep)) sel.value = keep;
  adviseLayers();
  const m = ms.find((x) => x.model === sel.value);
  table("advise-sens", ["Utilisation#", "Rent $/Mtok#", "Own $/Mtok#", "", "Rent $/GPU-hour#", "Rent $/Mtok#"],
    m ? m.sensitivity.utilisation.map((u, i) => { const r = m.sensitivity.rental[i];
      return [pct(100 * u.utilisation), money(u.rent_usd_per_mtok), money(u.own_usd_per_mtok), "", money(r.usd_per_gpu_hour), money(r.rent_usd_per_mtok)]; }) : []);
}

function adviseLayers() {
  const m = (S.advise ? S.advise.models : []).find((x) => x.model === $("advise-model").value);
  if (!m) { table("advise-layers", ["Who"], []); return; }
  const rows = ADVISE_SLICES.map(([k, label]) => [label, ...WAYS.map(([w]) => (m[w].slices ? money(m[w].slices[k]) : unpriced()))]);
  rows.push(["Price paid per day", ...WAYS.map(([w]) => maybe(m[w].usd_per_day, money))]);
  table("advise-layers", ["Who", ...WAYS.map(([, label]) => label + "#")], rows);
  chart("advise-shape", { type: "bar", data: { labels: m.hourly_share.map((_, h) => String(h).padStart(2, "0") + ":00"),
    datasets: [{ label: m.model, backgroundColor: PALETTE[0], data: m.hourly_share.map((x) => 100 * x) }] },
    options: { plugins: { legend: { display: false } }, scales: { y: { title: { display: true, text: "% of the day's tokens" } } } } });
  table("advise-subs", ["Model", "Class", "Quality#", "Rent $/Mtok#", "GPUs#", "Own $/Mtok#", "Break-even rent, tokens/day#"],
    m.substitutes.map((x) => [x.model, x.model_class, x.quality === null ? "-" : x.quality.toFixed(2), money(x.rent.usd_per_mtok),
      count(x.rent.gpus), money(x.own.usd_per_mtok), perDay(x.rent.break_even_tokens_per_day)]));
}

VIEWS.advise = viewAdvise;
document.addEventListener("DOMContentLoaded", () => {
  $("advise-form").addEventListener("submit", (ev) => { ev.preventDefault(); show("advise"); });
  $("advise-model").addEventListener("change", () => show("advise"));
});
