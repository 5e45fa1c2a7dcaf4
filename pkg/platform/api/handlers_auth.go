package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/exo-in-go/exo/pkg/platform/auth"
	"github.com/exo-in-go/exo/pkg/platform/mail"
	"github.com/exo-in-go/exo/pkg/platform/store"
)

type tokenResponse struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	TenantID  string    `json:"tenant_id"`
}

func (s *Server) issue(w http.ResponseWriter, r *http.Request, status int, u store.User, m store.Membership) {
	tok, exp, err := s.jwt.Issue(u.ID, u.Email, m.TenantID, m.Permissions)
	if err != nil {
		s.internal(w, r, "issue jwt", err)
		return
	}
	writeJSON(w, status, tokenResponse{Token: tok, ExpiresAt: exp, TenantID: m.TenantID})
}

func (s *Server) signup(w http.ResponseWriter, r *http.Request) {
	if !s.cfg.SignupEnabled {
		writeError(w, http.StatusForbidden, "signup_disabled", "self sign-up is disabled; ask an administrator for an invitation")
		return
	}
	var req struct {
		Email      string `json:"email"`
		Password   string `json:"password"`
		Name       string `json:"name"`
		TenantName string `json:"tenant_name"`
	}
	if !decodeJSON(w, r, &req) {
		return
	}
	email, ok := normEmail(req.Email)
	if !ok {
		writeError(w, http.StatusBadRequest, "invalid_email", "a valid e-mail address is required")
		return
	}
	if len(req.Password) < auth.MinPasswordLength {
		writeError(w, http.StatusBadRequest, "weak_password", fmt.Sprintf("password must be at least %d characters", auth.MinPasswordLength))
		return
	}
	if req.TenantName == "" {
		req.TenantName = email
	}
	tenantName, msg := validName("tenant_name", req.TenantName)
	if msg != "" {
		writeError(w, http.StatusBadRequest, "invalid_name", msg)
		return
	}
	name := req.Name
	if name != "" {
		if name, msg = validName("name", name); msg != "" {
			writeError(w, http.StatusBadRequest, "invalid_name", msg)
			return
		}
	}
	hash, err := auth.HashPassword(req.Password)
	if err != nil {
		s.internal(w, r, "hash password", err)
		return
	}
	// The new tenant and user are the event's tenant, target and actor.
	ctx := store.WithAudit(r.Context(), s.auditEvent(r, "", "", "", "auth.signup", "tenant", "", map[string]any{"tenant_name": tenantName}))
	u, t, err := s.store.SignUp(ctx, store.User{Email: email, Name: name, PasswordHash: hash}, tenantName)
	if errors.Is(err, store.ErrConflict) {
		writeError(w, http.StatusConflict, "conflict", "an account with this e-mail already exists")
		return
	} else if err != nil {
		s.storeError(w, r, "sign-up", err)
		return
	}
	m, err := s.store.GetMembership(r.Context(), t.ID, u.ID)
	if err != nil {
		s.storeError(w, r, "membership", err)
		return
	}
	s.issue(w, r, http.StatusCreated, u, m)
}

// rateLimited applies the login limiter to an e-mail and the client address.
func (s *Server) rateLimited(w http.ResponseWriter, r *http.Request, email string) bool {
	okAddr, waitAddr := s.loginByAddr.Allow(s.ClientAddr(r))
	okEmail, waitEmail := true, time.Duration(0)
	if email != "" {
		okEmail, waitEmail = s.loginByEmail.Allow(email)
	}
	if okAddr && okEmail {
		return false
	}
	wait := max(waitAddr, waitEmail)
	w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
	writeError(w, http.StatusTooManyRequests, "rate_limited", "too many attempts; try again later")
	return true
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Email    string `json:"email"`
		Password string `json:"password"`
		TenantID string `json:"tenant_id"`
	}
	if !decodeJSON(w, r, &req) {
		return
	}
	email, ok := normEmail(req.Email)
	if s.rateLimited(w, r, email) {
		return
	}
	if !ok || req.Password == "" {
		writeError(w, http.StatusBadRequest, "bad_request", "email and password are required")
		return
	}
	u, err := s.store.GetUserByEmail(r.Context(), email)
	if errors.Is(err, store.ErrNotFound) {
		auth.CheckDummy(req.Password)
		writeError(w, http.StatusUnauthorized, "invalid_credentials", "invalid e-mail or password")
		return
	} else if err != nil {
		s.storeError(w, r, "user", err)
		return
	}
	if err := auth.VerifyPassword(u.PasswordHash, req.Password); err != nil {
		s.log.InfoContext(r.Context(), "login failed", "user", u.ID, "remote", s.ClientAddr(r))
		s.auditFailedLogin(r, u)
		writeError(w, http.StatusUnauthorized, "invalid_credentials", "invalid e-mail or password")
		return
	}
	ms, err := s.store.ListMemberships(r.Context(), u.ID)
	if err != nil {
		s.storeError(w, r, "memberships", err)
		return
	}
	var chosen *store.Membership
	for i := range ms {
		if req.TenantID == "" || ms[i].TenantID == req.TenantID {
			chosen = &ms[i]
			break
		}
	}
	if chosen == nil {
		writeError(w, http.StatusForbidden, "forbidden", "not a member of any matching tenant")
		return
	}
	s.audit(r, chosen.TenantID, u.ID, u.Email, "auth.login", "user", u.ID, nil)
	s.issue(w, r, http.StatusOK, u, *chosen)
}

// auditFailedLogin records a wrong password for an existing account in each
// of its tenants, so their administrators see guessing against their members
// (the login rate limit bounds how many rows an attacker can cause). Unknown
// e-mails belong to no tenant and are only logged.
func (s *Server) auditFailedLogin(r *http.Request, u store.User) {
	ms, err := s.store.ListMemberships(r.Context(), u.ID)
	if err != nil {
		s.log.ErrorContext(r.Context(), "audit failed login: memberships", "user", u.ID, "err", err)
		return
	}
	for _, m := range ms {
		s.audit(r, m.TenantID, u.ID, u.Email, "auth.login_failed", "user", u.ID, map[string]any{"reason": "invalid_password"})
	}
}

// logout exists for API symmetry: JWTs are stateless and there are no
// refresh tokens, so the client simply discards its token.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) me(w http.ResponseWriter, r *http.Request, p *Principal) {
	u, err := s.store.GetUser(r.Context(), p.UserID)
	if err != nil {
		s.storeError(w, r, "user", err)
		return
	}
	ms, err := s.store.ListMemberships(r.Context(), p.UserID)
	if err != nil {
		s.storeError(w, r, "memberships", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"user":        u,
		"tenant_id":   p.TenantID,
		"role_id":     p.RoleID,
		"role":        p.RoleName,
		"permissions": p.Permissions,
		"tenants":     ms,
	})
}

func (s *Server) acceptInvitation(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Token    string `json:"token"`
		Name     string `json:"name"`
		Password string `json:"password"`
	}
	if !decodeJSON(w, r, &req) {
		return
	}
	if req.Token == "" {
		writeError(w, http.StatusBadRequest, "invalid_token", "token is required")
		return
	}
	hash := auth.HashToken(req.Token)
	now := time.Now()
	inv, err := s.store.PeekInvitation(r.Context(), hash, now)
	if err != nil {
		s.storeError(w, r, "invitation", err)
		return
	}
	newUser := store.User{}
	if _, err := s.store.GetUserByEmail(r.Context(), inv.Email); errors.Is(err, store.ErrNotFound) {
		if len(req.Password) < auth.MinPasswordLength {
			writeError(w, http.StatusBadRequest, "weak_password", fmt.Sprintf("password must be at least %d characters", auth.MinPasswordLength))
			return
		}
		if req.Name != "" {
			name, msg := validName("name", req.Name)
			if msg != "" {
				writeError(w, http.StatusBadRequest, "invalid_name", msg)
				return
			}
			newUser.Name = name
		}
		if newUser.PasswordHash, err = auth.HashPassword(req.Password); err != nil {
			s.internal(w, r, "hash password", err)
			return
		}
	} else if err != nil {
		s.storeError(w, r, "user", err)
		return
	}
	// The invitation's tenant, the user and the invitation complete the event.
	ctx := store.WithAudit(r.Context(), s.auditEvent(r, "", "", "", "invitation.accept", "invitation", "", nil))
	u, inv, err := s.store.AcceptInvitation(ctx, hash, now, newUser)
	if err != nil {
		s.storeError(w, r, "invitation", err)
		return
	}
	m, err := s.store.GetMembership(r.Context(), inv.TenantID, u.ID)
	if err != nil {
		s.storeError(w, r, "membership", err)
		return
	}
	s.issue(w, r, http.StatusOK, u, m)
}

func (s *Server) requestPasswordReset(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Email string `json:"email"`
	}
	if !decodeJSON(w, r, &req) {
		return
	}
	email, ok := normEmail(req.Email)
	if !ok {
		writeError(w, http.StatusBadRequest, "invalid_email", "a valid e-mail address is required")
		return
	}
	if s.rateLimited(w, r, "reset:"+email) {
		return
	}
	// The answer is the same whether or not the address is known, so the
	// endpoint cannot be used to enumerate accounts.
	accepted := func() {
		writeJSON(w, http.StatusAccepted, map[string]string{"status": "if the address belongs to an account, a reset link has been sent"})
	}
	u, err := s.store.GetUserByEmail(r.Context(), email)
	if errors.Is(err, store.ErrNotFound) {
		accepted()
		return
	} else if err != nil {
		s.storeError(w, r, "user", err)
		return
	}
	tok, hash, err := auth.NewLinkToken()
	if err != nil {
		s.internal(w, r, "reset token", err)
		return
	}
	if err := s.store.CreatePasswordReset(r.Context(), store.PasswordReset{UserID: u.ID, ExpiresAt: time.Now().Add(s.cfg.ResetTTL)}, hash); err != nil {
		s.storeError(w, r, "password reset", err)
		return
	}
	link := s.cfg.Link("/reset-password", url.Values{"token": {tok}})
	msg := mail.Message{
		To:      u.Email,
		Subject: "Reset your Exo password",
		Body: fmt.Sprintf("Someone asked to reset the password of your Exo account.\n\nOpen this link to choose a new password (valid for %s, usable once):\n\n%s\n\nIf this was not you, ignore this e-mail.\n",
			s.cfg.ResetTTL, link),
	}
	ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
	defer cancel()
	if err := s.mailer.Send(ctx, msg); err != nil {
		s.log.ErrorContext(r.Context(), "send password reset e-mail", "err", err, "user", u.ID)
	}
	accepted()
}

func (s *Server) confirmPasswordReset(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Token    string `json:"token"`
		Password string `json:"password"`
	}
	if !decodeJSON(w, r, &req) {
		return
	}
	if len(req.Password) < auth.MinPasswordLength {
		writeError(w, http.StatusBadRequest, "weak_password", fmt.Sprintf("password must be at least %d characters", auth.MinPasswordLength))
		return
	}
	hash, err := auth.HashPassword(req.Password)
	if err != nil {
		s.internal(w, r, "hash password", err)
		return
	}
	// Recorded in each of the user's tenants, with the user as actor and target.
	ctx := store.WithAudit(r.Context(), s.auditEvent(r, "", "", "", "user.password_reset", "user", "", nil))
	if _, err := s.store.ConsumePasswordReset(ctx, auth.HashToken(req.Token), time.Now(), hash); err != nil {
		s.storeError(w, r, "password reset", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
