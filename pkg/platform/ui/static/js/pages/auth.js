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
      if (res?.token) { ctx.signedIn(res, "/deployments"); return; }
      // With mail configured the address is confirmed first (202).
      form.replaceChildren(h("p", { class: "notice", role: "status", id: "signup-sent" },
        "Check your e-mail: the link in it finishes creating your account."));
    });
  });
  ctx.main.replaceChildren(authCard("Create your account", form,
    h("p", { class: "alt" }, "Already have an account? ", h("a", { href: "/login", "data-link": true }, "Sign in"))));
}

// confirmSignup finishes a sign-up from its e-mailed link. The token is
// spent only by the button's POST, never by opening the page (link
// scanners only GET), and removed from the address bar at once.
export function confirmSignup(ctx) {
  const token = ctx.query.get("token") || "";
  history.replaceState(null, "", "/signup/confirm");
  const form = h("form", null, errorBox("signup-confirm-error"), h("button", { type: "submit", class: "btn primary" }, "Finish signing up"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    submitting(form, async () => {
      session.tenant = null;
      ctx.signedIn(await post("/api/v1/auth/signup/confirm", { token }), "/deployments");
    });
  });
  ctx.main.replaceChildren(authCard("Finish signing up", token ? form : h("p", { class: "error", role: "alert" }, "This link is incomplete. Open the link from your e-mail again.")));
}

// complete receives a one-time code of an OIDC sign-in in the URL fragment
// (never sent to a server or logged), removes it from the address bar at
// once and exchanges it for a session. The exchange only works in the
// browser that started the sign-in (a cookie the platform set then), so a
// link with someone else's code cannot sign this browser in.
export function complete(ctx) {
  const f = new URLSearchParams(location.hash.slice(1));
  history.replaceState(null, "", "/auth/complete");
  const failed = (msg) => ctx.main.replaceChildren(authCard("Sign-in failed", h("p", { class: "error", role: "alert" }, msg),
    h("a", { href: "/login", "data-link": true }, "Try again")));
  if (f.get("linked")) {
    ctx.main.replaceChildren(authCard("Identity linked", h("p", { role: "status" }, `You can now sign in with ${f.get("linked")}.`),
      h("a", { href: "/deployments", "data-link": true }, "Back to Exo")));
    return;
  }
  const code = f.get("code");
  if (!code) { failed("The identity provider did not complete the sign-in."); return; }
  post("/api/v1/auth/oidc/complete", { code })
    .then((res) => { session.clear(); ctx.signedIn(res, "/deployments"); })
    .catch((err) => failed(err.message));
}
