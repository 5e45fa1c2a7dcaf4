// Deployments: create (token shown once), rotate, delete, and live status
// with the last heartbeat. The raw token exists only in this page's memory:
// the API returns it once and stores only its hash, so a reload shows the
// prefix and issue time only.

import { get, post, del, enc } from "../api.js";
import { h, replace, statusBadge, timeEl, fmtTime, fmtShort, copyButton, field, errorBox, showError, announce } from "../dom.js";

const COLS = ["Name", "Status", "Last heartbeat", "Token", "Created", ""];

export function list(ctx) {
  const can = (p) => ctx.me.permissions.includes(p);
  const tokenSlot = h("div", { id: "token-slot" });
  const errEl = errorBox("deployments-error");
  const tbody = h("tbody", { class: "loading" }, skeletonRows(2));
  const rows = new Map(); // deployment id -> { tr, d }

  const createForm = h("form", { class: "inline-form", id: "create-deployment", "aria-label": "New deployment" },
    field("Deployment name", { name: "name", required: true, maxlength: 100, placeholder: "prod-eu-west-1", autocomplete: "off" }),
    h("button", { type: "submit", class: "btn primary" }, "Create deployment"));
  createForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const btn = createForm.querySelector("button");
    btn.disabled = true;
    showError(errEl, null);
    try {
      const name = new FormData(createForm).get("name");
      const res = await post("/api/v1/deployments", { name });
      createForm.reset();
      showToken(tokenSlot, res, "created");
      upsert(res.deployment);
    } catch (err) {
      showError(errEl, err);
    } finally {
      btn.disabled = false;
    }
  });

  replace(ctx.main,
    h("div", { class: "page-head" },
      h("div", null, h("h1", null, "Deployments"),
        h("p", { class: "muted" }, "Each deployment is one Kubernetes cluster whose agentkube operator connects to Exo with its own token."))),
    can("deployments:write") ? h("section", { class: "panel", "aria-label": "Create a deployment" }, createForm) : null,
    tokenSlot,
    errEl,
    h("div", { class: "table-wrap" },
      h("table", { class: "stack", id: "deployments-table" },
        h("caption", { class: "sr-only" }, "Deployments and their live status"),
        h("thead", null, h("tr", null, COLS.map((c) => h("th", { scope: "col" }, c || h("span", { class: "sr-only" }, "Actions"))))),
        tbody)));

  function row(d) {
    const tr = h("tr", { dataset: { id: d.id } });
    fill(tr, d);
    return tr;
  }

  function fill(tr, d) {
    const actions = h("div", { class: "actions" },
      can("deployments:write") ? h("button", { type: "button", class: "btn small", onclick: () => rotate(d) }, "Rotate token") : null,
      can("deployments:delete") ? h("button", { type: "button", class: "btn small danger", onclick: () => remove(d) }, "Delete") : null);
    replace(tr,
      h("td", { "data-label": "Name" }, h("a", { href: `/deployments/${enc(d.id)}`, "data-link": true }, d.name)),
      h("td", { "data-label": "Status", class: "status-cell" }, statusBadge(d.status)),
      h("td", { "data-label": "Last heartbeat", class: "heartbeat-cell tnum" }, timeEl(d.last_heartbeat_at)),
      h("td", { "data-label": "Token", class: "tnum" }, h("code", null, `${d.token_prefix}…`), h("span", { class: "muted" }, " · ", h("time", { datetime: d.token_issued_at, title: fmtTime(d.token_issued_at) }, new Date(d.token_issued_at).toLocaleDateString()))),
      h("td", { "data-label": "Created", class: "tnum" }, h("time", { datetime: d.created_at, title: fmtTime(d.created_at) }, fmtShort(d.created_at))),
      h("td", { "data-label": "Actions" }, actions));
  }

  function upsert(d) {
    const cur = rows.get(d.id);
    if (cur) {
      cur.d = { ...cur.d, ...d };
      fill(cur.tr, cur.d);
      return;
    }
    const tr = row(d);
    rows.set(d.id, { tr, d });
    tbody.querySelector(".empty-row")?.remove();
    tbody.prepend(tr);
  }

  async function load() {
    try {
      const res = await get("/api/v1/deployments");
      rows.clear();
      tbody.classList.remove("loading");
      const items = res.items || [];
      replace(tbody, items.length ? items.map((d) => { const tr = row(d); rows.set(d.id, { tr, d }); return tr; }) : emptyRow());
    } catch (err) {
      showError(errEl, err);
    }
  }

  async function rotate(d) {
    const ok = await confirmDialog(`Rotate the token of ${d.name}?`,
      "A new token is issued and shown once. The operator keeps its current connection; the old token is refused at its next reconnect, so update the agentkube-auth Secret and restart the manager.",
      "Rotate token");
    if (!ok) return;
    try {
      const res = await post(`/api/v1/deployments/${enc(d.id)}/rotate`);
      showToken(tokenSlot, res, "rotated");
      upsert(res.deployment);
    } catch (err) { showError(errEl, err); }
  }

  async function remove(d) {
    const ok = await confirmDialog(`Delete ${d.name}?`, "Its operator will no longer be able to connect. This cannot be undone.", "Delete deployment", true);
    if (!ok) return;
    try {
      await del(`/api/v1/deployments/${enc(d.id)}`);
      dropRow(d.id);
      announce(`Deployment ${d.name} deleted`);
    } catch (err) { showError(errEl, err); }
  }

  function dropRow(id) {
    rows.get(id)?.tr.remove();
    rows.delete(id);
    if (!rows.size) replace(tbody, emptyRow());
  }

  const offs = [
    ctx.live.on("deployment", (ev) => {
      if (ev.removed) return dropRow(ev.deployment_id);
      const cur = rows.get(ev.deployment_id);
      if (!cur) return load(); // created elsewhere: fetch the full row
      const before = cur.d.status;
      upsert({ id: ev.deployment_id, status: ev.status, ...(ev.last_heartbeat_at ? { last_heartbeat_at: ev.last_heartbeat_at } : {}) });
      if (before !== ev.status) announce(`${cur.d.name} is ${ev.status}`);
    }),
    ctx.live.on("resync", load),
  ];
  load();
  return () => offs.forEach((off) => off());
}

function skeletonRows(n) {
  return Array.from({ length: n }, () => h("tr", null, COLS.map(() => h("td", null, "…"))));
}

function emptyRow() {
  return h("tr", { class: "empty-row" }, h("td", { colspan: COLS.length, class: "empty" }, "No deployments yet. Create one to connect a cluster."));
}

// showToken renders the one-time token with the exact commands to install it.
export function showToken(slot, res, verb) {
  const { deployment: d, token } = res;
  const base = location.origin;
  const secret = `kubectl create secret generic agentkube-auth -n agentkube-system --from-literal=token=${token}`;
  const helm = `helm upgrade --install agentkube ./agentkube/helm/agentkube -n agentkube-system --create-namespace --set manager.managed=true --set manager.baseURL=${base}`;
  const line = (label, id, text) => h("div", null,
    h("h3", { id: `${id}-label` }, label),
    h("div", { class: "copyable" }, h("pre", { id, "aria-labelledby": `${id}-label` }, text), copyButton(`Copy`, () => text)));
  const panel = h("section", { class: "panel token-panel", id: "token-panel", role: "region", "aria-labelledby": "token-title", tabindex: "-1" },
    h("h2", { id: "token-title" }, `Token for ${d.name} ${verb}`),
    h("p", { class: "notice" }, "Copy it now: this is the only time Exo shows it. Only its hash is stored."),
    line("Deployment token", "new-token", token),
    line("1. Store it in the cluster", "kubectl-line", secret),
    line("2. Install or upgrade the operator in managed mode", "helm-line", helm),
    h("p", { class: "muted" }, "If the agentkube-auth Secret already exists, delete it first or add ", h("code", null, "--dry-run=client -o yaml | kubectl apply -f -"), "."),
    h("button", { type: "button", class: "btn", onclick: () => { panel.remove(); announce("Token hidden"); } }, "I have stored the token"));
  replace(slot, panel);
  panel.focus();
}

// confirmDialog is a modal <dialog>: focus is trapped by the browser, Esc cancels.
export function confirmDialog(title, text, action, danger = false) {
  return new Promise((resolve) => {
    const dlg = h("dialog", { "aria-labelledby": "dlg-title" },
      h("form", { method: "dialog" },
        h("h2", { id: "dlg-title" }, title),
        h("p", null, text),
        h("div", { class: "actions" },
          h("button", { value: "cancel", class: "btn", autofocus: true }, "Cancel"),
          h("button", { value: "ok", class: `btn ${danger ? "danger" : "primary"}` }, action))));
    dlg.addEventListener("close", () => { resolve(dlg.returnValue === "ok"); dlg.remove(); });
    document.body.append(dlg);
    dlg.showModal();
  });
}
