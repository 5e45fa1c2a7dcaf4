// The pages e-mail links open: accept an invitation, reset a password. They
// are separate documents (not routes of the app) so a link opens fast and
// works even if the app fails to load. The single-use token is read from the
// query, removed from the address bar, and spent only by the POST on submit:
// link scanners and prefetchers, which only GET, cannot burn it.

import { post, session } from "./api.js";

const form = document.getElementById("confirm-form");
const errEl = document.getElementById("confirm-error");
const out = document.getElementById("confirm-out");
const token = new URLSearchParams(location.search).get("token") || "";
if (token) history.replaceState(null, "", location.pathname);

const kind = form.dataset.kind;
const mode = kind === "reset" && !token ? "request" : "confirm";
for (const el of form.querySelectorAll("[data-when]")) {
  el.hidden = el.dataset.when !== mode;
  el.querySelector("input").required = !el.hidden;
}
if (kind === "reset") {
  document.getElementById("auth-title").textContent = mode === "request" ? "Reset your password" : "Choose a new password";
  form.querySelector("button").textContent = mode === "request" ? "Send reset link" : "Set password";
}
if (kind === "invite" && !token) {
  form.hidden = true;
  out.textContent = "This invitation link is incomplete. Open the link from your e-mail again.";
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const btn = form.querySelector("button");
  const fd = new FormData(form);
  errEl.hidden = true;
  btn.disabled = true;
  try {
    if (kind === "invite") {
      const res = await post(form.getAttribute("action"), { token, name: fd.get("name") || "", password: fd.get("password") || "" });
      session.clear();
      session.save(res);
      location.replace("/deployments");
      return;
    }
    if (mode === "request") {
      await post(form.dataset.requestAction, { email: fd.get("email") });
      out.textContent = "If the address belongs to an account, a reset link is on its way.";
    } else {
      await post(form.getAttribute("action"), { token, password: fd.get("password") });
      form.hidden = true;
      out.textContent = "Password changed. You can sign in now.";
    }
  } catch (err) {
    errEl.textContent = err.message;
    errEl.hidden = false;
  } finally {
    btn.disabled = false;
  }
});
