// Entry point: routing, the signed-in shell (top bar, tenant switcher,
// navigation) and the one live event stream shared by all pages.

import { get, post, session, setUnauthorizedHandler } from "./api.js";
import { h, replace, refreshRelativeTimes } from "./dom.js";
import { LiveStream } from "./live.js";
import * as authPages from "./pages/auth.js";
import * as deployments from "./pages/deployments.js";
import * as agents from "./pages/agents.js";
import * as sessions from "./pages/sessions.js";
import * as audit from "./pages/audit.js";
import * as members from "./pages/members.js";

const publicRoutes = [
  ["/login", authPages.login, "Sign in"],
  ["/signup", authPages.signup, "Sign up"],
  ["/signup/confirm", authPages.confirmSignup, "Finish signing up"],
  ["/auth/complete", authPages.complete, "Signing in"],
];

const appRoutes = [
  [/^\/deployments$/, deployments.list, "Deployments", "deployments"],
  [/^\/deployments\/([^/]+)$/, agents.list, "Agents", "deployments"],
  [/^\/deployments\/([^/]+)\/agents\/([^/]+)\/([^/]+)$/, agents.detail, "Agent", "deployments"],
  [/^\/sessions$/, sessions.list, "Sessions", "sessions"],
  [/^\/audit$/, audit.list, "Audit log", "audit"],
  [/^\/members$/, members.list, "Members", "members"],
];

const nav = [
  ["deployments", "/deployments", "Deployments"],
  ["sessions", "/sessions", "Sessions"],
  ["audit", "/audit", "Audit log"],
  ["members", "/members", "Members"],
];

const app = document.getElementById("app");
const main = document.getElementById("main");
const topbar = document.getElementById("topbar");
const sidenav = document.getElementById("sidenav");

let me = null;          // GET /api/v1/auth/me of the current tenant
let live = null;        // LiveStream of the current tenant
let cleanup = null;     // the current page's teardown
let renderSeq = 0;

export function navigate(path, { replace: rep = false } = {}) {
  if (rep) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  render();
}

export function signedIn(tokenResponse, next = "/deployments") {
  session.save(tokenResponse);
  me = null;
  navigate(next, { replace: true });
}

export function signOut() {
  post("/api/v1/auth/logout").catch(() => {});
  session.clear();
  me = null;
  live?.stop();
  live = null;
  navigate("/login", { replace: true });
}

setUnauthorizedHandler(() => {
  // The token expired or the membership was removed: back to sign-in.
  session.clear();
  me = null;
  live?.stop();
  live = null;
  navigate(`/login?expired=1`, { replace: true });
});

async function loadMe() {
  me = await get("/api/v1/auth/me");
  if (session.tenant !== me.tenant_id) session.tenant = me.tenant_id;
  return me;
}

function startLive() {
  live?.stop();
  live = new LiveStream("/api/v1/events").start();
  live.on("state", (s) => {
    const el = document.getElementById("live-state");
    if (!el) return;
    el.dataset.state = s;
    el.textContent = { live: "Live", connecting: "Connecting…", reconnecting: "Reconnecting…", unauthorized: "Not live", idle: "Offline" }[s] || s;
  });
}

function renderShell(active) {
  const tenants = me.tenants || [];
  const select = h("select", { id: "tenant-select", "aria-label": "Tenant" },
    tenants.map((t) => h("option", { value: t.tenant_id, selected: t.tenant_id === me.tenant_id }, `${t.tenant_name} (${t.role_name})`)));
  select.addEventListener("change", async () => {
    session.tenant = select.value;
    me = null;
    startLive();
    navigate("/deployments");
  });
  replace(topbar,
    h("a", { href: "/deployments", class: "brand", "data-link": true }, h("img", { src: "/favicon.svg", alt: "" }), "Exo"),
    h("div", { class: "tenant-switch" }, h("label", { for: "tenant-select", class: "sr-only" }, "Tenant"), select),
    h("span", { class: "spacer" }),
    h("span", { id: "live-state", class: "live-state", role: "status", dataset: { state: live?.state || "connecting" } }, live?.state === "live" ? "Live" : "Connecting…"),
    h("span", { class: "who", title: me.user.email }, me.user.name || me.user.email),
    h("button", { type: "button", class: "btn small", onclick: signOut }, "Sign out"));
  replace(sidenav, h("ul", null, nav.map(([key, href, label]) =>
    h("li", null, h("a", { href, "data-link": true, "aria-current": key === active ? "page" : undefined }, label)))));
  topbar.hidden = false;
  sidenav.hidden = false;
  app.dataset.layout = "app";
}

async function render() {
  const seq = ++renderSeq;
  cleanup?.();
  cleanup = null;
  const url = new URL(location.href);
  const path = url.pathname.replace(/\/+$/, "") || "/";
  const ctx = { main, query: url.searchParams, hash: url.hash, navigate, signedIn, signOut, get me() { return me; }, get live() { return live; } };

  const pub = publicRoutes.find(([p]) => p === path);
  if (pub) {
    topbar.hidden = true;
    sidenav.hidden = true;
    app.dataset.layout = "auth";
    document.title = `${pub[2]} · Exo`;
    cleanup = pub[1](ctx) || null;
    focusHeading();
    return;
  }
  if (!session.token) {
    navigate(path === "/" ? "/login" : `/login?next=${encodeURIComponent(path + url.search)}`, { replace: true });
    return;
  }
  if (path === "/") {
    navigate("/deployments", { replace: true });
    return;
  }
  const route = appRoutes.find(([re]) => re.test(path));
  try {
    if (!me) {
      await loadMe();
      if (!live) startLive();
    }
  } catch (e) {
    if (seq !== renderSeq) return;
    if (e.status === 401 || e.status === 403) {
      session.clear();
      navigate("/login", { replace: true });
      return;
    }
    replace(main, h("h1", null, "Cannot load the dashboard"), h("p", { class: "error", role: "alert" }, e.message));
    return;
  }
  if (seq !== renderSeq) return;
  renderShell(route?.[3]);
  if (!route) {
    document.title = "Not found · Exo";
    replace(main, h("h1", null, "Page not found"), h("p", null, h("a", { href: "/deployments", "data-link": true }, "Go to deployments")));
    focusHeading();
    return;
  }
  document.title = `${route[2]} · ${tenantName()} · Exo`;
  const params = path.match(route[0]).slice(1).map(decodeURIComponent);
  replace(main);
  cleanup = route[1]({ ...ctx, params }) || null;
  focusHeading();
}

function tenantName() {
  return me?.tenants?.find((t) => t.tenant_id === me.tenant_id)?.tenant_name || "";
}

// After a client-side navigation, move focus to the new page's heading so
// screen readers announce it (as a full page load would).
let firstRender = true;
function focusHeading() {
  if (firstRender) { firstRender = false; return; }
  queueMicrotask(() => {
    const h1 = main.querySelector("h1");
    if (h1) { h1.tabIndex = -1; h1.focus({ preventScroll: false }); }
  });
}

// Same-origin links marked data-link are routed client-side.
document.addEventListener("click", (e) => {
  const a = e.target.closest("a[data-link]");
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  e.preventDefault();
  navigate(a.getAttribute("href"));
});
window.addEventListener("popstate", render);
setInterval(() => refreshRelativeTimes(main), 5000);
render();
