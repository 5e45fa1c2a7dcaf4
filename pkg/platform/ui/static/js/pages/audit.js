// Audit log: newest first, paged with the API's cursor, filtered by action,
// actor and target. The API pages by id; filters apply to the loaded pages
// and "Load older" keeps fetching until the filter has matches to show.

import { get, enc } from "../api.js";
import { h, replace, fmtTime, errorBox, showError, field } from "../dom.js";

const COLS = ["Time", "Actor", "Action", "Target", "Details", "From"];
const PAGE = 50;

export function list(ctx) {
  const errEl = errorBox("audit-error");
  const tbody = h("tbody", { class: "loading" }, Array.from({ length: 5 }, () => h("tr", null, COLS.map(() => h("td", null, "…")))));
  const more = h("button", { type: "button", class: "btn", id: "audit-more", hidden: true }, "Load older events");
  const count = h("span", { class: "muted", role: "status", id: "audit-count" });
  const actionSel = h("select", { name: "action", id: "audit-action" }, h("option", { value: "" }, "All actions"));
  const filters = h("form", { class: "filters", role: "search", "aria-label": "Filter audit events" },
    h("div", { class: "field" }, h("label", { for: "audit-action" }, "Action"), actionSel),
    field("Actor", { name: "actor", type: "search", placeholder: "e-mail" }),
    field("Target", { name: "target", type: "search", placeholder: "id or type" }),
    h("button", { type: "reset", class: "btn" }, "Clear"));
  replace(ctx.main,
    h("div", { class: "page-head" }, h("div", null, h("h1", null, "Audit log"),
      h("p", { class: "muted" }, "Every change in this tenant: who, what, when and from where.")),
      h("button", { type: "button", class: "btn", onclick: () => reload() }, "Refresh")),
    filters, errEl,
    h("div", { class: "table-wrap" }, h("table", { class: "stack", id: "audit-table" },
      h("caption", { class: "sr-only" }, "Audit events, newest first"),
      h("thead", null, h("tr", null, COLS.map((c) => h("th", { scope: "col" }, c)))), tbody)),
    h("div", { class: "pager" }, count, more));

  let events = [];
  let cursor = "";
  let done = false;

  const crit = () => {
    const fd = new FormData(filters);
    return { action: fd.get("action") || "", actor: (fd.get("actor") || "").toLowerCase(), target: (fd.get("target") || "").toLowerCase() };
  };
  const matches = (e, c) => (!c.action || e.action === c.action)
    && (!c.actor || (e.actor_email || "").toLowerCase().includes(c.actor))
    && (!c.target || `${e.target_type} ${e.target_id} ${e.detail}`.toLowerCase().includes(c.target));

  function render() {
    const c = crit();
    const shown = events.filter((e) => matches(e, c));
    tbody.classList.remove("loading");
    replace(tbody, shown.length ? shown.map(row) : h("tr", null, h("td", { colspan: COLS.length, class: "empty" }, events.length ? "No loaded events match the filters." : "No events yet.")));
    count.textContent = `${shown.length} of ${events.length} loaded events${done ? "" : " (more available)"}`;
    more.hidden = done;
    const actions = [...new Set(events.map((e) => e.action))].sort();
    const cur = actionSel.value;
    replace(actionSel, h("option", { value: "" }, "All actions"), actions.map((a) => h("option", { value: a, selected: a === cur }, a)));
  }

  async function page() {
    more.disabled = true;
    try {
      const res = await get(`/api/v1/audit?limit=${PAGE}${cursor ? `&cursor=${enc(cursor)}` : ""}`);
      events = events.concat(res.items || []);
      cursor = res.next_cursor || "";
      done = !cursor;
      showError(errEl, null);
    } catch (e) { showError(errEl, e); } finally { more.disabled = false; }
  }

  async function reload() {
    events = []; cursor = ""; done = false;
    await page();
    render();
  }

  more.addEventListener("click", async () => { await page(); render(); });
  filters.addEventListener("input", render);
  filters.addEventListener("reset", () => setTimeout(render));
  filters.addEventListener("submit", (e) => e.preventDefault());
  reload();
}

function row(e) {
  let detail = "";
  try {
    const d = JSON.parse(e.detail || "{}");
    detail = Object.entries(d).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(" ");
  } catch { detail = e.detail || ""; }
  return h("tr", { dataset: { action: e.action } },
    h("td", { "data-label": "Time", class: "tnum" }, h("time", { datetime: e.created_at }, fmtTime(e.created_at))),
    h("td", { "data-label": "Actor" }, e.actor_email || e.actor_id || "system"),
    h("td", { "data-label": "Action" }, h("code", null, e.action)),
    h("td", { "data-label": "Target", class: "wrap" }, e.target_type ? `${e.target_type} ${e.target_id}` : "—"),
    h("td", { "data-label": "Details", class: "wrap" }, detail || "—"),
    h("td", { "data-label": "From" }, e.remote_addr || "—"));
}
