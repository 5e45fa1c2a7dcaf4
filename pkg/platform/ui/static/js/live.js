// Live updates: a Server-Sent Events stream read with fetch, because
// EventSource cannot send the Authorization header and the JWT must never be
// put in a URL. The stream reconnects with backoff and full jitter and sends
// Last-Event-ID so the server replays what was missed; when it cannot
// ("hello" with resumed=false) subscribers are told to resync from the API.

import { authHeaders } from "./api.js";

export class LiveStream {
  constructor(url) {
    this.url = url;
    this.lastId = "";
    this.handlers = new Map();
    this.state = "idle";
    this.attempt = 0;
    this.ctrl = null;
    this.stopped = false;
  }

  // on(type, fn) subscribes to an event type; "resync" and "state" are local events.
  on(type, fn) {
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    this.handlers.get(type).add(fn);
    return () => this.handlers.get(type)?.delete(fn);
  }

  emit(type, data) {
    for (const fn of this.handlers.get(type) || []) {
      try { fn(data); } catch (e) { console.warn("live handler failed", e); }
    }
  }

  setState(s) {
    if (this.state === s) return;
    this.state = s;
    this.emit("state", s);
  }

  start() {
    this.stopped = false;
    this.loop();
    return this;
  }

  stop() {
    this.stopped = true;
    this.ctrl?.abort();
    clearTimeout(this.retryTimer);
    this.setState("idle");
  }

  async loop() {
    while (!this.stopped) {
      this.ctrl = new AbortController();
      this.setState(this.attempt ? "reconnecting" : "connecting");
      let status = 0;
      try {
        const headers = { Accept: "text/event-stream", ...authHeaders() };
        if (this.lastId) headers["Last-Event-ID"] = this.lastId;
        const res = await fetch(this.url, { headers, signal: this.ctrl.signal, cache: "no-store" });
        status = res.status;
        if (!res.ok || !res.body) throw new Error(`events: HTTP ${res.status}`);
        await this.read(res.body);
      } catch (e) {
        if (this.stopped) return;
        if (status === 401 || status === 403) {
          this.setState("unauthorized");
          this.emit("unauthorized", status);
          return;
        }
      }
      if (this.stopped) return;
      this.setState("reconnecting");
      // Exponential backoff with full jitter: 0..min(30s, 500ms·2^n).
      const cap = Math.min(30000, 500 * 2 ** Math.min(this.attempt, 6));
      this.attempt++;
      await new Promise((r) => (this.retryTimer = setTimeout(r, Math.random() * cap)));
    }
  }

  async read(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    let ev = { id: "", type: "message", data: [] };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value;
      let nl;
      while ((nl = buf.search(/\r?\n/)) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + (buf[nl] === "\r" ? 2 : 1));
        if (line === "") {
          if (ev.data.length) this.dispatch(ev);
          ev = { id: "", type: "message", data: [] };
          continue;
        }
        if (line.startsWith(":")) continue; // keep-alive comment
        const i = line.indexOf(":");
        const name = i < 0 ? line : line.slice(0, i);
        const val = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
        if (name === "data") ev.data.push(val);
        else if (name === "event") ev.type = val;
        else if (name === "id") ev.id = val;
      }
    }
  }

  dispatch(ev) {
    if (ev.id) this.lastId = ev.id;
    let data;
    try { data = JSON.parse(ev.data.join("\n")); } catch { return; }
    if (ev.type === "hello") {
      this.attempt = 0;
      this.setState("live");
      if (!data.resumed) this.emit("resync", data);
      return;
    }
    if (ev.type === "reconnect") {
      this.ctrl?.abort();
      return;
    }
    this.emit(ev.type, data);
  }
}
