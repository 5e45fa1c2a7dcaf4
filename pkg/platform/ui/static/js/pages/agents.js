// Agents of a deployment: a live list (runtime, phase, ready, last run) and
// an agent's details (conditions, recent AgentRuns) with Invoke. The data is
// the deployment's cluster view, which the operator keeps current over the
// tunnel; "cluster" events on the live stream say when to refetch it.

import { get, authHeaders, enc, APIError } from "../api.js";
import { h, replace, statusBadge, timeEl, fmtTime, errorBox, showError, announce, field } from "../dom.js";

const COLS = ["Agent", "Namespace", "Runtime", "Phase", "Ready", "Last run"];
// The list also refreshes on this period, so it stays current even when the
// live stream is interrupted or an exo-app replica does not publish cluster
// events; the live stream is what makes changes appear within a second.
const SAFETY_REFRESH_MS = 10000;

// watchCluster calls load now, on every cluster event of deployment id, on
// resync, and on the safety period; returns the cleanup.
function watchCluster(ctx, id, load) {
  let pending = null;
  const soon = () => { clearTimeout(pending); pending = setTimeout(load, 150); }; // coalesce bursts of deltas
  const offs = [
    ctx.live.on("cluster", (ev) => { if (ev.deployment_id === id) soon(); }),
    ctx.live.on("deployment", (ev) => { if (ev.deployment_id === id) soon(); }),
    ctx.live.on("resync", soon),
  ];
  const timer = setInterval(() => { if (document.visibilityState === "visible") load(); }, SAFETY_REFRESH_MS);
  load();
  return () => { offs.forEach((f) => f()); clearInterval(timer); clearTimeout(pending); };
}

function deploymentHeader(d, title, extra) {
  return h("div", { class: "page-head" },
    h("div", null,
      h("p", { class: "crumbs" }, h("a", { href: "/deployments", "data-link": true }, "Deployments"), " / ",
        d ? h("a", { href: `/deployments/${enc(d.id)}`, "data-link": true }, d.name) : "…"),
      h("h1", null, title)),
    extra);
}

export function list(ctx) {
  const [id] = ctx.params;
  const errEl = errorBox("agents-error");
  const statusBox = h("div", { class: "kv-inline", id: "deployment-live" });
  const tbody = h("tbody", { class: "loading" }, Array.from({ length: 3 }, () => h("tr", null, COLS.map(() => h("td", null, "…")))));
  const head = h("div");
  let dep = null;

  replace(ctx.main, head, errEl,
    h("section", { class: "panel", "aria-labelledby": "dep-status-title" },
      h("h2", { id: "dep-status-title" }, "Connection"), statusBox),
    h("div", { class: "table-wrap" },
      h("table", { class: "stack", id: "agents-table" },
        h("caption", { class: "sr-only" }, "Agents in this deployment, updated live"),
        h("thead", null, h("tr", null, COLS.map((c) => h("th", { scope: "col" }, c)))),
        tbody)));
  replace(head, deploymentHeader(null, "Agents"));
  renderStatus(null, null);

  function renderStatus(d, view) {
    const last = view?.last_seen_at || d?.last_heartbeat_at;
    replace(statusBox, h("dl", { class: "kv" },
      h("dt", null, "Status"), h("dd", { class: "status-cell" }, statusBadge(view?.status || d?.status || "unknown")),
      h("dt", null, "Last heartbeat"), h("dd", { class: "heartbeat-cell tnum" }, timeEl(last)),
      h("dt", null, "Cluster"), h("dd", null, view?.cluster_id || "—"),
      h("dt", null, "View"), h("dd", { id: "view-state" }, view ? (view.over_budget ? h("span", { class: "error" }, view.detail || "view over budget") : view.synced ? "in sync" : "waiting for the operator's snapshot") : "—")));
  }

  const known = new Set();
  let first = true;
  async function load() {
    try {
      const [d, agents, view] = await Promise.all([
        get(`/api/v1/deployments/${enc(id)}`),
        get(`/api/v1/deployments/${enc(id)}/agents`),
        get(`/api/v1/deployments/${enc(id)}/cluster?kind=-`).catch(() => null),
      ]);
      showError(errEl, null);
      if (!dep) replace(head, deploymentHeader(d, `Agents of ${d.name}`));
      dep = d;
      document.title = `Agents · ${d.name} · Exo`;
      renderStatus(d, view);
      tbody.classList.remove("loading");
      const items = agents.items || [];
      if (!items.length) {
        replace(tbody, h("tr", { class: "empty-row" }, h("td", { colspan: COLS.length, class: "empty" },
          agents.connected ? "No agents in this cluster yet." : "No agents to show: the operator has not connected yet.")));
      } else {
        replace(tbody, items.map((a) => agentRow(id, a)));
      }
      const fresh = items.filter((a) => !known.has(`${a.namespace}/${a.name}`));
      if (!first && fresh.length) announce(`${fresh.length} new agent${fresh.length > 1 ? "s" : ""}: ${fresh.map((a) => a.name).join(", ")}`);
      items.forEach((a) => known.add(`${a.namespace}/${a.name}`));
      first = false;
    } catch (e) {
      showError(errEl, e);
    }
  }
  return watchCluster(ctx, id, load);
}

function agentRow(depId, a) {
  let lastRun = "";
  try { lastRun = a.agent ? (typeof a.agent === "string" ? JSON.parse(a.agent) : a.agent)?.status?.lastRun || "" : ""; } catch { /* keep empty */ }
  return h("tr", { dataset: { agent: `${a.namespace}/${a.name}` } },
    h("td", { "data-label": "Agent" }, h("a", { href: `/deployments/${enc(depId)}/agents/${enc(a.namespace)}/${enc(a.name)}`, "data-link": true }, a.name)),
    h("td", { "data-label": "Namespace" }, a.namespace),
    h("td", { "data-label": "Runtime" }, a.runtime || "—"),
    h("td", { "data-label": "Phase" }, statusBadge(a.phase || "Unknown")),
    h("td", { "data-label": "Ready", class: "tnum" }, a.ready || "—"),
    h("td", { "data-label": "Last run" }, lastRun || h("span", { class: "muted" }, "none")));
}

export function detail(ctx) {
  const [id, ns, name] = ctx.params;
  const errEl = errorBox("agent-error");
  const head = h("div");
  const info = h("div", { class: "panel", id: "agent-info" }, h("h2", null, "Status"), h("p", { class: "muted" }, "Loading…"));
  const runsBox = h("section", { class: "panel", "aria-labelledby": "runs-title" }, h("h2", { id: "runs-title" }, "Recent runs"), h("p", { class: "muted" }, "Loading…"));
  const invokeBox = invokePanel(ctx, id, ns, name);
  replace(ctx.main, head, errEl, h("div", { class: "grid2" }, h("div", null, invokeBox, runsBox), info));
  replace(head, deploymentHeader(null, name));

  let dep = null;
  async function load() {
    try {
      const [d, view] = await Promise.all([get(`/api/v1/deployments/${enc(id)}`), get(`/api/v1/deployments/${enc(id)}/cluster`)]);
      if (!dep) {
        // The terminal is its own page (xterm.js); it opens the shell WebSocket with a grant.
        const shell = h("a", { class: "btn", href: `/shell/terminal.html?deployment=${enc(id)}&namespace=${enc(ns)}&agent=${enc(name)}` }, "Open shell");
        replace(head, deploymentHeader(d, name, h("div", null, h("span", { class: "muted" }, `namespace ${ns}`), " ", shell)));
      }
      dep = d;
      const objs = view.objects || [];
      const agent = objs.find((o) => o.kind === "Agent" && o.namespace === ns && o.name === name);
      const runs = objs.filter((o) => o.kind === "AgentRun" && o.namespace === ns && o.object?.spec?.agentRef?.name === name)
        .sort((a, b) => (b.object?.metadata?.creationTimestamp || "").localeCompare(a.object?.metadata?.creationTimestamp || ""))
        .slice(0, 10);
      renderInfo(agent?.object, view);
      renderRuns(runs);
      showError(errEl, null);
    } catch (e) { showError(errEl, e); }
  }

  function renderInfo(a, view) {
    if (!a) {
      replace(info, h("h2", null, "Status"), h("p", { class: "muted" }, view.synced ? "This agent is not in the cluster view (deleted?)." : "Waiting for the operator's snapshot…"));
      return;
    }
    const st = a.status || {};
    const sp = a.spec || {};
    replace(info,
      h("h2", null, "Status"),
      h("dl", { class: "kv" },
        h("dt", null, "Phase"), h("dd", null, statusBadge(st.phase || "Unknown")),
        h("dt", null, "Runtime"), h("dd", null, sp.runtime || "—"),
        h("dt", null, "Mode"), h("dd", null, sp.mode || "—"),
        h("dt", null, "Ready"), h("dd", { class: "tnum" }, st.ready || "—"),
        h("dt", null, "Pod"), h("dd", null, st.podName || "—"),
        h("dt", null, "Image"), h("dd", null, st.image || sp.image || "—"),
        h("dt", null, "Paused"), h("dd", null, sp.paused ? "yes" : "no"),
        h("dt", null, "Last run"), h("dd", null, st.lastRun || "—"),
        h("dt", null, "Schedule"), h("dd", null, sp.schedule || "—")),
      h("h3", null, "Conditions"),
      (st.conditions || []).length ? h("ul", { class: "plain conditions" }, st.conditions.map((c) => h("li", null,
        h("div", { class: "cond-head" }, h("strong", null, c.type), statusBadge(c.status), timeEl(c.lastTransitionTime)),
        c.reason ? h("div", null, h("code", null, c.reason)) : null,
        c.message ? h("div", { class: "muted" }, c.message) : null))) : h("p", { class: "muted" }, "No conditions reported."));
  }

  function renderRuns(runs) {
    replace(runsBox, h("h2", { id: "runs-title" }, "Recent runs"),
      runs.length ? h("div", { class: "table-wrap" }, h("table", { class: "stack", id: "runs-table" },
        h("thead", null, h("tr", null, ["Run", "Phase", "Trigger", "Started", "Exit"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", null, runs.map((r) => {
          const st = r.object?.status || {};
          return h("tr", null,
            h("td", { "data-label": "Run" }, r.name),
            h("td", { "data-label": "Phase" }, statusBadge(st.phase || "Pending")),
            h("td", { "data-label": "Trigger" }, r.object?.spec?.trigger || "—"),
            h("td", { "data-label": "Started" }, timeEl(st.startTime)),
            h("td", { "data-label": "Exit", class: "tnum" }, st.exitCode ?? "—"));
        })))) : h("p", { class: "muted" }, "No runs yet."));
  }

  const stop = watchCluster(ctx, id, load);
  return () => { stop(); invokeBox.abort?.(); };
}

// invokePanel runs the agent with an input and shows its output as it
// arrives. The invoke endpoint may answer with a stream (NDJSON lines
// {"output":"..."} then the result, or text/event-stream with "output" and
// "result" events) or with one JSON result; both are rendered the same way.
function invokePanel(ctx, id, ns, name) {
  const can = ctx.me.permissions.includes("agents:invoke");
  const out = h("pre", { class: "output", id: "invoke-output", role: "log", "aria-label": "Agent output", tabindex: "0" });
  const status = h("p", { class: "run-status", id: "invoke-status", role: "status" });
  const errEl = errorBox("invoke-error");
  const form = h("form", { id: "invoke-form" },
    field("Input", { tag: "textarea", name: "input", rows: 4, required: true, placeholder: "What should the agent do?" }),
    field("Timeout (seconds)", { name: "timeout_seconds", type: "number", min: 1, max: 3600, value: "120", inputmode: "numeric" }),
    h("button", { type: "submit", class: "btn primary", disabled: !can }, "Invoke"),
    can ? null : h("p", { class: "hint" }, "You need the agents:invoke permission."));
  const panel = h("section", { class: "panel", "aria-labelledby": "invoke-title" },
    h("h2", { id: "invoke-title" }, "Invoke"), form, errEl, status, out);
  let ctrl = null;
  panel.abort = () => ctrl?.abort();

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const fd = new FormData(form);
    const btn = form.querySelector("button[type=submit]");
    btn.disabled = true;
    showError(errEl, null);
    out.textContent = "";
    status.textContent = "Running…";
    ctrl = new AbortController();
    const started = Date.now();
    try {
      const res = await fetch(`/api/v1/deployments/${enc(id)}/agents/${enc(ns)}/${enc(name)}/invoke`, {
        method: "POST", signal: ctrl.signal, cache: "no-store",
        headers: { "Content-Type": "application/json", Accept: "application/x-ndjson, text/event-stream, application/json", ...authHeaders() },
        body: JSON.stringify({ input: fd.get("input"), timeout_seconds: Number(fd.get("timeout_seconds")) || 120 }),
      });
      const result = await readInvocation(res, (chunk) => {
        out.append(chunk);
        out.scrollTop = out.scrollHeight;
      });
      const secs = ((Date.now() - started) / 1000).toFixed(1);
      status.textContent = `${result.run_name || "Run"}: ${result.phase || "done"}${result.exit_code != null ? `, exit code ${result.exit_code}` : ""} (${secs}s)`;
      if (result.message) status.textContent += ` — ${result.message}`;
      announce(`Run finished: ${result.phase || "done"}`);
    } catch (err) {
      if (err.name === "AbortError") return;
      status.textContent = "";
      showError(errEl, err);
    } finally {
      btn.disabled = !can;
    }
  });
  return panel;
}

// readInvocation consumes an invoke response, calling onOutput for every
// piece of output, and returns the final result.
async function readInvocation(res, onOutput) {
  const type = (res.headers.get("Content-Type") || "").split(";")[0].trim();
  if (!res.ok) {
    const body = await res.json().catch(() => null);
    throw new APIError(res.status, body?.error?.code, body?.error?.message);
  }
  if (type !== "application/x-ndjson" && type !== "text/event-stream") {
    const r = await res.json();
    if (r.output) onOutput(r.output);
    return r;
  }
  let result = {};
  let streamed = false;
  const handle = (kind, msg) => {
    if (kind === "output" || (msg.output != null && kind !== "result")) { streamed = true; onOutput(msg.output ?? msg.data ?? ""); }
    else if (kind === "result" || msg.phase || msg.run_name) { result = msg; if (!streamed && msg.output) onOutput(msg.output); }
    else if (msg.error) throw new APIError(502, msg.error.code, msg.error.message);
  };
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  let evType = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl).replace(/\r$/, "");
      buf = buf.slice(nl + 1);
      if (type === "application/x-ndjson") {
        if (line.trim()) { const m = JSON.parse(line); handle(m.type || "", m); }
      } else if (line.startsWith("event:")) evType = line.slice(6).trim();
      else if (line.startsWith("data:")) handle(evType, JSON.parse(line.slice(5)));
      else if (line === "") evType = "";
    }
  }
  return result;
}
