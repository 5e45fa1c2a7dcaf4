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
	"github.com/exo-in-go/exo/pkg/platform/store"
)

// The anonymous endpoints here are what an attacker without an account can
// reach, so each one is bounded before it does anything expensive: a
// per-address rate limit first, then the cheap checks (token lookups, input
// lengths), and only then a password hash, inside the process-wide hashing
// bound (auth.Hasher). Answers do not reveal whether an e-mail address has
// an account, and take the same time either way (mail goes out in the
// background).

type tokenResponse struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	TenantID  string    `json:"tenant_id"`
}

// issue answers with a new token for u in m's tenant.
func (s *Server) issue(w http.ResponseWriter, r *http.Request, status int, u store.User, m store.Membership) {
	tok, exp, err := s.jwt.Issue(auth.Subject{
		UserID: u.ID, Email: u.Email, TenantID: m.TenantID, Permissions: m.Permissions, Generation: m.TokenGeneration,
	})
	if err != nil {
		s.internal(w, r, "issue jwt", err)
		return
	}
	httpapi.WriteJSON(w, status, tokenResponse{Token: tok, ExpiresAt: exp, TenantID: m.TenantID})
}

// issueFor answers with a token for u in tenantID.
func (s *Server) issueFor(w http.ResponseWriter, r *http.Request, status int, u store.User, tenantID string) {
	m, err := s.store.GetMembership(r.Context(), tenantID, u.ID)
	if err != nil {
		s.storeError(w, r, "membership", err)
		return
	}
	s.issue(w, r, status, u, m)
}

// limited answers 429 with Retry-After when ok is false.
func limited(w http.ResponseWriter, ok bool, wait time.Duration) bool {
	if ok {
		return false
	}
	w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
	httpapi.WriteError(w, http.StatusTooManyRequests, "rate_limited", "too many attempts; try again later")
	return true
}

// anonLimited applies the per-address limit of the anonymous auth endpoints.
func (s *Server) anonLimited(w http.ResponseWriter, r *http.Request) bool {
	ok, wait := s.authByAddr.Allow(s.ClientAddr(r))
	return limited(w, ok, wait)
}

// hashError answers for a failed bounded hash: 503 when the hashing slots
// are full, so a flood is shed instead of queued in memory.
func (s *Server) hashError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, auth.ErrBusy) || errors.Is(err, context.DeadlineExceeded) {
		w.Header().Set("Retry-After", "1")
		httpapi.WriteError(w, http.StatusServiceUnavailable, "busy", "the server is busy; try again in a moment")
		return
	}
	if errors.Is(err, context.Canceled) {
		return // the client went away
	}
	s.internal(w, r, "hash password", err)
}

// hash is the bounded password hash with its error already answered.
func (s *Server) hash(w http.ResponseWriter, r *http.Request, password string) (string, bool) {
	h, err := s.hasher.Hash(r.Context(), password)
	if err != nil {
		s.hashError(w, r, err)
		return "", false
	}
	return h, true
}

func checkPassword(w http.ResponseWriter, password string) bool {
	if msg := auth.CheckPasswordLength(password); msg != "" {
		httpapi.WriteError(w, http.StatusBadRequest, "weak_password", msg)
		return false
	}
	return true
}

// signup creates an account and its tenant. With mail configured it only
// sends a link (POST /auth/signup/confirm finishes), and answers 202
// whether or not the address already has an account: the mailbox's owner
// learns which, nobody else does, and nobody can hold an address they do
// not own (an invitation to it would otherwise reach them). With
// EXO_SIGNUP_CONFIRM_EMAIL=false (the default only in dev mode without
// mail) it signs up at once.
func (s *Server) signup(w http.ResponseWriter, r *http.Request) {
	if !s.cfg.SignupEnabled {
		httpapi.WriteError(w, http.StatusForbidden, "signup_disabled", "self sign-up is disabled; ask an administrator for an invitation")
		return
	}
	verify := s.cfg.SignupConfirmEmail
	if verify && !s.mailer.Enabled() {
		httpapi.WriteError(w, http.StatusForbidden, "signup_unavailable", "self sign-up confirms e-mail addresses and no mail relay is configured: "+
			"set EXO_SMTP_ADDR, or EXO_SIGNUP_CONFIRM_EMAIL=false to sign up without confirmation (see docs/security.md), or ask an administrator for an invitation")
		return
	}
	if s.anonLimited(w, r) {
		return
	}
	var req struct {
		Email      string `json:"email"`
		Password   string `json:"password"`
		Name       string `json:"name"`
		TenantName string `json:"tenant_name"`
	}
	if !httpapi.DecodeJSON(w, r, &req) {
		return
	}
	email, ok := normEmail(req.Email)
	if !ok {
		httpapi.WriteError(w, http.StatusBadRequest, "invalid_email", "a valid e-mail address is required")
		return
	}
	if !checkPassword(w, req.Password) {
		return
	}
	if req.TenantName == "" {
		req.TenantName = email
	}
	tenantName, msg := validName("tenant_name", req.TenantName)
	if msg != "" {
		httpapi.WriteError(w, http.StatusBadRequest, "invalid_name", msg)
		return
	}
	name := req.Name
	if name != "" {
		if name, msg = validName("name", name); msg != "" {
			httpapi.WriteError(w, http.StatusBadRequest, "invalid_name", msg)
			return
		}
	}
	// Hashed in both cases below, so both cost the same.
	hash, ok := s.hash(w, r, req.Password)
	if !ok {
		return
	}
	if !verify {
		// Without confirmation (dev mode without mail, or chosen): at once,
		// and an address can be probed here.
		ctx := store.WithAudit(r.Context(), s.auditEvent(r, "", "", "", "auth.signup", "tenant", "", map[string]any{"tenant_name": tenantName}))
		u, t, err := s.store.SignUp(ctx, store.User{Email: email, Name: name, PasswordHash: hash}, tenantName)
		if errors.Is(err, store.ErrConflict) {
			httpapi.WriteError(w, http.StatusConflict, "conflict", "an account with this e-mail already exists")
			return
		} else if err != nil {
			s.storeError(w, r, "sign-up", err)
			return
		}
		s.issueFor(w, r, http.StatusCreated, u, t.ID)
		return
	}
	accepted := func() {
		httpapi.WriteJSON(w, http.StatusAccepted, map[string]string{"status": "check your e-mail: the link in it finishes signing up"})
	}
	_, err := s.store.GetUserByEmail(r.Context(), email)
	switch {
	case err == nil:
		s.sendMailAsync(r, mail.Message{
			To:      email,
			Subject: "Your Exo account",
			Body: fmt.Sprintf("Someone tried to sign up to Exo with this address, which already has an account.\n\n"+
				"If it was you, sign in at %s or choose a new password at %s.\n\nIf it was not you, ignore this e-mail.\n",
				s.cfg.Link("/login", nil), s.cfg.Link("/forgot-password", nil)),
		})
		accepted()
		return
	case !errors.Is(err, store.ErrNotFound):
		s.storeError(w, r, "user", err)
		return
	}
	tok, tokHash, err := auth.NewLinkToken()
	if err != nil {
		s.internal(w, r, "sign-up token", err)
		return
	}
	if err := s.store.CreatePendingSignup(r.Context(), store.PendingSignup{
		Email: email, Name: name, PasswordHash: hash, TenantName: tenantName, ExpiresAt: time.Now().Add(s.cfg.InvitationTTL),
	}, tokHash); err != nil {
		s.storeError(w, r, "sign-up", err)
		return
	}
	s.sendMailAsync(r, mail.Message{
		To:      email,
		Subject: "Finish signing up to Exo",
		Body: fmt.Sprintf("Open this link to finish creating your Exo account and the tenant %q (valid for %s, usable once):\n\n%s\n\n"+
			"If this was not you, ignore this e-mail.\n", tenantName, s.cfg.InvitationTTL, s.cfg.Link("/signup/confirm", url.Values{"token": {tok}})),
	})
	accepted()
}

// confirmSignup finishes a sign-up from its e-mailed link.
func (s *Server) confirmSignup(w http.ResponseWriter, r *http.Request) {
	if s.anonLimited(w, r) {
		return
	}
	var req struct {
		Token string `json:"token"`
	}
	if !httpapi.DecodeJSON(w, r, &req) {
		return
	}
	ctx := store.WithAudit(r.Context(), s.auditEvent(r, "", "", "", "auth.signup", "tenant", "", nil))
	u, t, err := s.store.ConfirmSignup(ctx, auth.HashToken(req.Token), time.Now())
	if errors.Is(err, store.ErrConflict) {
		// The holder of the link owns the mailbox: telling them is fine.
		httpapi.WriteError(w, http.StatusConflict, "conflict", "an account with this e-mail already exists; sign in instead")
		return
	} else if err != nil {
		s.storeError(w, r, "sign-up", err)
		return
	}
	s.issueFor(w, r, http.StatusCreated, u, t.ID)
}

// login checks a password. Failures are counted per client address and
// account together, with a growing lock: someone guessing from elsewhere
// slows only themselves and cannot lock the real user out.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	addr := s.ClientAddr(r)
	if ok, wait := s.loginByAddr.Allow(addr); limited(w, ok, wait) {
		return
	}
	var req struct {
		Email    string `json:"email"`
		Password string `json:"password"`
		TenantID string `json:"tenant_id"`
	}
	if !httpapi.DecodeJSON(w, r, &req) {
		return
	}
	email, ok := normEmail(req.Email)
	if !ok || req.Password == "" || len(req.Password) > auth.MaxPasswordLength {
		httpapi.WriteError(w, http.StatusBadRequest, "bad_request", "email and password are required")
		return
	}
	key := addr + "\x00" + email
	if d := s.loginBackoff.Locked(key); d > 0 {
		limited(w, false, d)
		return
	}
	u, err := s.store.GetUserByEmail(r.Context(), email)
	if errors.Is(err, store.ErrNotFound) {
		if err := s.hasher.Dummy(r.Context(), req.Password); err != nil {
			s.hashError(w, r, err)
			return
		}
		s.loginBackoff.Fail(key)
		httpapi.WriteError(w, http.StatusUnauthorized, "invalid_credentials", "invalid e-mail or password")
		return
	} else if err != nil {
		s.storeError(w, r, "user", err)
		return
	}
	if err := s.hasher.Verify(r.Context(), u.PasswordHash, req.Password); err != nil {
		if !errors.Is(err, auth.ErrPasswordMismatch) {
			s.hashError(w, r, err)
			return
		}
		s.loginBackoff.Fail(key)
		s.log.InfoContext(r.Context(), "login failed", "user", u.ID, "remote", addr)
		s.auditFailedLogin(r, u)
		httpapi.WriteError(w, http.StatusUnauthorized, "invalid_credentials", "invalid e-mail or password")
		return
	}
	s.loginBackoff.Succeed(key)
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
		httpapi.WriteError(w, http.StatusForbidden, "forbidden", "not a member of any matching tenant")
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

// logout signs the user out everywhere: every token issued to them so far
// stops working, on every replica (the generation is in the database).
func (s *Server) logout(w http.ResponseWriter, r *http.Request, p *Principal) {
	ctx := store.WithAudit(r.Context(), s.auditEvent(r, "", "", "", "auth.logout", "user", "", nil))
	err := s.store.RevokeTokens(ctx, p.UserID)
	s.members.invalidate()
	if err != nil {
		s.storeError(w, r, "user", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// changePassword sets a new password for the signed-in user, revokes every
// token issued before and answers with a fresh one.
func (s *Server) changePassword(w http.ResponseWriter, r *http.Request, p *Principal) {
	var req struct {
		CurrentPassword string `json:"current_password"`
		NewPassword     string `json:"new_password"`
	}
	if !httpapi.DecodeJSON(w, r, &req) {
		return
	}
	u, err := s.store.GetUser(r.Context(), p.UserID)
	if err != nil {
		s.storeError(w, r, "user", err)
		return
	}
	if u.PasswordHash == "" {
		httpapi.WriteError(w, http.StatusBadRequest, "no_password", "this account signs in through its identity provider and has no password")
		return
	}
	if len(req.CurrentPassword) > auth.MaxPasswordLength {
		httpapi.WriteError(w, http.StatusForbidden, "invalid_credentials", "the current password is wrong")
		return
	}
	if err := s.hasher.Verify(r.Context(), u.PasswordHash, req.CurrentPassword); err != nil {
		if errors.Is(err, auth.ErrPasswordMismatch) {
			httpapi.WriteError(w, http.StatusForbidden, "invalid_credentials", "the current password is wrong")
			return
		}
		s.hashError(w, r, err)
		return
	}
	if !checkPassword(w, req.NewPassword) {
		return
	}
	hash, ok := s.hash(w, r, req.NewPassword)
	if !ok {
		return
	}
	ctx := store.WithAudit(r.Context(), s.auditEvent(r, "", "", "", "user.password_change", "user", "", nil))
	err = s.store.ChangePassword(ctx, p.UserID, hash)
	s.members.invalidate()
	if err != nil {
		s.storeError(w, r, "user", err)
		return
	}
	s.issueFor(w, r, http.StatusOK, u, p.TenantID)
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
	if p.TenantBound {
		// A sign-in through a tenant's provider opens that tenant only.
		ms = slices.DeleteFunc(ms, func(m store.Membership) bool { return m.TenantID != p.TenantID })
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{
		"user":         u,
		"tenant_id":    p.TenantID,
		"role_id":      p.RoleID,
		"role":         p.RoleName,
		"permissions":  p.Permissions,
		"tenants":      ms,
		"tenant_bound": p.TenantBound,
	})
}

// acceptInvitation joins the invitation's tenant. For an address that has
// no account it creates one with the given password. For an existing
// account the link alone is not enough: the request must carry that
// account's own (password) sign-in, so a leaked or forwarded link cannot
// open someone's account.
func (s *Server) acceptInvitation(w http.ResponseWriter, r *http.Request) {
	if s.anonLimited(w, r) {
		return
	}
	var req struct {
		Token    string `json:"token"`
		Name     string `json:"name"`
		Password string `json:"password"`
	}
	if !httpapi.DecodeJSON(w, r, &req) {
		return
	}
	if req.Token == "" {
		httpapi.WriteError(w, http.StatusBadRequest, "invalid_token", "token is required")
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
	signedIn := ""
	existing, err := s.store.GetUserByEmail(r.Context(), inv.Email)
	switch {
	case err == nil:
		p, status, msg := s.Authenticate(r)
		if p == nil || p.UserID != existing.ID || p.TenantBound {
			if status == 0 || status == http.StatusForbidden {
				msg = "this invitation is for an existing account: sign in with its password, then accept it again"
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="exo"`)
			httpapi.WriteError(w, http.StatusUnauthorized, "sign_in_required", msg)
			return
		}
		signedIn = p.UserID
	case errors.Is(err, store.ErrNotFound):
		if !checkPassword(w, req.Password) {
			return
		}
		if req.Name != "" {
			name, msg := validName("name", req.Name)
			if msg != "" {
				httpapi.WriteError(w, http.StatusBadRequest, "invalid_name", msg)
				return
			}
			newUser.Name = name
		}
		var ok bool
		if newUser.PasswordHash, ok = s.hash(w, r, req.Password); !ok {
			return
		}
	default:
		s.storeError(w, r, "user", err)
		return
	}
	// The invitation's tenant, the user and the invitation complete the event.
	ctx := store.WithAudit(r.Context(), s.auditEvent(r, "", "", "", "invitation.accept", "invitation", "", nil))
	u, inv, err := s.store.AcceptInvitation(ctx, hash, now, newUser, signedIn)
	if errors.Is(err, store.ErrSignInRequired) {
		// An account appeared for the address after the check above.
		httpapi.WriteError(w, http.StatusUnauthorized, "sign_in_required", "this invitation is for an existing account: sign in with its password, then accept it again")
		return
	} else if err != nil {
		s.storeError(w, r, "invitation", err)
		return
	}
	s.members.invalidate()
	s.issueFor(w, r, http.StatusOK, u, inv.TenantID)
}

// requestPasswordReset answers the same, in the same time, whether or not
// the address has an account: the work that differs (a row, an e-mail)
// happens after the answer's content is fixed, and the mail in the
// background.
func (s *Server) requestPasswordReset(w http.ResponseWriter, r *http.Request) {
	if s.anonLimited(w, r) {
		return
	}
	var req struct {
		Email string `json:"email"`
	}
	if !httpapi.DecodeJSON(w, r, &req) {
		return
	}
	email, ok := normEmail(req.Email)
	if !ok {
		httpapi.WriteError(w, http.StatusBadRequest, "invalid_email", "a valid e-mail address is required")
		return
	}
	accepted := func() {
		httpapi.WriteJSON(w, http.StatusAccepted, map[string]string{"status": "if the address belongs to an account, a reset link has been sent"})
	}
	tok, hash, err := auth.NewLinkToken()
	if err != nil {
		s.internal(w, r, "reset token", err)
		return
	}
	u, err := s.store.GetUserByEmail(r.Context(), email)
	if errors.Is(err, store.ErrNotFound) {
		accepted()
		return
	} else if err != nil {
		s.storeError(w, r, "user", err)
		return
	}
	if err := s.store.CreatePasswordReset(r.Context(), store.PasswordReset{UserID: u.ID, ExpiresAt: time.Now().Add(s.cfg.ResetTTL)}, hash); err != nil {
		s.storeError(w, r, "password reset", err)
		return
	}
	s.sendMailAsync(r, mail.Message{
		To:      u.Email,
		Subject: "Reset your Exo password",
		Body: fmt.Sprintf("Someone asked to reset the password of your Exo account.\n\nOpen this link to choose a new password (valid for %s, usable once):\n\n%s\n\nIf this was not you, ignore this e-mail.\n",
			s.cfg.ResetTTL, s.cfg.Link("/reset-password", url.Values{"token": {tok}})),
	})
	accepted()
}

// confirmPasswordReset checks the token before it hashes anything: a bogus
// token costs a lookup, not 19 MiB.
func (s *Server) confirmPasswordReset(w http.ResponseWriter, r *http.Request) {
	if s.anonLimited(w, r) {
		return
	}
	var req struct {
		Token    string `json:"token"`
		Password string `json:"password"`
	}
	if !httpapi.DecodeJSON(w, r, &req) {
		return
	}
	if !checkPassword(w, req.Password) {
		return
	}
	tokHash := auth.HashToken(req.Token)
	if err := s.store.PeekPasswordReset(r.Context(), tokHash, time.Now()); err != nil {
		s.storeError(w, r, "password reset", err)
		return
	}
	hash, ok := s.hash(w, r, req.Password)
	if !ok {
		return
	}
	// Recorded in each of the user's tenants, with the user as actor and target.
	ctx := store.WithAudit(r.Context(), s.auditEvent(r, "", "", "", "user.password_reset", "user", "", nil))
	_, err := s.store.ConsumePasswordReset(ctx, tokHash, time.Now(), hash)
	s.members.invalidate()
	if err != nil {
		s.storeError(w, r, "password reset", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// sendMailAsync sends m in the background, bounded in time and in how many
// are in flight; a message that finds no slot is logged, never queued
// without bound.
func (s *Server) sendMailAsync(r *http.Request, m mail.Message) {
	select {
	case s.mailSlots <- struct{}{}:
	default:
		s.log.ErrorContext(r.Context(), "e-mail not sent: too many in flight", "subject", m.Subject)
		return
	}
	done := s.TrackLongLived()
	go func() {
		defer done()
		defer func() { <-s.mailSlots }()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.mailer.Send(ctx, m); err != nil {
			s.log.ErrorContext(ctx, "send e-mail", "err", err, "subject", m.Subject)
		}
	}()
}
