package api

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/mail"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/exo-in-go/exo/pkg/platform/perm"
	"github.com/exo-in-go/exo/pkg/platform/store"
)

const (
	permTenantRead        = perm.TenantRead
	permTenantWrite       = perm.TenantWrite
	permUsersRead         = perm.UsersRead
	permUsersWrite        = perm.UsersWrite
	permUsersInvite       = perm.UsersInvite
	permRolesRead         = perm.RolesRead
	permRolesWrite        = perm.RolesWrite
	permDeploymentsRead   = perm.DeploymentsRead
	permDeploymentsWrite  = perm.DeploymentsWrite
	permDeploymentsDelete = perm.DeploymentsDelete
	permAuditRead         = perm.AuditRead
	permIdPRead           = perm.IdPRead
	permIdPWrite          = perm.IdPWrite
)

// Principal is the authenticated caller of one request, in one tenant.
type Principal struct {
	UserID      string
	Email       string
	TenantID    string
	RoleID      string
	RoleName    string
	Permissions []string
}

// Can reports whether the principal holds permission p in its tenant.
func (p *Principal) Can(permission string) bool { return perm.Has(p.Permissions, permission) }

type principalKey struct{}

// PrincipalFrom returns the principal stored by the authentication wrapper.
func PrincipalFrom(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok
}

// Authenticate resolves the Bearer JWT and the tenant of a request. The
// tenant is the one in the token unless X-Tenant-ID selects another; either
// way membership and permissions are read from the store, so a removed
// member or a changed role takes effect immediately. Exported for handlers
// mounted by other packages (the browser shell).
func (s *Server) Authenticate(r *http.Request) (*Principal, int, string) {
	raw, ok := bearer(r)
	if !ok {
		return nil, http.StatusUnauthorized, "missing bearer token"
	}
	claims, err := s.jwt.Parse(raw)
	if err != nil {
		return nil, http.StatusUnauthorized, "invalid or expired token"
	}
	tenantID := claims.TenantID
	if h := strings.TrimSpace(r.Header.Get("X-Tenant-ID")); h != "" {
		tenantID = h
	}
	m, err := s.members.get(r.Context(), s.store, tenantID, claims.Subject)
	if errors.Is(err, store.ErrNotFound) {
		return nil, http.StatusForbidden, "not a member of this tenant"
	} else if err != nil {
		s.log.ErrorContext(r.Context(), "load membership", "err", err)
		return nil, http.StatusInternalServerError, "internal server error"
	}
	return &Principal{
		UserID: claims.Subject, Email: claims.Email, TenantID: m.TenantID,
		RoleID: m.RoleID, RoleName: m.RoleName, Permissions: m.Permissions,
	}, 0, ""
}

type authedHandler func(w http.ResponseWriter, r *http.Request, p *Principal)

// authed requires a valid JWT, membership of the selected tenant and, when
// permission is not empty, that permission.
func (s *Server) authed(permission string, h authedHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, status, msg := s.Authenticate(r)
		if p == nil {
			code := "unauthorized"
			if status == http.StatusForbidden {
				code = "forbidden"
			} else if status == http.StatusInternalServerError {
				code = "internal"
			}
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="exo"`)
			}
			writeError(w, status, code, msg)
			return
		}
		if permission != "" && !p.Can(permission) {
			writeError(w, http.StatusForbidden, "forbidden", "missing permission "+permission)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)), p)
	}
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

// auditEvent describes what a request did, for the audit log.
func (s *Server) auditEvent(r *http.Request, tenantID, actorID, actorEmail, action, targetType, targetID string, detail map[string]any) store.AuditEvent {
	d := "{}"
	if len(detail) > 0 {
		if b, err := json.Marshal(detail); err == nil {
			d = string(b)
		}
	}
	return store.AuditEvent{
		TenantID: tenantID, ActorID: actorID, ActorEmail: actorEmail, Action: action,
		TargetType: targetType, TargetID: targetID, Detail: d, RemoteAddr: s.ClientAddr(r),
	}
}

// audited returns the request's context carrying the audit event of the
// change the handler is about to make: the store writes the event in the
// change's own transaction (see store.WithAudit). Fields the change
// produces (a new object's id) are left empty for the store to fill. Pass
// the context to that one store call only.
func (s *Server) audited(r *http.Request, p *Principal, action, targetType, targetID string, detail map[string]any) context.Context {
	return store.WithAudit(r.Context(), s.auditEvent(r, p.TenantID, p.UserID, p.Email, action, targetType, targetID, detail))
}

// audit records an event that is not a change of stored state, such as a
// sign-in. A failure to write it is logged loudly and does not fail the
// request.
func (s *Server) audit(r *http.Request, tenantID, actorID, actorEmail, action, targetType, targetID string, detail map[string]any) {
	e := s.auditEvent(r, tenantID, actorID, actorEmail, action, targetType, targetID, detail)
	if err := s.store.AppendAudit(context.WithoutCancel(r.Context()), e); err != nil {
		s.log.ErrorContext(r.Context(), "write audit event", "err", err, "action", action, "tenant", tenantID)
	}
}

// ClientAddr is the peer address, or the first X-Forwarded-For hop when
// EXO_TRUST_PROXY_HEADERS says the ingress sets it. Rate limits, audit
// events and logs of every mounted handler use it.
func (s *Server) ClientAddr(r *http.Request) string {
	if s.cfg.TrustProxyHeaders {
		if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
			first, _, _ := strings.Cut(xff, ",")
			return strings.TrimSpace(first)
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// internal logs err and answers 500 without leaking details.
func (s *Server) internal(w http.ResponseWriter, r *http.Request, what string, err error) {
	s.log.ErrorContext(r.Context(), what, "err", err, "path", r.URL.Path)
	writeError(w, http.StatusInternalServerError, "internal", "internal server error")
}

// storeError maps store errors to HTTP answers.
func (s *Server) storeError(w http.ResponseWriter, r *http.Request, what string, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", what+" not found")
	case errors.Is(err, store.ErrConflict):
		writeError(w, http.StatusConflict, "conflict", what+" already exists")
	case errors.Is(err, store.ErrInUse):
		writeError(w, http.StatusConflict, "in_use", what+" is in use")
	case errors.Is(err, store.ErrInvalidToken):
		writeError(w, http.StatusBadRequest, "invalid_token", "the link is invalid, expired or already used")
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusServiceUnavailable, "timeout", "request timed out")
	default:
		s.internal(w, r, what, err)
	}
}

// validName checks user-supplied names: 1-100 characters, no control characters.
// Anything else (quotes, semicolons, SQL keywords) is stored verbatim.
func validName(field, v string) (string, string) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", field + " is required"
	}
	if utf8.RuneCountInString(v) > 100 {
		return "", field + " must be at most 100 characters"
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return "", field + " must not contain control characters"
		}
	}
	return v, ""
}

// normEmail validates and lower-cases an address so that uniqueness is case-insensitive.
func normEmail(v string) (string, bool) {
	v = strings.TrimSpace(v)
	a, err := mail.ParseAddress(v)
	if err != nil || a.Address != v || len(v) > 254 {
		return "", false
	}
	return strings.ToLower(v), true
}

// membershipCache keeps recently resolved memberships for a short TTL: the
// lookup runs on every API request and dominates read-heavy load. Changes
// made through this replica (role edits, member removal) clear it at once;
// changes made through another replica take effect within the TTL.
type membershipCache struct {
	mu sync.RWMutex
	m  map[[2]string]cachedMembership
}

type cachedMembership struct {
	m   store.Membership
	exp time.Time
}

const membershipCacheTTL = 2 * time.Second

func (c *membershipCache) get(ctx context.Context, st store.Store, tenantID, userID string) (store.Membership, error) {
	key := [2]string{tenantID, userID}
	now := time.Now()
	c.mu.RLock()
	e, ok := c.m[key]
	c.mu.RUnlock()
	if ok && now.Before(e.exp) {
		return e.m, nil
	}
	m, err := st.GetMembership(ctx, tenantID, userID)
	if err != nil {
		return m, err // negative answers are never cached: a new member gets in at once
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) > 100_000 {
		c.m = map[[2]string]cachedMembership{}
	}
	c.m[key] = cachedMembership{m: m, exp: now.Add(membershipCacheTTL)}
	c.mu.Unlock()
	return m, nil
}

// invalidate drops everything; called after any change to roles or memberships.
func (c *membershipCache) invalidate() {
	c.mu.Lock()
	c.m = nil
	c.mu.Unlock()
}
