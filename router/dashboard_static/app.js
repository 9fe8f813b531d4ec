// Switchyard cost dashboard. Reads the gateway's usage API with the key the user logs in with:
// a tenant key reads /v1/... (its own tenant only), the admin key reads /admin/... .
"use strict";

const S = { key: null, role: null, tenant: null, view: "spend", options: null, charts: {}, liveTimer: null };
const $ = (id) => document.getElementById(id);
const PALETTE = ["#2f6fec", "#f79009", "#12b76a", "#9e77ed", "#f04438", "#0ba5ec", "#ee46bc", "#667085", "#84cc16", "#b54708"];
const SLICES = [
  ["chip_vendor_cost", "Chip vendor: cost", true], ["chip_vendor_margin", "Chip vendor: margin", true],
  ["electricity", "GPU cloud: electricity", true], ["colocation", "GPU cloud: colocation", true],
  ["other_capex", "GPU cloud: other capex", true], ["iaas_margin", "GPU cloud: margin", true],
  ["model_lab", "Model lab", true], ["paas_margin", "Token API: margin", true],
  ["application_margin", "Operator (application) margin", false],
];
const SLICE_COLS = { application_margin: "app_margin_usd", paas_margin: "paas_margin_usd", model_lab: "model_lab_usd",
  iaas_margin: "iaas_margin_usd", electricity: "electricity_usd", colocation: "colocation_usd", other_capex: "other_capex_usd",
  chip_vendor_cost: "chip_cost_usd", chip_vendor_margin: "chip_margin_usd" };

// ---- formatting and DOM helpers -------------------------------------------------------------
function usd(v) {
  const a = Math.abs(v);
  const digits = a === 0 ? 2 : a < 0.01 ? 6 : a < 1 ? 4 : 2;
  return (v < 0 ? "-$" : "$") + a.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
const int = (v) => Math.round(v).toLocaleString("en-US");
const pct = (v) => v.toFixed(1) + "%";
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k.startsWith("data-")) e.setAttribute(k, v); else e[k] = v;
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
  return e;
}
// A model (tenant, alias) has one colour in every view: its place among all the names the options
// list for that dimension (sorted), else a hash of the name.
function colorOf(dim, name) {
  const known = ((S.options && S.options.filters && S.options.filters[dim]) || []);
  let i = known.indexOf(String(name));
  if (i < 0) { i = 0; for (const ch of String(name)) i = (i * 31 + ch.charCodeAt(0)) >>> 0; }
  return PALETTE[i % PALETTE.length];
}
function money(v) {  // null: no price is known (never shown as $0)
  if (v === null || v === undefined) return el("span", { "data-value": "", "data-kind": "unpriced", class: "unpriced" }, "unpriced");
  return el("span", { "data-value": String(v), "data-kind": "usd" }, usd(v));
}
function unpricedBadge(t) {  // requests no price covers: their count and tokens, beside the dollars
  return el("span", { "data-value": String(t.unpriced), "data-tokens": String(t.unpriced_tokens || 0), class: "unpriced" },
    `${int(t.unpriced)} req · ${int(t.unpriced_tokens || 0)} tok`);
}
function count(v) { return el("span", { "data-value": String(v), "data-kind": "int" }, int(v)); }
function kpis(id, items) {
  $(id).replaceChildren(...items.map(([label, node, key]) =>
    el("div", { class: "kpi", "data-kpi": key || label }, el("div", { class: "label" }, label), el("div", { class: "value" }, node))));
}
function table(id, head, rows, onclick) {
  const numeric = head.map((h) => h.endsWith("#"));
  const thead = el("tr", {}, head.map((h, i) => el("th", { class: numeric[i] ? "num" : "" }, h.replace(/#$/, ""))));
  const body = rows.map((r, ri) => {
    const tr = el("tr", {}, r.map((c, i) => el("td", { class: numeric[i] ? "num" : "" }, c)));
    if (onclick) { tr.className = "clickable"; tr.addEventListener("click", () => onclick(ri)); }
    return tr;
  });
  $(id).replaceChildren(el("thead", {}, thead), el("tbody", {}, body));
}
function chart(id, config) {
  if (S.charts[id]) S.charts[id].destroy();
  config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, config.options || {});
  S.charts[id] = new Chart($(id), config);
}
function status(msg) { const s = $("status"); s.textContent = msg || ""; s.hidden = !msg; }

// ---- API -------------------------------------------------------------------------------------
class ApiError extends Error { constructor(status, msg) { super(msg); this.status = status; } }
async function call(path, params, init) {
  const qs = new URLSearchParams(params || {}).toString();
  const res = await fetch(path + (qs ? "?" + qs : ""), Object.assign({ headers: { Authorization: "Bearer " + S.key } }, init || {}));
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new ApiError(res.status, (body.error && body.error.message) || res.statusText);
  return body;
}
const prefix = () => (S.role === "admin" ? "/admin" : "/v1");
const api = (path, params, init) => call(prefix() + path, params, init);

function range() {
  const r = $("f-range").value;
  if (r !== "custom") return { start: r, end: String(Date.now() / 1000 + 1) };
  const start = Date.parse($("f-start").value) / 1000, end = Date.parse($("f-end").value) / 1000;
  if (!isFinite(start) || !isFinite(end)) throw new ApiError(400, "Pick both ends of the custom range.");
  return { start: String(start), end: String(end) };
}
function rangeSeconds() {
  const r = $("f-range").value, units = { h: 3600, d: 86400 };
  if (r !== "custom") return parseInt(r, 10) * units[r.slice(-1)];
  return (Date.parse($("f-end").value) - Date.parse($("f-start").value)) / 1000;
}
function filters(extra) {
  const p = Object.assign(range(), extra || {});
  for (const dim of ["alias", "model", "provider"]) if ($("f-" + dim).value) p[dim] = $("f-" + dim).value;
  if ($("f-user").value.trim()) p.user = $("f-user").value.trim();
  if ($("f-tag").value.trim()) p.tag = $("f-tag").value.trim();  // key=value
  if (S.role === "admin" && $("f-tenant").value) p.tenant = $("f-tenant").value;
  return p;
}
const bucketFor = () => { const s = rangeSeconds(); return s <= 3 * 3600 ? "minute" : s <= 3 * 86400 ? "hour" : "day"; };
const stamp = (t) => new Date(t * 1000).toISOString().slice(0, 16).replace("T", " ");

// ---- views -------------------------------------------------------------------------------------
async function viewSpend() {
  const [total] = (await api("/usage", filters({ bucket: "none" }))).data;
  const t = total || { charge_usd: 0, cost_usd: 0, requests: 0, errors: 0, prompt_tokens: 0, completion_tokens: 0 };
  kpis("spend-kpis", [["Spend (tenant charge)", money(t.charge_usd), "charge_usd"], ["API cost", money(t.cost_usd), "cost_usd"],
    ["Requests", count(t.requests), "requests"], ["Tokens", count(t.prompt_tokens + t.completion_tokens), "tokens"],
    ["Error rate", el("span", {}, pct(t.requests ? (100 * t.errors) / t.requests : 0)), "error_rate"],
    ...(t.unpriced ? [["Unpriced (not in the dollars)", unpricedBadge(t), "unpriced"]] : [])]);
  const by = $("spend-by").value, measure = $("spend-measure").value;
  const res = await api("/usage", filters({ bucket: bucketFor(), group_by: by, limit: 10000 }));
  const rows = res.data, size = { minute: 60, hour: 3600, day: 86400 }[bucketFor()];
  const buckets = [];  // every bucket of the range, idle ones included (a bar per day of "last 7 days")
  for (let t = Math.floor(res.start / size) * size; t < res.end && buckets.length < 2000; t += size) buckets.push(t);
  const groups = [...new Set(rows.map((r) => String(r[by])))];
  const value = (r) => (measure === "tokens" ? r.prompt_tokens + r.completion_tokens : r[measure]);
  const datasets = groups.map((g) => ({ label: g, backgroundColor: colorOf(by, g),
    data: buckets.map((b) => rows.filter((r) => r.bucket === b && String(r[by]) === g).reduce((a, r) => a + value(r), 0)) }));
  chart("spend-chart", { type: "bar", data: { labels: buckets.map(stamp), datasets },
    options: { scales: { x: { stacked: true }, y: { stacked: true, title: { display: true, text: measure === "tokens" ? "tokens" : "USD" } } } } });
}

async function viewRouting() {
  const rows = (await api("/usage", filters({ bucket: "none", group_by: "alias,model,rule", limit: 10000 }))).data;
  const aliases = [...new Set(rows.map((r) => String(r.alias)))];
  const models = [...new Set(rows.map((r) => String(r.model)))];
  chart("routing-chart", { type: "bar", data: { labels: aliases, datasets: models.map((m) => ({
    label: m, backgroundColor: colorOf("model", m),
    data: aliases.map((a) => rows.filter((r) => String(r.alias) === a && String(r.model) === m).reduce((s, r) => s + r.requests, 0)) })) },
    options: { indexAxis: "y", scales: { x: { stacked: true, title: { display: true, text: "requests" } }, y: { stacked: true } } } });
  const perAlias = {};
  rows.forEach((r) => { perAlias[r.alias] = (perAlias[r.alias] || 0) + r.requests; });
  table("routing-table", ["Alias", "Model served", "Rule (why)", "Requests#", "Share of alias#", "Fallbacks#", "Spend#"],
    rows.sort((a, b) => b.requests - a.requests).map((r) => [String(r.alias), String(r.model),
      r.rule || "direct (no policy)", count(r.requests), pct((100 * r.requests) / perAlias[r.alias]), count(r.fallbacks), money(r.charge_usd)]));
}

async function viewSavings() {
  const sel = $("savings-baseline");
  if (!S.options.baselines.length) throw new ApiError(400, "This gateway has no priced chat model to use as a baseline.");
  const s = await api("/insights/savings", filters(sel.value ? { baseline: sel.value } : {}));
  kpis("savings-kpis", [["Actual API cost", money(s.cost_usd), "cost_usd"], [`Had it all gone to ${s.baseline}`, money(s.baseline_cost_usd), "baseline_cost_usd"],
    ["Saved by routing", money(s.savings_usd), "savings_usd"], ["Saved", el("span", {}, pct(s.savings_pct)), "savings_pct"],
    ["Saved by the cache", money(s.cache_saved_usd), "cache_saved_usd"], ["Cache hits", count(s.cache_hits), "cache_hits"]]);
  const labels = s.by_model.map((m) => `${m.alias} → ${m.model}`);
  chart("savings-chart", { type: "bar", data: { labels, datasets: [
    { label: "actual", backgroundColor: PALETTE[0], data: s.by_model.map((m) => m.cost_usd) },
    { label: `baseline (${s.baseline})`, backgroundColor: PALETTE[1], data: s.by_model.map((m) => m.baseline_cost_usd) }] },
    options: { scales: { y: { title: { display: true, text: "USD" } } } } });
  table("savings-plans", ["Plan", "Tenant charge#", "Operator margin#", "Margin had all gone to baseline#", "Margin earned by routing#"],
    s.plans.map((p) => [p.plan + (p.plan === S.options.default_plan ? " (default)" : ""), money(p.charge_usd), money(p.margin_usd),
      money(p.margin_at_baseline_usd), money(p.routing_margin_usd)]));
}

async function viewStack() {
  const [t] = (await api("/usage", filters({ bucket: "none" }))).data;
  const row = t || { charge_usd: 0, cost_usd: 0, layers: null };
  kpis("stack-kpis", [["Tenant dollars", money(row.charge_usd), "charge_usd"], ["API cost (measured)", money(row.cost_usd), "cost_usd"],
    ["Operator margin (measured)", money(row[SLICE_COLS.application_margin] || 0), "app_margin_usd"]]);
  let base = 0;
  const bars = SLICES.map(([k, label, est]) => { const v = row[SLICE_COLS[k]] || 0; const bar = [base, base + v]; base += v;
    return { label: label + (est ? " (est.)" : ""), bar, v }; });
  bars.push({ label: "Total: tenant charge", bar: [0, row.charge_usd], v: row.charge_usd });
  chart("stack-chart", { type: "bar", data: { labels: bars.map((b) => b.label), datasets: [{ label: "USD", data: bars.map((b) => b.bar),
    backgroundColor: bars.map((b, i) => (i === bars.length - 1 ? "#101828" : PALETTE[i % PALETTE.length])) }] },
    options: { indexAxis: "y", plugins: { legend: { display: false }, tooltip: { callbacks: { label: (c) => usd(bars[c.dataIndex].v) } } } } });
  const L = row.layers || {};
  const names = { application: "Application (operator)", paas: "Token API (PaaS)", model_lab: "Model lab", iaas: "GPU cloud (IaaS)", chips: "Chip vendor" };
  table("stack-table", ["Layer", "Revenue#", "Cost#", "Margin#", ""], Object.entries(names).filter(([k]) => L[k]).map(([k, n]) =>
    [n, money(L[k].revenue), money(L[k].cost), money(L[k].margin), k === "application" ? "measured" : el("span", { class: "est" }, "est.")]));
}

async function viewBudgets() {
  const params = S.role === "admin" && $("f-tenant").value ? { tenant: $("f-tenant").value } : {};
  const list = (await api("/insights/budgets", params)).data;
  if (S.role === "admin") {  // what the budgets raised, and what their delivery did (sent, or dead-lettered)
    const alerts = (await call("/admin/alerts", { limit: 50 })).data;
    $("alerts-card").hidden = false;
    table("alerts-table", ["Time (UTC)", "Budget", "Alert", "Spent#", "Delivery", "Attempts#"], alerts.map((a) => {
      const b = a.payload.budget;
      return [stamp(a.ts), `${b.scope} ${b.id} (${b.period === "day" ? "daily" : "monthly"} ${usd(b.limit_usd)})`,
        a.kind === "forecast" ? (a.payload.forecast_usd == null ? "forecast" : `forecast ${usd(a.payload.forecast_usd)}`)
          : a.kind === "test" ? "test"
          : `${a.threshold}%${a.payload.exhausted ? " (exhausted)" : ""}`,
        a.payload.spent_usd === null ? "—" : money(a.payload.spent_usd), a.status + (a.last_error ? ` (${a.last_error})` : ""), String(a.attempts)];
    }));
  }
  Object.keys(S.charts).filter((k) => k.startsWith("budget-")).forEach((k) => { S.charts[k].destroy(); delete S.charts[k]; });
  if (!list.length) { $("budgets-list").replaceChildren(el("div", { class: "card empty" }, "No budgets apply to this key.")); return; }
  $("budgets-list").replaceChildren(...list.map((b, i) => el("div", { class: "card", "data-budget": `${b.scope}:${b.id}` },
    el("h2", {}, `${b.scope} ${b.id} — ${b.period === "day" ? "daily" : "monthly"} limit ${usd(b.limit_usd)}${b.soft ? " (soft)" : ""}`),
    el("p", {}, "Spent ", money(b.spent_usd), " · remaining ", money(b.remaining_usd), " · month-end forecast ".replace("month", b.period === "day" ? "day" : "month"),
      el("span", { class: b.forecast_over ? "over" : "" }, money(b.forecast_usd)), b.forecast_over ? " — over the limit" : ""),
    el("div", { class: "chart" }, el("canvas", { id: `budget-${i}` })))));
  list.forEach((b, i) => {
    const pts = [{ x: b.start, y: 0 }, ...b.burn.map((p) => ({ x: Math.min(p.t, Date.now() / 1000), y: p.spent_usd }))];
    const last = pts[pts.length - 1];
    chart(`budget-${i}`, { type: "line", data: { datasets: [
      { label: "spent", data: pts, borderColor: PALETTE[0], backgroundColor: PALETTE[0] },
      { label: "forecast", data: [last, { x: b.end, y: b.forecast_usd }], borderDash: [6, 4], borderColor: PALETTE[1], backgroundColor: PALETTE[1] },
      { label: "limit", data: [{ x: b.start, y: b.limit_usd }, { x: b.end, y: b.limit_usd }], borderColor: PALETTE[4], backgroundColor: PALETTE[4], pointRadius: 0 }] },
      options: { parsing: false, scales: { x: { type: "linear", min: b.start, max: b.end, ticks: { callback: (v) => (b.period === "day" ? stamp(v).slice(11, 16) : stamp(v).slice(5, 10)) } },
        y: { beginAtZero: true, title: { display: true, text: "USD" } } } } });
  });
}

async function viewTop() {
  const rows = (await api("/requests/top", filters({ limit: 20 }))).data;
  const detail = (i) => {
    const r = rows[i], d = r.decision || {};
    const cands = (d.candidates || []).map((c) => [c.model, c.removed_by || "eligible", c.quality === undefined ? "" : String(c.quality),
      c.expected_cost_usd === undefined || c.expected_cost_usd === null ? "" : money(c.expected_cost_usd)]);
    const box = $("top-detail");
    box.hidden = false;
    box.replaceChildren(el("h2", {}, `Request ${r.request_id}`),
      el("p", {}, `${r.alias} → ${r.model} (${r.provider}); policy ${d.policy || "none"}, rule ${d.rule || "direct"}`),
      el("p", {}, el("b", {}, "Why: "), d.reason || "the client named this model; no policy applied"),
      el("table", { id: "top-cands" }), el("h2", {}, "Attempts"), el("pre", {}, JSON.stringify(r.attempts || [], null, 1)));
    table("top-cands", ["Candidate", "Constraint", "Predicted quality#", "Expected cost#"], cands);
  };
  table("top-table", ["Time (UTC)", "Tenant", "Alias → model", "Tokens in/out#", "Charge#", "Why"], rows.map((r) =>
    [stamp(r.ts), r.tenant || "", `${r.alias} → ${r.model}`, `${int(r.prompt_tokens)} / ${int(r.completion_tokens)}`, money(r.charge_usd),
      (r.decision && r.decision.reason) || "direct"]), detail);
  if (rows.length) detail(0); else $("top-detail").hidden = true;
}

async function viewLive() {
  const p = filters({ bucket: "minute", limit: 10000 });
  p.start = "15m";
  const rows = (await api("/usage", p)).data;
  const now = Math.floor(Date.now() / 60000) * 60, mins = [];
  for (let t = now - 14 * 60; t <= now; t += 60) mins.push(t);
  const at = (t) => rows.find((r) => Math.round(r.bucket) === t) || { requests: 0, errors: 0, latency_s_sum: 0 };
  const series = mins.map(at);
  const elapsed = (t) => (t === now ? Math.max(1, Date.now() / 1000 - now) : 60);
  const rps = series.map((r, i) => r.requests / elapsed(mins[i]));
  // an idle minute has no latency and no error rate: a gap in the line, not a 0
  const lat = series.map((r) => (r.requests ? (1000 * r.latency_s_sum) / r.requests : null));
  const err = series.map((r) => (r.requests ? (100 * r.errors) / r.requests : null));
  const labels = mins.map((t) => stamp(t).slice(11));
  const line = (id, label, data, color) => chart(id, { type: "line", data: { labels, datasets: [{ label, data, borderColor: color, backgroundColor: color, fill: false, spanGaps: false }] },
    options: { scales: { y: { beginAtZero: true } } } });
  line("live-rps", "requests/s", rps, PALETTE[0]);
  line("live-latency", "mean latency (ms)", lat, PALETTE[1]);
  line("live-errors", "error rate (%)", err, PALETTE[4]);
  const total = series.reduce((a, r) => ({ requests: a.requests + r.requests, errors: a.errors + r.errors, lat: a.lat + r.latency_s_sum }), { requests: 0, errors: 0, lat: 0 });
  kpis("live-kpis", [["Requests (15 min)", count(total.requests), "requests"], ["Requests/s (15 min)", el("span", {}, (total.requests / 900).toFixed(2)), "rps"],
    ["Mean latency", el("span", {}, total.requests ? ((1000 * total.lat) / total.requests).toFixed(1) + " ms" : "–"), "latency"],
    ["Error rate", el("span", {}, pct(total.requests ? (100 * total.errors) / total.requests : 0)), "error_rate"]]);
  $("live-updated").textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC, every 5 s";
}

async function viewWhatif(run) {
  if (!run) return;
  const yaml = S.role === "admin" ? $("whatif-yaml").value.trim() : "";
  const r = yaml ? await api("/insights/whatif", filters(), { method: "POST", body: JSON.stringify({ yaml }),
    headers: { Authorization: "Bearer " + S.key, "content-type": "application/json" } })
    : await api("/insights/whatif", filters({ policy: $("whatif-policy").value }));
  const q = (v) => (v === null ? "no prediction" : v.toFixed(3));
  kpis("whatif-kpis", [["Requests replayed", count(r.requests), "requests"], ["Actual cost", money(r.actual_cost_usd), "actual_cost_usd"],
    [`Estimated under ${r.policy}`, money(r.estimated_cost_usd), "estimated_cost_usd"],
    ["Change", el("span", { class: r.change_usd > 0 ? "over" : "" }, `${usd(r.change_usd)} (${pct(r.change_pct)})`), "change"],
    ["Predicted quality", el("span", {}, `${q(r.quality_actual)} → ${q(r.quality_estimated)}`), "quality"]]);
  $("whatif-result").hidden = false;
  chart("whatif-chart", { type: "bar", data: { labels: ["actual", `under ${r.policy}`], datasets: [{ label: "USD",
    data: [r.actual_cost_usd, r.estimated_cost_usd], backgroundColor: [PALETTE[0], PALETTE[2]] }] }, options: { plugins: { legend: { display: false } } } });
  table("whatif-table", ["Model the policy picks", "Requests#", "Estimated cost#", "Main reasons"], r.picks.map((p) =>
    [p.model, count(p.requests), money(p.estimated_cost_usd), p.reasons.map((x) => `${x.reason} (${x.requests})`).join("; ")]));
}

const VIEWS = { spend: viewSpend, routing: viewRouting, savings: viewSavings, stack: viewStack, budgets: viewBudgets,
  top: viewTop, live: viewLive, whatif: viewWhatif };

async function show(view, run) {
  S.view = view;
  document.querySelectorAll("nav#tabs button").forEach((b) => b.classList.toggle("active", b.dataset.view === view));
  document.querySelectorAll("section.view").forEach((s) => { s.hidden = s.id !== "view-" + view; });
  clearInterval(S.liveTimer);
  if (view === "live") S.liveTimer = setInterval(() => VIEWS.live().catch(fail), 5000);
  document.body.dataset.loading = "1";
  try { status(""); await VIEWS[view](run); } catch (e) { fail(e); } finally { document.body.dataset.loading = ""; document.body.dataset.rendered = view; }
}
function fail(e) {
  if (e instanceof ApiError && e.status === 401) { logout(); return; }
  status(e.message || String(e));
}

// ---- login and setup -------------------------------------------------------------------------
function fill(id, values, keepFirst) {
  const sel = $(id), first = keepFirst ? [sel.options[0]] : [];
  sel.replaceChildren(...first, ...values.map((v) => el("option", { value: v }, v)));
}
async function loadOptions() {
  S.options = await api("/insights/options", range());
  for (const dim of ["alias", "model", "provider"]) fill("f-" + dim, S.options.filters[dim], true);
  if (S.role === "admin") fill("f-tenant", S.options.filters.tenant, true);
  fill("savings-baseline", S.options.baselines, true);  // first: "" = the dearest model for the range's traffic
  $("savings-baseline").value = "";
  fill("whatif-policy", S.options.policies, false);
  // the operator's tags (attribution.tags): a filter, and "stack by tag:<key>" in the Spend view
  $("f-tag-wrap").hidden = !S.options.tags.length;
  const by = $("spend-by");
  for (const o of [...by.options]) if (o.value.startsWith("tag:")) o.remove();
  for (const t of S.options.tags) by.append(el("option", { value: "tag:" + t }, "tag " + t));
}
async function login(key) {
  S.key = key;
  const who = await call("/v1/whoami");
  S.role = who.role; S.tenant = who.tenant;
  sessionStorage.setItem("switchyard-key", key);
  $("role-badge").textContent = who.role === "admin" ? "admin: all tenants" : `tenant ${who.tenant}`;
  $("who").hidden = false; $("login").hidden = true; $("app").hidden = false;
  $("f-tenant-wrap").hidden = who.role !== "admin";
  $("whatif-yaml-wrap").hidden = who.role !== "admin";
  $("tab-advise").hidden = who.role !== "admin";
  $("tab-keys").hidden = who.role !== "admin";
  $("tab-stack").hidden = who.role !== "admin";  // how the operator's margin splits: not a tenant's business
  await loadOptions();
  await show(location.hash.slice(1) in VIEWS ? location.hash.slice(1) : "spend");
}
function logout() {
  sessionStorage.removeItem("switchyard-key");
  clearInterval(S.liveTimer);
  S.key = S.role = null;
  $("app").hidden = true; $("who").hidden = true; $("login").hidden = false;
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("login-error").hidden = true;
    try { await login($("login-key").value.trim()); } catch (e) {
      S.key = null;
      $("login-error").textContent = e.status === 401 ? "That key was not accepted." : e.message;
      $("login-error").hidden = false;
    }
  });
  $("logout").addEventListener("click", logout);
  $("filters").addEventListener("submit", (ev) => { ev.preventDefault(); show(S.view); });
  $("f-range").addEventListener("change", () => {
    document.querySelectorAll("label.custom").forEach((l) => { l.hidden = $("f-range").value !== "custom"; });
  });
  document.querySelectorAll("nav#tabs button").forEach((b) => b.addEventListener("click", () => { location.hash = b.dataset.view; show(b.dataset.view); }));
  for (const id of ["spend-by", "spend-measure"]) $(id).addEventListener("change", () => show("spend"));
  $("savings-baseline").addEventListener("change", () => show("savings"));
  $("whatif-form").addEventListener("submit", (ev) => { ev.preventDefault(); show("whatif", true); });
  const saved = sessionStorage.getItem("switchyard-key");
  if (saved) login(saved).catch(() => logout()); else logout();
});
