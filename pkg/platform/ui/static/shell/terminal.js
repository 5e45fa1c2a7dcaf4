// The browser shell: asks the API for a single-use grant, opens the shell
// WebSocket with it (the JWT travels in the subprotocol list, never in the
// URL), and connects xterm.js to it. Binary messages are terminal bytes both
// ways; text messages are JSON control messages (see docs/shell.md).
import { Terminal } from "/shell/vendor/xterm.mjs";
import { FitAddon } from "/shell/vendor/addon-fit.mjs";
import { api, session } from "/js/api.js";

const q = new URLSearchParams(location.search);
const deployment = q.get("deployment") ?? "";
const namespace = q.get("namespace") ?? "";
const agent = q.get("agent") ?? "";
const statusEl = document.getElementById("status");
document.getElementById("title").textContent = `${namespace}/${agent}`;

const term = new Terminal({ cursorBlink: true, scrollback: 5000, fontFamily: "ui-monospace, monospace" });
const fit = new FitAddon();
term.loadAddon(fit);
term.open(document.getElementById("terminal"));
fit.fit();

// State for people (the status line) and for tests (window.exoShell).
const state = { status: "connecting", sessionId: null, exit: null, term,
  text() {
    const b = term.buffer.active, lines = [];
    for (let i = 0; i < b.length; i++) lines.push(b.getLine(i)?.translateToString(true) ?? "");
    return lines.join("\n");
  } };
window.exoShell = state;
function setStatus(s, text, error = false) {
  state.status = s;
  statusEl.textContent = text;
  statusEl.dataset.state = error ? "error" : s;
}

const path = (...p) => p.map(encodeURIComponent).join("/");
let ws;
try {
  const grant = await api("POST", `/api/v1/deployments/${path(deployment)}/agents/${path(namespace, agent)}/shell`,
    { cols: term.cols, rows: term.rows });
  ws = new WebSocket(grant.ws_url, ["exo-shell.v1", "exo-auth." + session.token]);
} catch (e) {
  setStatus("error", `cannot open a shell: ${e.message}`, true);
  throw e;
}
ws.binaryType = "arraybuffer";
const encoder = new TextEncoder();

ws.addEventListener("open", () => setStatus("starting", "starting shell…"));
ws.addEventListener("message", (ev) => {
  if (typeof ev.data !== "string") {
    term.write(new Uint8Array(ev.data));
    return;
  }
  const m = JSON.parse(ev.data);
  switch (m.type) {
    case "session":
      state.sessionId = m.session_id;
      break;
    case "started":
      setStatus("open", `connected to ${m.pod}/${m.container}`);
      term.focus();
      break;
    case "exit":
      state.exit = m;
      if (m.error) setStatus("closed", `ended: ${m.error.message}`, true);
      else if (m.exit_code !== undefined) setStatus("closed", `exited with code ${m.exit_code}`);
      else setStatus("closed", `ended (${m.reason})`);
      break;
  }
});
ws.addEventListener("close", (ev) => {
  if (state.status !== "closed") setStatus("closed", `disconnected (${ev.code})`, ev.code !== 1000);
  term.options.disableStdin = true;
});

term.onData((d) => { if (ws.readyState === WebSocket.OPEN) ws.send(encoder.encode(d)); });
term.onBinary((d) => {
  if (ws.readyState !== WebSocket.OPEN) return;
  ws.send(Uint8Array.from(d, (c) => c.charCodeAt(0) & 0xff));
});
const sendSize = ({ cols, rows }) => {
  if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "resize", cols, rows }));
};
term.onResize(sendSize);
ws.addEventListener("open", () => sendSize(term));
new ResizeObserver(() => fit.fit()).observe(document.getElementById("terminal"));
