// Sessions: browser-shell recordings (GET /api/v1/sessions, served when the
// shell is mounted; without it the page says that nothing is recorded).
// Recordings download with the Authorization header through a blob URL.

import { get, authHeaders, enc } from "../api.js";
import { h, replace, timeEl, errorBox, showError } from "../dom.js";

const COLS = ["Agent", "User", "Started", "Duration", "Exit", ""];

export function list(ctx) {
  const errEl = errorBox("sessions-error");
  const body = h("div", { id: "sessions-body" }, h("p", { class: "muted" }, "Loading…"));
  replace(ctx.main,
    h("div", { class: "page-head" }, h("div", null, h("h1", null, "Sessions"),
      h("p", { class: "muted" }, "Recorded browser-shell sessions into agents (asciicast v2)."))),
    errEl, body);
  (async () => {
    try {
      const res = await get("/api/v1/sessions");
      const items = res.items || [];
      replace(body, items.length ? h("div", { class: "table-wrap" }, h("table", { class: "stack" },
        h("thead", null, h("tr", null, COLS.map((c) => h("th", { scope: "col" }, c || h("span", { class: "sr-only" }, "Actions"))))),
        h("tbody", null, items.map((s) => h("tr", null,
          h("td", { "data-label": "Agent" }, [s.namespace, s.agent].filter(Boolean).join("/") || "—"),
          h("td", { "data-label": "User" }, s.user_email || "—"),
          h("td", { "data-label": "Started" }, timeEl(s.started_at)),
          h("td", { "data-label": "Duration", class: "tnum" }, duration(s)),
          h("td", { "data-label": "Exit", class: "tnum" }, s.ended_at ? (s.exit_code ?? s.end_reason ?? "—") : "live"),
          h("td", { "data-label": "Recording" }, recordingCell(s)))))))
        : h("p", { class: "empty" }, "No sessions recorded yet."));
    } catch (e) {
      if (e.status === 404) {
        replace(body, h("section", { class: "panel" }, h("h2", null, "No recordings yet"),
          h("p", null, "Shell sessions opened from an agent's page will be listed here with who opened them, on which agent, when and for how long, and can be downloaded or played back.")));
        return;
      }
      showError(errEl, e);
      replace(body);
    }
  })();
}

function duration(s) {
  const ms = s.duration_ms ?? (s.ended_at && s.started_at ? new Date(s.ended_at) - new Date(s.started_at) : null);
  if (ms == null) return "—";
  const t = Math.round(ms / 1000);
  return t < 60 ? `${t}s` : `${Math.floor(t / 60)}m ${t % 60}s`;
}

// download fetches the cast with the Authorization header (a plain link
// could not carry it) and saves it through a blob URL.
async function download(s) {
  const res = await fetch(`/api/v1/sessions/${enc(s.id)}/recording`, { headers: authHeaders(), cache: "no-store" });
  if (!res.ok) return;
  const url = URL.createObjectURL(await res.blob());
  const a = h("a", { href: url, download: `${s.id}.cast` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// recordingCell offers the download, or says why there is none.
function recordingCell(s) {
  if (s.recording_available === false) return h("span", { class: "muted", title: "Removed after the retention period (EXO_CAST_RETENTION)" }, "Removed (retention)");
  if (!s.recording_bytes) return h("span", { class: "muted" }, "—");
  return h("button", { type: "button", class: "btn small", onclick: () => download(s) }, "Download recording");
}
