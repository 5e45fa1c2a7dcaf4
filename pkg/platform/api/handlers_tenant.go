package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/exo-in-go/exo/pkg/platform/auth"
	"github.com/exo-in-go/exo/pkg/platform/httpapi"
	"github.com/exo-in-go/exo/pkg/platform/mail"
	"github.com/exo-in-go/exo/pkg/platform/perm"
	"github.com/exo-in-go/exo/pkg/platform/store"
)

type list[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

func (s *Server) listPermissions(w http.ResponseWriter, r *http.Request, p *Principal) {
	httpapi.WriteJSON(w, http.StatusOK, list[string]{Items: perm.All})
}

// ---- tenants ----

func (s *Server) listTenants(w http.ResponseWriter, r *http.Request, p *Principal) {
	ms, err := s.store.ListMemberships(r.Context(), p.UserID)
	if err != nil {
		s.storeError(w, r, "tenants", err)
		return
	}
	if p.TenantBound {
		ms = slices.DeleteFunc(ms, func(m store.Membership) bool { return m.TenantID != p.TenantID })
	}
	httpapi.WriteJSON(w, http.StatusOK, list[store.Membership]{Items: ms})
}

func (s *Server) createTenant(w http.ResponseWriter, r *http.Request, p *Principal) {
	if p.TenantBound {
		httpapi.WriteError(w, http.StatusForbidden, "password_sign_in_required", "a sign-in through a tenant's identity provider cannot create tenants")
		return
	}
	var req struct {
		Name string `json:"name"`
	}
	if !httpapi.DecodeJSON(w, r, &req) {
		return
	}
	name, msg := validName("name", req.Name)
	if msg != "" {
		httpapi.WriteError(w, http.StatusBadRequest, "invalid_name", msg)
		return
	}
	// The event belongs to the new tenant, which the store fills in.
	ctx := store.WithAudit(r.Context(), s.auditEvent(r, "", p.UserID, p.Email, "tenant.create", "tenant", "", map[string]any{"name": name}))
	t, err := s.store.CreateTenant(ctx, name, p.UserID)
	if err != nil {
		s.storeError(w, r, "tenant", err)
		return
	}
	httpapi.WriteJSON(w, http.StatusCreated, t)
}

func (s *Server) getTenant(w http.ResponseWriter, r *http.Request, p *Principal) {
	t, err := s.store.GetTenant(r.Context(), p.TenantID)
	if err != nil {
		s.storeError(w, r, "tenant", err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, t)
}

func (s *Server) updateTenant(w http.ResponseWriter, r *http.Request, p *Principal) {
	var req struct {
		Name string `json:"name"`
	}
	if !httpapi.DecodeJSON(w, r, &req) {
		return
	}
	name, msg := validName("name", req.Name)
	if msg != "" {
		httpapi.WriteError(w, http.StatusBadRequest, "invalid_name", msg)
		return
	}
	t, err := s.store.RenameTenant(s.audited(r, p, "tenant.update", "tenant", p.TenantID, map[string]any{"name": name}), p.TenantID, name)
	if err != nil {
		s.storeError(w, r, "tenant", err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, t)
}

// ---- users (members) ----

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request, p *Principal) {
	ms, err := s.store.ListMembers(r.Context(), p.TenantID)
	if err != nil {
		s.storeError(w, r, "users", err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, list[store.Member]{Items: ms})
}

func (s *Server) updateUser(w http.ResponseWriter, r *http.Request, p *Principal) {
	var req struct {
		RoleID string `json:"role_id"`
	}
	if !httpapi.DecodeJSON(w, r, &req) {
		return
	}
	id := r.PathValue("id")
	if id == p.UserID {
		httpapi.WriteError(w, http.StatusBadRequest, "self_modification", "you cannot change your own role")
		return
	}
	// The store checks again in the change's transaction; here for the message.
	role, err := s.store.GetRole(r.Context(), p.TenantID, req.RoleID)
	if err != nil {
		s.storeError(w, r, "role", err)
		return
	}
	if missing := missingPerm(p, role.Permissions); missing != "" {
		httpapi.WriteError(w, http.StatusForbidden, "forbidden", fmt.Sprintf("cannot grant role %q: it holds permission %s that you do not hold", role.Name, missing))
		return
	}
	err = s.store.SetMemberRole(s.audited(r, p, "user.update_role", "user", id, map[string]any{"role_id": req.RoleID}), p.TenantID, id, req.RoleID, p.Permissions)
	s.members.invalidate()
	if err != nil {
		s.storeError(w, r, "user", err)
		return
	}
	ms, err := s.store.ListMembers(r.Context(), p.TenantID)
	if err != nil {
		s.storeError(w, r, "users", err)
		return
	}
	for _, m := range ms {
		if m.ID == id {
			httpapi.WriteJSON(w, http.StatusOK, m)
			return
		}
	}
	httpapi.WriteError(w, http.StatusNotFound, "not_found", "user not found")
}

func (s *Server) removeUser(w http.ResponseWriter, r *http.Request, p *Principal) {
	id := r.PathValue("id")
	if id == p.UserID {
		httpapi.WriteError(w, http.StatusBadRequest, "self_modification", "you cannot remove yourself")
		return
	}
	err := s.store.RemoveMember(s.audited(r, p, "user.remove", "user", id, nil), p.TenantID, id, p.Permissions)
	s.members.invalidate()
	if err != nil {
		s.storeError(w, r, "user", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// ---- invitations ----

func (s *Server) listInvitations(w http.ResponseWriter, r *http.Request, p *Principal) {
	invs, err := s.store.ListInvitations(r.Context(), p.TenantID)
	if err != nil {
		s.storeError(w, r, "invitations", err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, list[store.Invitation]{Items: invs})
}

func (s *Server) createInvitation(w http.ResponseWriter, r *http.Request, p *Principal) {
	var req struct {
		Email  string `json:"email"`
		RoleID string `json:"role_id"`
	}
	if !httpapi.DecodeJSON(w, r, &req) {
		return
	}
	email, ok := normEmail(req.Email)
	if !ok {
		httpapi.WriteError(w, http.StatusBadRequest, "invalid_email", "a valid e-mail address is required")
		return
	}
	ctx := r.Context()
	roles, err := s.store.ListRoles(ctx, p.TenantID)
	if err != nil {
		s.storeError(w, r, "roles", err)
		return
	}
	var role *store.Role
	for i := range roles {
		if (req.RoleID == "" && roles[i].Name == perm.RoleMember) || roles[i].ID == req.RoleID {
			role = &roles[i]
		}
	}
	if role == nil {
		httpapi.WriteError(w, http.StatusNotFound, "not_found", "role not found")
		return
	}
	// Inviting someone into a role with permissions the inviter lacks would be privilege escalation.
	if missing := missingPerm(p, role.Permissions); missing != "" {
		httpapi.WriteError(w, http.StatusForbidden, "forbidden", "cannot invite into a role with permission "+missing+" that you do not hold")
		return
	}
	if u, err := s.store.GetUserByEmail(ctx, email); err == nil {
		if _, err := s.store.GetMembership(ctx, p.TenantID, u.ID); err == nil {
			httpapi.WriteError(w, http.StatusConflict, "conflict", "this user is already a member")
			return
		}
	}
	tok, hash, err := auth.NewLinkToken()
	if err != nil {
		s.internal(w, r, "invitation token", err)
		return
	}
	inv, err := s.store.CreateInvitation(s.audited(r, p, "invitation.create", "invitation", "", map[string]any{"email": email, "role_id": role.ID}), store.Invitation{
		TenantID: p.TenantID, Email: email, RoleID: role.ID, InvitedBy: p.UserID,
		ExpiresAt: time.Now().Add(s.cfg.InvitationTTL),
	}, hash)
	if err != nil {
		s.storeError(w, r, "invitation", err)
		return
	}
	tenant, err := s.store.GetTenant(ctx, p.TenantID)
	if err != nil {
		s.storeError(w, r, "tenant", err)
		return
	}
	link := s.cfg.Link("/invite/accept", url.Values{"token": {tok}})
	msg := mail.Message{
		To:      email,
		Subject: fmt.Sprintf("You are invited to %s on Exo", tenant.Name),
		Body: fmt.Sprintf("%s invited you to join %q on Exo as %s.\n\nOpen this link to accept (valid until %s, usable once):\n\n%s\n",
			p.Email, tenant.Name, role.Name, inv.ExpiresAt.Format(time.RFC1123), link),
	}
	mctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := s.mailer.Send(mctx, msg); err != nil {
		// Without the e-mail the invitation is useless; do not leave a dangling one.
		dctx := context.WithoutCancel(s.audited(r, p, "invitation.delete", "invitation", inv.ID, map[string]any{"reason": "mail_failed"}))
		if err := s.store.DeleteInvitation(dctx, p.TenantID, inv.ID); err != nil {
			s.log.ErrorContext(ctx, "delete unsent invitation", "err", err, "invitation", inv.ID)
		}
		s.log.ErrorContext(ctx, "send invitation e-mail", "err", err)
		httpapi.WriteError(w, http.StatusBadGateway, "mail_failed", "could not send the invitation e-mail")
		return
	}
	httpapi.WriteJSON(w, http.StatusCreated, map[string]any{"invitation": inv, "email_sent": s.mailer.Enabled()})
}

func (s *Server) deleteInvitation(w http.ResponseWriter, r *http.Request, p *Principal) {
	id := r.PathValue("id")
	if err := s.store.DeleteInvitation(s.audited(r, p, "invitation.delete", "invitation", id, nil), p.TenantID, id); err != nil {
		s.storeError(w, r, "invitation", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// ---- roles ----

type roleRequest struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Permissions []string `json:"permissions"`
}

// validateRole checks the catalog and that the caller only grants what it holds.
func validateRole(w http.ResponseWriter, p *Principal, req *roleRequest) bool {
	name, msg := validName("name", req.Name)
	if msg != "" {
		httpapi.WriteError(w, http.StatusBadRequest, "invalid_name", msg)
		return false
	}
	req.Name = name
	if len(req.Description) > 500 {
		httpapi.WriteError(w, http.StatusBadRequest, "bad_request", "description must be at most 500 characters")
		return false
	}
	seen := map[string]bool{}
	out := []string{}
	for _, pp := range req.Permissions {
		if !perm.Valid(pp) {
			httpapi.WriteError(w, http.StatusBadRequest, "unknown_permission", fmt.Sprintf("unknown permission %q", pp))
			return false
		}
		if !p.Can(pp) {
			httpapi.WriteError(w, http.StatusForbidden, "forbidden", "cannot grant permission "+pp+" that you do not hold")
			return false
		}
		if !seen[pp] {
			seen[pp] = true
			out = append(out, pp)
		}
	}
	slices.Sort(out)
	req.Permissions = out
	return true
}

func (s *Server) listRoles(w http.ResponseWriter, r *http.Request, p *Principal) {
	roles, err := s.store.ListRoles(r.Context(), p.TenantID)
	if err != nil {
		s.storeError(w, r, "roles", err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, list[store.Role]{Items: roles})
}

func (s *Server) getRole(w http.ResponseWriter, r *http.Request, p *Principal) {
	role, err := s.store.GetRole(r.Context(), p.TenantID, r.PathValue("id"))
	if err != nil {
		s.storeError(w, r, "role", err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, role)
}

func (s *Server) createRole(w http.ResponseWriter, r *http.Request, p *Principal) {
	var req roleRequest
	if !httpapi.DecodeJSON(w, r, &req) || !validateRole(w, p, &req) {
		return
	}
	ctx := s.audited(r, p, "role.create", "role", "", map[string]any{"name": req.Name, "permissions": req.Permissions})
	role, err := s.store.CreateRole(ctx, p.TenantID, store.Role{Name: req.Name, Description: req.Description, Permissions: req.Permissions})
	if err != nil {
		s.storeError(w, r, "role", err)
		return
	}
	httpapi.WriteJSON(w, http.StatusCreated, role)
}

func (s *Server) updateRole(w http.ResponseWriter, r *http.Request, p *Principal) {
	var req roleRequest
	if !httpapi.DecodeJSON(w, r, &req) {
		return
	}
	id := r.PathValue("id")
	// Existence first, so another tenant's id yields 404 rather than a validation error.
	old, err := s.store.GetRole(r.Context(), p.TenantID, id)
	if err != nil {
		s.storeError(w, r, "role", err)
		return
	}
	if old.Builtin {
		httpapi.WriteError(w, http.StatusForbidden, "builtin_role", fmt.Sprintf("the built-in role %q cannot be changed; create a role with the permissions you want instead", old.Name))
		return
	}
	if missing := missingPerm(p, old.Permissions); missing != "" {
		httpapi.WriteError(w, http.StatusForbidden, "forbidden", fmt.Sprintf("cannot edit role %q: it holds permission %s that you do not hold", old.Name, missing))
		return
	}
	if !validateRole(w, p, &req) {
		return
	}
	ctx := s.audited(r, p, "role.update", "role", id, map[string]any{"name": req.Name, "permissions": req.Permissions})
	role, err := s.store.UpdateRole(ctx, p.TenantID, store.Role{ID: id, Name: req.Name, Description: req.Description, Permissions: req.Permissions}, p.Permissions)
	s.members.invalidate()
	if err != nil {
		s.storeError(w, r, "role", err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, role)
}

func (s *Server) deleteRole(w http.ResponseWriter, r *http.Request, p *Principal) {
	id := r.PathValue("id")
	err := s.store.DeleteRole(s.audited(r, p, "role.delete", "role", id, nil), p.TenantID, id, p.Permissions)
	s.members.invalidate()
	if err != nil {
		s.storeError(w, r, "role", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// ---- audit ----

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request, p *Principal) {
	limit := 50
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			httpapi.WriteError(w, http.StatusBadRequest, "bad_request", "limit must be between 1 and 500")
			return
		}
		limit = n
	}
	events, err := s.store.ListAudit(r.Context(), p.TenantID, store.Page{Before: r.URL.Query().Get("cursor"), Limit: limit})
	if err != nil {
		s.storeError(w, r, "audit", err)
		return
	}
	out := list[store.AuditEvent]{Items: events}
	if len(events) == limit {
		out.NextCursor = events[len(events)-1].ID
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
}

// missingPerm is the first of perms the principal does not hold ("" if none).
func missingPerm(p *Principal, perms []string) string {
	for _, pp := range perms {
		if !p.Can(pp) {
			return pp
		}
	}
	return ""
}

var errNoDeploymentToken = errors.New("missing or malformed deployment token")
