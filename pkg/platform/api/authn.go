package api

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/mail"
	"net/netip"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/exo-in-go/exo/pkg/platform/httpapi"
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
	// TenantBound principals signed in through TenantID's own identity
	// provider: that tenant is the only one their token opens.
	TenantBound bool
}

// Can reports whether the principal holds permission p in its tenant.
func (p *Principal) Can(permission string) bool { return perm.Has(p.Permissions, permission) }

// CanAll reports whether the principal holds every one of perms: nobody
// grants, takes away or edits what they do not hold themselves.
func (p *Principal) CanAll(perms []string) bool { return perm.HasAll(p.Permissions, perms) }

// Authenticate resolves the Bearer JWT and the tenant of a request. The
// tenant is the one in the token unless X-Tenant-ID selects another (refused
// for a token bound to its tenant); either way membership, permissions and
// the user's token generation are read from the store, so a removed member,
// a changed role or a revoked token takes effect immediately (within the
// membership cache's two seconds on other replicas). Exported for handlers
// mounted by other packages (the browser shell re-checks open sessions
// with it).
func (s *Server) Authenticate(r *http.Request) (*Principal, int, string) {
	raw, ok := BearerToken(r)
	if !ok {
		return nil, http.StatusUnauthorized, "missing bearer token"
	}
	return s.AuthenticateToken(r.Context(), raw, strings.TrimSpace(r.Header.Get("X-Tenant-ID")))
}

// AuthenticateToken is Authenticate for a raw bearer token in tenantID
// ("" for the token's own tenant), for callers that hold a token outside a
// request: the shell re-authorises its open sessions with it.
func (s *Server) AuthenticateToken(ctx context.Context, raw, tenantID string) (*Principal, int, string) {
	claims, err := s.jwt.Parse(raw)
	if err != nil {
		return nil, http.StatusUnauthorized, "invalid or expired token"
	}
	h := tenantID
	tenantID = claims.TenantID
	if h != "" && h != claims.TenantID {
		if claims.TenantBound {
			return nil, http.StatusForbidden, "this sign-in came through the identity provider of another tenant and opens that tenant only; sign in again to use this one"
		}
		tenantID = h
	}
	m, err := s.members.get(ctx, s.store, tenantID, claims.Subject)
	if errors.Is(err, store.ErrNotFound) {
		return nil, http.StatusForbidden, "not a member of this tenant"
	} else if err != nil {
		s.log.ErrorContext(ctx, "load membership", "err", err)
		return nil, http.StatusInternalServerError, "internal server error"
	}
	if m.TokenGeneration != claims.Generation {
		return nil, http.StatusUnauthorized, "token revoked; sign in again"
	}
	return &Principal{
		UserID: claims.Subject, Email: claims.Email, TenantID: m.TenantID,
		RoleID: m.RoleID, RoleName: m.RoleName, Permissions: m.Permissions,
		TenantBound: claims.TenantBound,
	}, 0, ""
}

type authedHandler func(w http.ResponseWriter, r *http.Request, p *Principal)

// authed requires a valid JWT, membership of the selected tenant and, when
// permission is not empty, that permission.
func (s *Server) authed(permission string, h authedHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, status, msg := s.Authenticate(r)
		if p == nil {
			httpapi.WriteAuthError(w, status, msg)
			return
		}
		if permission != "" && !p.Can(permission) {
			httpapi.WriteError(w, http.StatusForbidden, "forbidden", "missing permission "+permission)
			return
		}
		h(w, r, p)
	}
}

// BearerToken is the token of the request's Authorization: Bearer header.
func BearerToken(r *http.Request) (string, bool) {
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

// ClientAddr is the client's address: the peer's, or, behind trusted
// proxies, the right-most X-Forwarded-For hop they did not add. Entries to
// the left of it are whatever the client sent, so they are never used.
// Rate limits, audit events and logs of every mounted handler use it.
func (s *Server) ClientAddr(r *http.Request) string {
	peer, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		peer = r.RemoteAddr
	}
	if !s.cfg.TrustProxyHeaders {
		return peer
	}
	var hops []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		for _, f := range strings.Split(h, ",") {
			if f = strings.TrimSpace(f); f != "" {
				hops = append(hops, f)
			}
		}
	}
	if len(s.cfg.TrustedProxies) > 0 {
		// The peer and each hop from the right are proxies while they are in
		// the trusted networks; the first that is not is the client.
		addr := peer
		for i := len(hops); ; i-- {
			if !trusted(s.cfg.TrustedProxies, addr) || i == 0 {
				return addr
			}
			addr = hops[i-1]
		}
	}
	// Each of the n proxies appended the address it received from: the
	// client is n entries from the right.
	if n := s.cfg.TrustedProxyHops; n > 0 && len(hops) >= n {
		return hops[len(hops)-n]
	}
	return peer
}

func trusted(nets []netip.Prefix, addr string) bool {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, n := range nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

// internal logs err and answers 500 without leaking details.
func (s *Server) internal(w http.ResponseWriter, r *http.Request, what string, err error) {
	s.log.ErrorContext(r.Context(), what, "err", err, "path", r.URL.Path)
	httpapi.WriteError(w, http.StatusInternalServerError, "internal", "internal server error")
}

// storeError maps store errors to HTTP answers.
func (s *Server) storeError(w http.ResponseWriter, r *http.Request, what string, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		httpapi.WriteError(w, http.StatusNotFound, "not_found", what+" not found")
	case errors.Is(err, store.ErrConflict):
		httpapi.WriteError(w, http.StatusConflict, "conflict", what+" already exists")
	case errors.Is(err, store.ErrInUse):
		httpapi.WriteError(w, http.StatusConflict, "in_use", what+" is in use")
	case errors.Is(err, store.ErrLastAdmin):
		httpapi.WriteError(w, http.StatusConflict, "last_admin", "the tenant's last member holding every permission cannot be demoted or removed; give another member such a role first")
	case errors.Is(err, store.ErrBuiltin):
		httpapi.WriteError(w, http.StatusForbidden, "builtin_role", "built-in roles cannot be changed or deleted; create a role of your own instead")
	case errors.Is(err, store.ErrNotPermitted):
		httpapi.WriteError(w, http.StatusForbidden, "forbidden", what+" holds permissions you do not hold")
	case errors.Is(err, store.ErrSignInRequired):
		httpapi.WriteError(w, http.StatusUnauthorized, "sign_in_required", "sign in to the account first")
	case errors.Is(err, store.ErrInvalidToken):
		httpapi.WriteError(w, http.StatusBadRequest, "invalid_token", "the link is invalid, expired or already used")
	case errors.Is(err, context.DeadlineExceeded):
		httpapi.WriteError(w, http.StatusServiceUnavailable, "timeout", "request timed out")
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
