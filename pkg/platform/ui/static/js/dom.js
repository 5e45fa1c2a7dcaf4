// Tiny DOM helpers. Everything the UI shows is built with these, never with
// innerHTML, so data from the API (names, audit details, agent output) can
// never become markup.

// h(tag, attrs, ...children): attrs keys starting with "on" add listeners,
// "class" sets className, "dataset" merges data-*, booleans toggle attributes.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2).toLowerCase(), v);
      else if (k === "class") el.className = v;
      else if (k === "dataset") Object.assign(el.dataset, v);
      else if (k === "value") el.value = v;
      else if (v === true) el.setAttribute(k, "");
      else el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// replace swaps el's children for the given ones.
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function fmtTime(v) {
  if (!v) return "—";
  const d = new Date(v);
  if (Number.isNaN(d.getTime())) return "—";
  return d.toLocaleString(undefined, { year: "numeric", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

// fmtShort is a compact date and time for table cells; fmtTime is in the title.
export function fmtShort(v) {
  if (!v) return "—";
  const d = new Date(v);
  if (Number.isNaN(d.getTime())) return "—";
  return d.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hour12: false });
}

// ago renders a relative time that the caller refreshes; the absolute time
// goes in the title and datetime so it stays available to assistive tech.
export function timeEl(v) {
  if (!v) return h("span", { class: "muted" }, "never");
  return h("time", { datetime: new Date(v).toISOString(), title: fmtTime(v), class: "rel" }, ago(v));
}

export function ago(v) {
  const s = Math.round((Date.now() - new Date(v).getTime()) / 1000);
  if (s < -60) {
    const f = -s;
    if (f < 3600) return `in ${Math.round(f / 60)}m`;
    if (f < 86400) return `in ${Math.round(f / 3600)}h`;
    return `in ${Math.round(f / 86400)}d`;
  }
  if (s < 5) return "just now";
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return fmtTime(v);
}

// refreshRelativeTimes updates every <time class="rel"> under root.
export function refreshRelativeTimes(root = document) {
  for (const t of root.querySelectorAll("time.rel")) t.textContent = ago(t.getAttribute("datetime"));
}

export function statusBadge(status) {
  const s = status || "unknown";
  return h("span", { class: `badge st-${s}`, title: s, dataset: { status: s } }, s);
}

// copyButton copies text() to the clipboard and says so in a live region.
export function copyButton(label, text) {
  const btn = h("button", { type: "button", class: "btn small" }, label);
  btn.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text());
      flash(btn, "Copied");
    } catch {
      // Clipboard API unavailable (insecure origin): select the text instead.
      const sel = btn.closest(".copyable")?.querySelector("code, pre, input");
      if (sel) {
        const r = document.createRange();
        r.selectNodeContents(sel);
        getSelection().removeAllRanges();
        getSelection().addRange(r);
      }
      flash(btn, "Press Ctrl+C");
    }
  });
  return btn;
}

function flash(btn, msg) {
  const old = btn.textContent;
  btn.textContent = msg;
  announce(msg);
  setTimeout(() => (btn.textContent = old), 1500);
}

// announce speaks a short message through the polite live region.
export function announce(msg) {
  const r = document.getElementById("announcer");
  if (!r) return;
  r.textContent = "";
  setTimeout(() => (r.textContent = msg), 30);
}

// field builds a labelled input.
export function field(label, attrs, hint) {
  const id = attrs.id || `f-${attrs.name}-${Math.random().toString(36).slice(2, 7)}`;
  const hintId = hint ? `${id}-hint` : undefined;
  return h("div", { class: "field" },
    h("label", { for: id }, label),
    h(attrs.tag || "input", { ...attrs, tag: undefined, id, "aria-describedby": hintId }),
    hint ? h("p", { class: "hint", id: hintId }, hint) : null);
}

export function errorBox(id) {
  return h("p", { class: "error", id, role: "alert", hidden: true });
}

export function showError(el, err) {
  el.textContent = err ? (err.message || String(err)) : "";
  el.hidden = !err;
}
