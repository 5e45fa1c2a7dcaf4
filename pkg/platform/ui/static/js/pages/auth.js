// Sign in, sign up and the landing page of an OIDC sign-in. These pages run
// without a session. (Invitation and reset links open invite.html and
// reset.html, separate documents driven by js/confirm.js.)

import { post, session, enc } from "../api.js";
import { h, field, errorBox, showError } from "../dom.js";

const SSO = "exo.sso";

// An SSO sign-in is offered when the page was opened with ?sso=<tenant>/<idp>
// (the link an administrator shares from Members → Single sign-on) or when
// this browser used one before. Identity providers are per tenant and the
// platform does not list them to anonymous callers, so the link is the
// discovery mechanism.
function ssoTarget(query) {
  const q = query.get("sso");
  if (q && /^[\w-]+\/[\w-]+$/.test(q)) {
    const [tenant_id, idp_id] = q.split("/");
    const t = { tenant_id, idp_id, name: query.get("sso_name") || "" };
    localStorage.setItem(SSO, JSON.stringify(t));
    return t;
  }
  try { return JSON.parse(localStorage.getItem(SSO) || "null"); } catch { return null; }
}

function authCard(title, ...body) {
  return h("div", { class: "auth" },
    h("p", { class: "brand" }, h("img", { src: "/favicon.svg", alt: "" }), "Exo"),
    h("section", { class: "panel", "aria-labelledby": "auth-title" }, h("h1", { id: "auth-title" }, title), ...body));
}

async function submitting(form, fn) {
  const btn = form.querySelector("button[type=submit]");
  const err = form.querySelector(".error");
  showError(err, null);
  btn.disabled = true;
  try { await fn(new FormData(form)); } catch (e) { showError(err, e); } finally { btn.disabled = false; }
}

function safeNext(query) {
  const n = query.get("next") || "";
  // Only same-origin paths: never an open redirect.
  return n.startsWith("/") && !n.startsWith("//") ? n : "/deployments";
}

export function login(ctx) {
  const sso = ssoTarget(ctx.query);
  const form = h("form", { novalidate: false },
    ctx.query.get("expired") ? h("p", { class: "notice", role: "status" }, "Your session ended. Please sign in again.") : null,
    field("E-mail", { name: "email", type: "email", autocomplete: "username", required: true, autofocus: true }),
    field("Password", { name: "password", type: "password", autocomplete: "current-password", required: true }),
    errorBox("login-error"),
    h("button", { type: "submit", class: "btn primary" }, "Sign in"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    submitting(form, async (fd) => {
      const res = await post("/api/v1/auth/login", { email: fd.get("email"), password: fd.get("password"), ...(session.tenant ? { tenant_id: session.tenant } : {}) })
        .catch((err) => {
          // A remembered tenant the user left must not block signing in.
          if (err.status === 403 && session.tenant) { session.tenant = null; return post("/api/v1/auth/login", { email: fd.get("email"), password: fd.get("password") }); }
          throw err;
        });
      ctx.signedIn(res, safeNext(ctx.query));
    });
  });
  const ssoBlock = sso ? [
    h("p", { class: "or" }, "or"),
    h("a", { class: "btn", id: "sso-login", href: `/api/v1/auth/oidc/${enc(sso.tenant_id)}/${enc(sso.idp_id)}/login` },
      sso.name ? `Sign in with ${sso.name}` : "Sign in with single sign-on"),
  ] : [];
  ctx.main.replaceChildren(authCard("Sign in", form, ...ssoBlock,
    h("p", { class: "alt" }, "New to Exo? ", h("a", { href: "/signup", "data-link": true }, "Create an account")),
    h("p", { class: "alt" }, h("a", { href: "/reset-password" }, "Forgot your password?"))));
}

export function signup(ctx) {
  const form = h("form", null,
    field("Your name", { name: "name", autocomplete: "name", required: true, autofocus: true, maxlength: 100 }),
    field("E-mail", { name: "email", type: "email", autocomplete: "email", required: true }),
    field("Password", { name: "password", type: "password", autocomplete: "new-password", required: true, minlength: 8 }, "At least 8 characters."),
    field("Organisation", { name: "tenant_name", autocomplete: "organization", required: true, maxlength: 100 }, "The name of your tenant; you can invite others to it."),
    errorBox("signup-error"),
    h("button", { type: "submit", class: "btn primary" }, "Create account"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    submitting(form, async (fd) => {
      session.tenant = null;
      const res = await post("/api/v1/auth/signup", Object.fromEntries(["name", "email", "password", "tenant_name"].map((k) => [k, fd.get(k)])));
      ctx.signedIn(res, "/deployments");
    });
  });
  ctx.main.replaceChildren(authCard("Create your account", form,
    h("p", { class: "alt" }, "Already have an account? ", h("a", { href: "/login", "data-link": true }, "Sign in"))));
}

// complete receives the JWT of an OIDC sign-in in the URL fragment (never
// sent to a server or logged) and removes it from the address bar at once.
export function complete(ctx) {
  const f = new URLSearchParams(location.hash.slice(1));
  history.replaceState(null, "", "/auth/complete");
  const token = f.get("token");
  if (!token) {
    ctx.main.replaceChildren(authCard("Sign-in failed", h("p", { class: "error", role: "alert" }, "The identity provider did not complete the sign-in."),
      h("a", { href: "/login", "data-link": true }, "Try again")));
    return;
  }
  ctx.signedIn({ token, expires_at: f.get("expires_at"), tenant_id: f.get("tenant_id") }, "/deployments");
}
