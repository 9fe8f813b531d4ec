// The "Keys" view (admin only): issue a key (its secret shown once), revoke one, and the audit log
// of admin actions. Uses app.js's helpers; talks to /admin/keys and /admin/audit.
"use strict";

async function viewKeys() {
  const [keys, audit] = await Promise.all([call("/admin/keys"), call("/admin/audit", { limit: "50" })]);
  table("keys-table", ["Key", "Tenant", "Source", "Models", "RPM#", "Budget", "Expires", "State", ""],
    keys.data.map((k) => [k.id, k.tenant, k.source, (k.models || ["(tenant's)"]).join(", "), k.rpm === null || k.rpm === undefined ? "-" : count(k.rpm),
      k.budget ? `$${k.budget.usd} / ${k.budget.period}${k.budget.soft ? " (soft)" : ""}` : "-",
      k.expires_at ? new Date(k.expires_at * 1000).toISOString().slice(0, 16).replace("T", " ") : "-",
      el("span", { "data-state": k.revoked ? "revoked" : "active" }, k.revoked ? "revoked" : "active"),
      k.source === "api" && !k.revoked
        ? el("button", { type: "button", class: "revoke", "data-key": k.id, onclick: () => revokeKey(k.id) }, "Revoke") : ""]));
  table("audit-table", ["When", "Who", "Action", "Target", "Detail"],
    audit.data.map((a) => [new Date(a.ts * 1000).toISOString().slice(0, 19).replace("T", " "), a.actor, a.action, a.target || "-",
      JSON.stringify(a.detail)]));
}

async function issueKey(ev) {
  ev.preventDefault();
  const body = { tenant: $("key-tenant").value.trim() };
  if ($("key-id").value.trim()) body.id = $("key-id").value.trim();
  const models = $("key-models").value.split(",").map((m) => m.trim()).filter(Boolean);
  if (models.length) body.models = models;
  if ($("key-rpm").value) body.rpm = Number($("key-rpm").value);
  if ($("key-budget").value) body.budget = { usd: Number($("key-budget").value), period: "month" };
  try {
    const made = await call("/admin/keys", {}, { method: "POST", headers: { Authorization: "Bearer " + S.key, "Content-Type": "application/json" },
      body: JSON.stringify(body) });
    $("key-secret").replaceChildren(el("strong", {}, `Key ${made.id} for ${made.tenant}: `), el("code", { id: "key-secret-value" }, made.key),
      el("span", {}, " (copy it now: it is not shown again)"));
    $("key-secret").hidden = false;
    $("key-form").reset();
    await show("keys");
  } catch (e) { fail(e); }
}

async function revokeKey(id) {
  try {
    await call(`/admin/keys/${encodeURIComponent(id)}/revoke`, {}, { method: "POST", headers: { Authorization: "Bearer " + S.key } });
    $("key-secret").hidden = true;
    await show("keys");
  } catch (e) { fail(e); }
}

VIEWS.keys = viewKeys;
document.addEventListener("DOMContentLoaded", () => {
  $("key-form").addEventListener("submit", issueKey);
});
