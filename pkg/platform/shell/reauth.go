package shell

import (
	"context"
	"net/http"
	"time"
)

// Re-authorising open shells.
//
// A shell is authorised when its grant is issued and again when it is
// redeemed, but a session may last hours. Every ReauthInterval each open
// session is authenticated again as its user would be on a new request:
// the bearer token the grant was issued with and the grant's
// tenant, through api.Server.AuthenticateToken, which checks the token's expiry
// and revocation (per-user token generation: logout, password reset,
// removal) and the user's membership and role in the tenant as of now. A
// session whose user is no longer a member, no longer holds agents:invoke
// (the permission the grant needed) or whose token no longer authenticates
// ends with reason "revoked". An error of the store (500) ends nothing: a
// database hiccup must not kill every shell; the next round decides.

// reauthorizeAll checks every open session once.
func (h *Handler) reauthorizeAll(ctx context.Context) {
	h.mu.Lock()
	relays := make([]*relay, 0, len(h.active))
	for _, r := range h.active {
		relays = append(relays, r)
	}
	h.mu.Unlock()
	for _, r := range relays {
		if ctx.Err() != nil {
			return
		}
		if reason := h.reauthorize(ctx, r.grant); reason != "" {
			r.log.Warn("shell session revoked", "user", r.grant.UserID, "why", reason)
			r.revoke()
		}
	}
}

// reauthorize says why g's user may no longer hold its shell, or "" when
// they still may (or the answer is unknown for now).
func (h *Handler) reauthorize(ctx context.Context, g grant) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	// The same credentials as the request that asked for the grant, in the
	// grant's tenant. Never logged.
	p, status, msg := h.srv.AuthenticateToken(ctx, g.Token, g.TenantID)
	switch {
	case p == nil && (status == http.StatusUnauthorized || status == http.StatusForbidden):
		return msg
	case p == nil:
		h.log.Warn("re-authorise shell session", "user", g.UserID, "status", status)
		return ""
	case p.UserID != g.UserID || p.TenantID != g.TenantID:
		return "the token no longer names the grant's user and tenant"
	case !p.Can(permInvoke):
		return "missing permission " + permInvoke
	}
	return ""
}
