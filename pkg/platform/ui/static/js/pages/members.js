// Members: people in the tenant and their roles, pending invitations, the
// tenant's roles, and single sign-on links.

import { get, post, patch, del, enc } from "../api.js";
import { h, replace, fmtTime, timeEl, errorBox, showError, field, announce, copyButton } from "../dom.js";
import { confirmDialog } from "./deployments.js";

export function list(ctx) {
  const can = (p) => ctx.me.permissions.includes(p);
  const errEl = errorBox("members-error");
  const membersBox = h("section", { class: "panel", "aria-labelledby": "members-title" }, h("h2", { id: "members-title" }, "Members"), h("p", { class: "muted" }, "Loading…"));
  const invitesBox = h("section", { class: "panel", "aria-labelledby": "invites-title" }, h("h2", { id: "invites-title" }, "Invitations"));
  const rolesBox = h("section", { class: "panel", "aria-labelledby": "roles-title" }, h("h2", { id: "roles-title" }, "Roles"));
  const ssoBox = h("section", { class: "panel", "aria-labelledby": "sso-title" }, h("h2", { id: "sso-title" }, "Single sign-on"));
  replace(ctx.main,
    h("div", { class: "page-head" }, h("div", null, h("h1", null, "Members"), h("p", { class: "muted" }, "Who can use this tenant, and with which role."))),
    errEl, membersBox, h("div", { class: "grid2" }, invitesBox, h("div", null, rolesBox, ssoBox)));

  let roles = [];
  // Outside the re-rendered boxes so the result of an invitation stays visible.
  const inviteOut = h("p", { role: "status", id: "invite-result" });

  async function load() {
    try {
      const [users, rs, invs, idps] = await Promise.all([
        get("/api/v1/users"),
        can("roles:read") ? get("/api/v1/roles") : { items: [] },
        get("/api/v1/invitations"),
        can("idp:read") ? get("/api/v1/idp") : { items: [] },
      ]);
      roles = rs.items || [];
      renderMembers(users.items || []);
      renderInvites(invs.items || []);
      renderRoles();
      renderSSO(idps.items || []);
      showError(errEl, null);
    } catch (e) { showError(errEl, e); }
  }

  function roleSelect(current, label, onChange) {
    const sel = h("select", { "aria-label": label, disabled: !can("users:write") || !roles.length },
      (roles.length ? roles : [{ id: current, name: "—" }]).map((r) => h("option", { value: r.id, selected: r.id === current }, r.name)));
    if (onChange) sel.addEventListener("change", () => onChange(sel.value, sel));
    return sel;
  }

  function renderMembers(users) {
    replace(membersBox, h("h2", { id: "members-title" }, "Members"),
      h("div", { class: "table-wrap" }, h("table", { class: "stack", id: "members-table" },
        h("thead", null, h("tr", null, ["Name", "E-mail", "Role", "Joined", ""].map((c) => h("th", { scope: "col" }, c || h("span", { class: "sr-only" }, "Actions"))))),
        h("tbody", null, users.map((u) => h("tr", null,
          h("td", { "data-label": "Name" }, u.name || "—"),
          h("td", { "data-label": "E-mail" }, u.email),
          h("td", { "data-label": "Role" }, roleSelect(u.role_id, `Role of ${u.email}`, async (roleId, sel) => {
            try { await patch(`/api/v1/users/${enc(u.id)}`, { role_id: roleId }); announce(`${u.email} is now ${sel.selectedOptions[0].textContent}`); }
            catch (e) { showError(errEl, e); sel.value = u.role_id; }
          })),
          h("td", { "data-label": "Joined" }, fmtTime(u.joined_at)),
          h("td", { "data-label": "Actions" }, can("users:write") && u.id !== ctx.me.user.id
            ? h("button", { type: "button", class: "btn small danger", onclick: async () => {
              if (!await confirmDialog(`Remove ${u.email}?`, "They lose access to this tenant at once.", "Remove member", true)) return;
              try { await del(`/api/v1/users/${enc(u.id)}`); load(); } catch (e) { showError(errEl, e); }
            } }, "Remove") : null)))))));
  }

  function renderInvites(invs) {
    const form = h("form", { class: "inline-form", id: "invite-form", "aria-label": "Invite someone" },
      field("E-mail", { name: "email", type: "email", required: true, autocomplete: "off" }),
      h("div", { class: "field" }, h("label", { for: "invite-role" }, "Role"),
        h("select", { id: "invite-role", name: "role_id" }, roles.map((r) => h("option", { value: r.id, selected: r.name === "member" }, r.name)))),
      h("button", { type: "submit", class: "btn primary" }, "Send invitation"));
    const out = inviteOut;
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const fd = new FormData(form);
      try {
        const res = await post("/api/v1/invitations", { email: fd.get("email"), role_id: fd.get("role_id") || "" });
        out.textContent = res.email_sent ? `Invitation e-mailed to ${res.invitation.email}.` : `Invitation created for ${res.invitation.email}; e-mail is not configured on this server, so share the link from the server log or configure SMTP.`;
        load();
      } catch (err) { showError(errEl, err); }
    });
    const pending = invs.filter((i) => !i.accepted_at);
    replace(invitesBox, h("h2", { id: "invites-title" }, "Invitations"),
      can("users:invite") ? form : null, out,
      pending.length ? h("ul", { class: "plain", id: "invites-list" }, pending.map((i) => h("li", null,
        h("strong", null, i.email), " · ", roleName(i.role_id), " · expires ", timeEl(i.expires_at), " ",
        can("users:invite") ? h("button", { type: "button", class: "btn small", onclick: async () => {
          try { await del(`/api/v1/invitations/${enc(i.id)}`); load(); } catch (e) { showError(errEl, e); }
        } }, "Revoke") : null))) : h("p", { class: "muted" }, "No pending invitations."));
  }

  const roleName = (id) => roles.find((r) => r.id === id)?.name || "role";

  function renderRoles() {
    replace(rolesBox, h("h2", { id: "roles-title" }, "Roles"),
      roles.length ? h("ul", { class: "plain" }, roles.map((r) => h("li", null,
        h("details", null, h("summary", null, h("strong", null, r.name), ` — ${r.permissions.length} permissions${r.builtin ? " (seeded)" : ""}`),
          r.description ? h("p", { class: "muted" }, r.description) : null,
          h("p", null, r.permissions.map((p) => h("code", { class: "perm" }, p)))))))
        : h("p", { class: "muted" }, "You cannot see the roles of this tenant."));
  }

  function renderSSO(idps) {
    replace(ssoBox, h("h2", { id: "sso-title" }, "Single sign-on"),
      idps.length ? idps.map((i) => {
        const link = `${location.origin}/login?sso=${enc(i.tenant_id)}/${enc(i.id)}&sso_name=${enc(i.name)}`;
        return h("div", null, h("h3", null, i.name), h("p", { class: "muted" }, i.issuer),
          h("p", null, "Share this sign-in link with members:"),
          h("div", { class: "copyable" }, h("pre", null, link), copyButton("Copy", () => link)));
      }) : h("p", { class: "muted" }, "No identity provider is configured. Add one with POST /api/v1/idp; members then sign in with it from a shared link."));
  }

  load();
}
