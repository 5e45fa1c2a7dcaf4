package api

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/exo-in-go/exo/pkg/platform/auth"
	"github.com/exo-in-go/exo/pkg/platform/httpapi"
	"github.com/exo-in-go/exo/pkg/platform/store"
)

const (
	oidcCallbackPath = "/api/v1/auth/oidc/callback"
	oidcFlowTTL      = 10 * time.Minute
)

// oidcProviders caches discovery documents per issuer so a login does not
// cost a discovery round-trip; entries expire so key rotation is picked up.
type oidcProviders struct {
	mu sync.Mutex
	m  map[string]cachedProvider
}

type cachedProvider struct {
	p       *oidc.Provider
	fetched time.Time
}

func newOIDCProviders() *oidcProviders { return &oidcProviders{m: map[string]cachedProvider{}} }

func (o *oidcProviders) get(ctx context.Context, client *http.Client, issuer string) (*oidc.Provider, error) {
	o.mu.Lock()
	c, ok := o.m[issuer]
	o.mu.Unlock()
	if ok && time.Since(c.fetched) < 10*time.Minute {
		return c.p, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// The provider keeps this context for JWKS fetches; the client carries the timeout.
	p, err := oidc.NewProvider(oidc.ClientContext(context.WithoutCancel(ctx), client), issuer)
	if err != nil {
		return nil, fmt.Errorf("oidc discovery for %s: %w", issuer, err)
	}
	o.mu.Lock()
	o.m[issuer] = cachedProvider{p: p, fetched: time.Now()}
	o.mu.Unlock()
	return p, nil
}

func randomString(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func (s *Server) oauthConfig(p *oidc.Provider, idp store.IdentityProvider, secret string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     idp.ClientID,
		ClientSecret: secret,
		Endpoint:     p.Endpoint(),
		RedirectURL:  s.cfg.Link(oidcCallbackPath, nil),
		Scopes:       []string{oidc.ScopeOpenID, "email", "profile"},
	}
}

// The browser that starts a sign-in gets a random cookie (HttpOnly, scoped
// to the OIDC paths); its hash travels with the flow (the state row, the
// link ticket, the completion code), and every step checks the cookie.
// An attacker can hand a victim a URL but not a cookie, so neither a
// callback nor a completion started elsewhere signs the victim's browser
// into the attacker's account (login CSRF).
const (
	oidcBrowserCookie = "exo_oidc_browser"
	oidcCookiePath    = "/api/v1/auth/oidc"
	// completion codes and link tickets live for this long.
	oidcTicketTTL = 2 * time.Minute

	ticketOIDCComplete = "oidc-complete"
	ticketOIDCLink     = "oidc-link"
)

// browserCookie returns the flow cookie of the request, or sets a new one.
func (s *Server) browserCookie(w http.ResponseWriter, r *http.Request) (string, error) {
	if c, err := r.Cookie(oidcBrowserCookie); err == nil && len(c.Value) >= 32 {
		return c.Value, nil
	}
	v, err := randomString(32)
	if err != nil {
		return "", err
	}
	http.SetCookie(w, &http.Cookie{
		Name: oidcBrowserCookie, Value: v, Path: oidcCookiePath, MaxAge: int(oidcFlowTTL.Seconds()),
		HttpOnly: true, Secure: s.cfg.BaseURL.Scheme == "https", SameSite: http.SameSiteLaxMode,
	})
	return v, nil
}

// browserHash is the hash of the request's flow cookie ("" without one).
func browserHash(r *http.Request) string {
	c, err := r.Cookie(oidcBrowserCookie)
	if err != nil || c.Value == "" {
		return ""
	}
	return auth.HashToken(c.Value)
}

// oidcLogin starts the authorization code flow with PKCE, state and nonce,
// bound to this browser. With ?link=TICKET (from POST /idp/{id}/link) the
// flow links the identity to the signed-in user who asked instead.
func (s *Server) oidcLogin(w http.ResponseWriter, r *http.Request) {
	if s.anonLimited(w, r) {
		return
	}
	idp, err := s.store.GetIdP(r.Context(), r.PathValue("tenant_id"), r.PathValue("idp_id"))
	if err != nil {
		s.storeError(w, r, "identity provider", err)
		return
	}
	linkUser := ""
	if raw := r.URL.Query().Get("link"); raw != "" {
		t, err := s.jwt.ParseTicket(ticketOIDCLink, raw)
		if err != nil || t.IdPID != idp.ID || t.TenantID != idp.TenantID || t.BrowserHash == "" || t.BrowserHash != browserHash(r) {
			httpapi.WriteError(w, http.StatusBadRequest, "invalid_link", "the link request is invalid, expired or from another browser; start it again from your account")
			return
		}
		linkUser = t.UserID
	}
	secret, err := s.box.Open(idp.ClientSecretSealed, "idp:"+idp.ID)
	if err != nil {
		s.internal(w, r, "open idp secret", err)
		return
	}
	p, err := s.oidc.get(r.Context(), s.oidcClient, idp.Issuer)
	if err != nil {
		s.log.WarnContext(r.Context(), "oidc discovery failed", "err", err, "idp", idp.ID)
		httpapi.WriteError(w, http.StatusBadGateway, "idp_unavailable", "the identity provider is not reachable")
		return
	}
	state, err1 := randomString(32)
	nonce, err2 := randomString(32)
	browser, err3 := s.browserCookie(w, r)
	if err := errors.Join(err1, err2, err3); err != nil {
		s.internal(w, r, "oidc random", err)
		return
	}
	verifier := oauth2.GenerateVerifier()
	if err := s.store.SaveOIDCState(r.Context(), store.OIDCState{
		StateHash: auth.HashToken(state), TenantID: idp.TenantID, IdPID: idp.ID,
		Nonce: nonce, CodeVerifier: verifier, LinkUserID: linkUser, BrowserHash: auth.HashToken(browser),
		ExpiresAt: time.Now().Add(oidcFlowTTL),
	}); err != nil {
		s.storeError(w, r, "oidc state", err)
		return
	}
	u := s.oauthConfig(p, idp, secret).AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier))
	http.Redirect(w, r, u, http.StatusFound)
}

// oidcCallback finishes the flow. A sign-in does not hand out a token in
// the URL: it redirects to EXO_BASE_URL/auth/complete#code=CODE, and the
// page exchanges the code (POST /auth/oidc/complete), which only works in
// the browser that holds the flow's cookie.
func (s *Server) oidcCallback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		httpapi.WriteError(w, http.StatusUnauthorized, "oidc_error", "identity provider refused the sign-in: "+e)
		return
	}
	state, code := q.Get("state"), q.Get("code")
	bh := browserHash(r)
	if state == "" || code == "" || bh == "" {
		httpapi.WriteError(w, http.StatusBadRequest, "invalid_state", "sign-in state missing or does not match this browser")
		return
	}
	st, err := s.store.ConsumeOIDCState(r.Context(), auth.HashToken(state), time.Now())
	if err != nil {
		if errors.Is(err, store.ErrInvalidToken) {
			httpapi.WriteError(w, http.StatusBadRequest, "invalid_state", "sign-in expired or already completed; start again")
			return
		}
		s.storeError(w, r, "oidc state", err)
		return
	}
	if subtle.ConstantTimeCompare([]byte(st.BrowserHash), []byte(bh)) != 1 {
		httpapi.WriteError(w, http.StatusBadRequest, "invalid_state", "sign-in state missing or does not match this browser")
		return
	}
	idp, err := s.store.GetIdP(r.Context(), st.TenantID, st.IdPID)
	if err != nil {
		s.storeError(w, r, "identity provider", err)
		return
	}
	secret, err := s.box.Open(idp.ClientSecretSealed, "idp:"+idp.ID)
	if err != nil {
		s.internal(w, r, "open idp secret", err)
		return
	}
	p, err := s.oidc.get(r.Context(), s.oidcClient, idp.Issuer)
	if err != nil {
		httpapi.WriteError(w, http.StatusBadGateway, "idp_unavailable", "the identity provider is not reachable")
		return
	}
	ctx, cancel := context.WithTimeout(oidc.ClientContext(r.Context(), s.oidcClient), 15*time.Second)
	defer cancel()
	tok, err := s.oauthConfig(p, idp, secret).Exchange(ctx, code, oauth2.VerifierOption(st.CodeVerifier))
	if err != nil {
		s.log.WarnContext(r.Context(), "oidc code exchange failed", "err", err, "idp", idp.ID)
		httpapi.WriteError(w, http.StatusUnauthorized, "oidc_exchange_failed", "could not complete sign-in with the identity provider")
		return
	}
	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" {
		httpapi.WriteError(w, http.StatusUnauthorized, "oidc_no_id_token", "the identity provider returned no ID token")
		return
	}
	idTok, err := p.Verifier(&oidc.Config{ClientID: idp.ClientID}).Verify(ctx, rawID)
	if err != nil {
		s.log.WarnContext(r.Context(), "oidc id token rejected", "err", err, "idp", idp.ID)
		httpapi.WriteError(w, http.StatusUnauthorized, "oidc_invalid_id_token", "the ID token is not valid")
		return
	}
	if subtle.ConstantTimeCompare([]byte(idTok.Nonce), []byte(st.Nonce)) != 1 {
		httpapi.WriteError(w, http.StatusUnauthorized, "oidc_invalid_id_token", "the ID token nonce does not match")
		return
	}
	var claims struct {
		Email         string `json:"email"`
		EmailVerified any    `json:"email_verified"`
		Name          string `json:"name"`
	}
	if err := idTok.Claims(&claims); err != nil {
		httpapi.WriteError(w, http.StatusUnauthorized, "oidc_invalid_id_token", "the ID token claims are malformed")
		return
	}
	if idTok.Subject == "" || len(idTok.Subject) > 255 {
		httpapi.WriteError(w, http.StatusUnauthorized, "oidc_invalid_id_token", "the ID token has no usable subject")
		return
	}
	email, ok := normEmail(claims.Email)
	// Absent means unverified; some providers send the string "true".
	if !ok || !(claims.EmailVerified == true || claims.EmailVerified == "true") {
		httpapi.WriteError(w, http.StatusForbidden, "oidc_email_unverified", "the identity provider did not assert a verified e-mail address")
		return
	}
	if !domainAllowed(idp.AllowedDomains, email) {
		httpapi.WriteError(w, http.StatusForbidden, "oidc_domain_not_allowed", "this identity provider does not sign in addresses of that domain")
		return
	}
	if st.LinkUserID != "" {
		s.finishLink(w, r, idp, idTok.Subject, email, st.LinkUserID)
		return
	}
	name, _ := validName("name", claims.Name)
	// The sign-in may create the user and its membership: recorded with them,
	// the user filled in as the actor.
	login := store.WithAudit(r.Context(), s.auditEvent(r, idp.TenantID, "", "", "auth.oidc_login", "identity_provider", idp.ID, nil))
	u, err := s.store.SignInWithIdP(login, idp, idTok.Subject, store.User{Email: email, Name: name})
	if err != nil {
		s.storeError(w, r, "user", err)
		return
	}
	s.members.invalidate()
	completion, err := s.jwt.IssueTicket(ticketOIDCComplete, auth.Ticket{
		UserID: u.ID, Email: email, TenantID: idp.TenantID, IdPID: idp.ID, Generation: u.TokenGeneration, BrowserHash: bh,
	}, oidcTicketTTL)
	if err != nil {
		s.internal(w, r, "oidc completion", err)
		return
	}
	frag := url.Values{"code": {completion}}
	http.Redirect(w, r, s.cfg.Link("/auth/complete", nil)+"#"+frag.Encode(), http.StatusFound)
}

// finishLink records the identity for the user who started the link.
func (s *Server) finishLink(w http.ResponseWriter, r *http.Request, idp store.IdentityProvider, subject, email, userID string) {
	if _, err := s.store.GetMembership(r.Context(), idp.TenantID, userID); err != nil {
		s.storeError(w, r, "membership", err)
		return
	}
	ctx := store.WithAudit(r.Context(), s.auditEvent(r, idp.TenantID, userID, "", "idp.link", "identity_provider", idp.ID, map[string]any{"email": email}))
	err := s.store.LinkIdentity(ctx, idp, subject, email, userID)
	if errors.Is(err, store.ErrConflict) {
		httpapi.WriteError(w, http.StatusConflict, "identity_taken", "this identity already signs in to an account")
		return
	} else if err != nil {
		s.storeError(w, r, "identity", err)
		return
	}
	http.Redirect(w, r, s.cfg.Link("/auth/complete", nil)+"#linked="+url.QueryEscape(idp.Name), http.StatusFound)
}

// oidcComplete exchanges a completion code for a token bound to the
// provider's tenant, in the browser that started the sign-in only.
func (s *Server) oidcComplete(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Code string `json:"code"`
	}
	if !httpapi.DecodeJSON(w, r, &req) {
		return
	}
	t, err := s.jwt.ParseTicket(ticketOIDCComplete, req.Code)
	bh := browserHash(r)
	if err != nil || bh == "" || subtle.ConstantTimeCompare([]byte(t.BrowserHash), []byte(bh)) != 1 {
		httpapi.WriteError(w, http.StatusBadRequest, "invalid_code", "the sign-in code is invalid, expired or was started in another browser; sign in again")
		return
	}
	m, err := s.store.GetMembership(r.Context(), t.TenantID, t.UserID)
	if err != nil {
		s.storeError(w, r, "membership", err)
		return
	}
	if m.TokenGeneration != t.Generation {
		httpapi.WriteError(w, http.StatusBadRequest, "invalid_code", "the sign-in code was revoked; sign in again")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: oidcBrowserCookie, Value: "", Path: oidcCookiePath, MaxAge: -1, HttpOnly: true})
	tok, exp, err := s.jwt.Issue(auth.Subject{
		UserID: t.UserID, Email: t.Email, TenantID: m.TenantID, Permissions: m.Permissions,
		Generation: m.TokenGeneration, TenantBound: true,
	})
	if err != nil {
		s.internal(w, r, "issue jwt", err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, tokenResponse{Token: tok, ExpiresAt: exp, TenantID: m.TenantID})
}

// linkIdP starts linking the caller's account to an identity of one of the
// tenant's providers: it answers the login URL to open in this browser.
// Only a password sign-in may link (a provider's sign-in would vouch for
// itself).
func (s *Server) linkIdP(w http.ResponseWriter, r *http.Request, p *Principal) {
	if p.TenantBound {
		httpapi.WriteError(w, http.StatusForbidden, "password_sign_in_required", "link an identity after signing in with your password")
		return
	}
	idp, err := s.store.GetIdP(r.Context(), p.TenantID, r.PathValue("id"))
	if err != nil {
		s.storeError(w, r, "identity provider", err)
		return
	}
	browser, err := s.browserCookie(w, r)
	if err != nil {
		s.internal(w, r, "oidc random", err)
		return
	}
	ticket, err := s.jwt.IssueTicket(ticketOIDCLink, auth.Ticket{
		UserID: p.UserID, TenantID: idp.TenantID, IdPID: idp.ID, BrowserHash: auth.HashToken(browser),
	}, oidcTicketTTL)
	if err != nil {
		s.internal(w, r, "link ticket", err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]string{
		"url": s.cfg.Link("/api/v1/auth/oidc/"+idp.TenantID+"/"+idp.ID+"/login", url.Values{"link": {ticket}}),
	})
}

// domainAllowed reports whether email's domain is in the list (any when empty).
func domainAllowed(domains []string, email string) bool {
	if len(domains) == 0 {
		return true
	}
	_, domain, _ := strings.Cut(email, "@")
	return slices.Contains(domains, domain)
}

// ---- identity provider administration ----

type idpView struct {
	store.IdentityProvider
	RedirectURI string `json:"redirect_uri"`
	LoginURL    string `json:"login_url"`
}

func (s *Server) idpView(i store.IdentityProvider) idpView {
	return idpView{
		IdentityProvider: i,
		RedirectURI:      s.cfg.Link(oidcCallbackPath, nil),
		LoginURL:         s.cfg.Link("/api/v1/auth/oidc/"+i.TenantID+"/"+i.ID+"/login", nil),
	}
}

func (s *Server) listIdPs(w http.ResponseWriter, r *http.Request, p *Principal) {
	idps, err := s.store.ListIdPs(r.Context(), p.TenantID)
	if err != nil {
		s.storeError(w, r, "identity providers", err)
		return
	}
	out := list[idpView]{Items: []idpView{}}
	for _, i := range idps {
		out.Items = append(out.Items, s.idpView(i))
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
}

func (s *Server) getIdP(w http.ResponseWriter, r *http.Request, p *Principal) {
	i, err := s.store.GetIdP(r.Context(), p.TenantID, r.PathValue("id"))
	if err != nil {
		s.storeError(w, r, "identity provider", err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, s.idpView(i))
}

func (s *Server) createIdP(w http.ResponseWriter, r *http.Request, p *Principal) {
	var req struct {
		Name           string   `json:"name"`
		Issuer         string   `json:"issuer"`
		ClientID       string   `json:"client_id"`
		ClientSecret   string   `json:"client_secret"`
		AllowedDomains []string `json:"allowed_domains"`
		DefaultRoleID  string   `json:"default_role_id"`
	}
	if !httpapi.DecodeJSON(w, r, &req) {
		return
	}
	name, msg := validName("name", req.Name)
	if msg != "" {
		httpapi.WriteError(w, http.StatusBadRequest, "invalid_name", msg)
		return
	}
	iss, err := url.Parse(req.Issuer)
	if err != nil || iss.Host == "" || iss.User != nil || (iss.Scheme != "https" && !(iss.Scheme == "http" && s.cfg.DevMode)) {
		httpapi.WriteError(w, http.StatusBadRequest, "invalid_issuer", "issuer must be an https URL (http only in dev mode)")
		return
	}
	if req.ClientID == "" || req.ClientSecret == "" || len(req.ClientID) > 512 || len(req.ClientSecret) > 4096 {
		httpapi.WriteError(w, http.StatusBadRequest, "bad_request", "client_id and client_secret are required")
		return
	}
	domains := []string{}
	for _, d := range req.AllowedDomains {
		d = strings.ToLower(strings.TrimSpace(d))
		if _, ok := normEmail("x@" + d); !ok || strings.ContainsAny(d, "@ ") {
			httpapi.WriteError(w, http.StatusBadRequest, "invalid_domain", fmt.Sprintf("allowed_domains: %q is not a domain", d))
			return
		}
		if !slices.Contains(domains, d) {
			domains = append(domains, d)
		}
	}
	if len(domains) > 100 {
		httpapi.WriteError(w, http.StatusBadRequest, "invalid_domain", "allowed_domains: at most 100")
		return
	}
	if req.DefaultRoleID != "" {
		// Whoever configures the provider grants its default role to everyone it signs in.
		role, err := s.store.GetRole(r.Context(), p.TenantID, req.DefaultRoleID)
		if err != nil {
			s.storeError(w, r, "role", err)
			return
		}
		if !p.CanAll(role.Permissions) {
			httpapi.WriteError(w, http.StatusForbidden, "forbidden", "cannot make a role with permissions you do not hold the provider's default")
			return
		}
	}
	idp := store.IdentityProvider{ID: store.NewID(), Name: name, Issuer: req.Issuer, ClientID: req.ClientID,
		AllowedDomains: domains, DefaultRoleID: req.DefaultRoleID}
	if idp.ClientSecretSealed, err = s.box.Seal(req.ClientSecret, "idp:"+idp.ID); err != nil {
		s.internal(w, r, "seal idp secret", err)
		return
	}
	ctx := s.audited(r, p, "idp.create", "identity_provider", idp.ID, map[string]any{"name": idp.Name, "issuer": idp.Issuer,
		"allowed_domains": domains, "default_role_id": req.DefaultRoleID})
	idp, err = s.store.CreateIdP(ctx, p.TenantID, idp)
	if err != nil {
		s.storeError(w, r, "identity provider", err)
		return
	}
	httpapi.WriteJSON(w, http.StatusCreated, s.idpView(idp))
}

func (s *Server) deleteIdP(w http.ResponseWriter, r *http.Request, p *Principal) {
	id := r.PathValue("id")
	if err := s.store.DeleteIdP(s.audited(r, p, "idp.delete", "identity_provider", id, nil), p.TenantID, id); err != nil {
		s.storeError(w, r, "identity provider", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
