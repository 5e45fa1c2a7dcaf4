// Plays a shell session's asciicast v2 recording with asciinema-player. When
// the page's Content-Security-Policy does not allow WebAssembly (the player's
// terminal emulator is compiled to it; see docs/shell.md) the recording is
// replayed with xterm.js instead.
import { Terminal } from "/shell/vendor/xterm.mjs";
import { api, authHeaders } from "/js/api.js";

const id = new URLSearchParams(location.search).get("session") ?? "";
const statusEl = document.getElementById("status");
const el = document.getElementById("player");
const state = { mode: null, done: false, cast: "", text: () => "" };
window.exoReplay = state;

try {
  const meta = await api("GET", `/api/v1/sessions/${encodeURIComponent(id)}`);
  document.getElementById("title").textContent =
    `${meta.user_email} on ${meta.namespace}/${meta.agent} · ${new Date(meta.started_at).toLocaleString()} · ${meta.duration_seconds.toFixed(1)} s`;
  const res = await fetch(meta.recording_url, { headers: authHeaders(), cache: "no-store" });
  if (!res.ok) throw new Error(`recording: HTTP ${res.status}`);
  state.cast = await res.text();
  const dl = document.getElementById("download");
  dl.href = URL.createObjectURL(new Blob([state.cast], { type: "application/x-asciicast" }));
  dl.download = `${id}.cast`;
  dl.hidden = false;
  if (await wasmAllowed()) {
    state.mode = "asciinema-player";
    const player = window.AsciinemaPlayer.create({ data: state.cast }, el, { autoPlay: true, speed: 2, idleTimeLimit: 1, fit: "width" });
    player.addEventListener("ended", () => { state.done = true; statusEl.textContent = "played"; });
    state.text = () => el.textContent;
  } else {
    state.mode = "xterm";
    await replayWithXterm(state.cast);
    state.done = true;
    statusEl.textContent = "played";
  }
  if (!state.done) statusEl.textContent = "playing";
} catch (e) {
  statusEl.textContent = e.message;
  statusEl.dataset.state = "error";
}

// wasmAllowed compiles the smallest WebAssembly module: it fails exactly
// when the CSP lacks 'wasm-unsafe-eval'.
async function wasmAllowed() {
  try {
    await WebAssembly.compile(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]));
    return true;
  } catch {
    return false;
  }
}

async function replayWithXterm(cast) {
  const [headerLine, ...lines] = cast.split("\n").filter((l) => l.trim() !== "");
  const header = JSON.parse(headerLine);
  const term = new Terminal({ cols: header.width, rows: header.height, disableStdin: true, scrollback: 5000 });
  term.open(el);
  state.text = () => {
    const b = term.buffer.active, out = [];
    for (let i = 0; i < b.length; i++) out.push(b.getLine(i)?.translateToString(true) ?? "");
    return out.join("\n");
  };
  statusEl.textContent = "playing";
  let last = 0;
  for (const line of lines) {
    const [t, code, data] = JSON.parse(line);
    const gap = Math.min(t - last, 1) / 2; // idle time capped at 1 s, double speed
    last = t;
    if (gap > 0.01) await new Promise((r) => setTimeout(r, gap * 1000));
    if (code === "o") await new Promise((r) => term.write(data, r));
    else if (code === "r") {
      const [c, r] = data.split("x").map(Number);
      if (c > 0 && r > 0) term.resize(c, r);
    }
  }
}
