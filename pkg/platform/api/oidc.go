package api

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/exo-in-go/exo/pkg/platform/auth"
	"github.com/exo-in-go/exo/pkg/platform/store"
)

const (
	oidcCallbackPath = "/api/v1/auth/oidc/callback"
	oidcStateCookie  = "exo_oidc_state"
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

// oidcLogin starts the authorization code flow with PKCE, state and nonce.
// The state is also set in a cookie, binding the callback to this browser
// (login CSRF protection).
func (s *Server) oidcLogin(w http.ResponseWriter, r *http.Request) {
	idp, err := s.store.GetIdP(r.Context(), r.PathValue("tenant_id"), r.PathValue("idp_id"))
	if err != nil {
		s.storeError(w, r, "identity provider", err)
		return
	}
	secret, err := s.box.Open(idp.ClientSecretSealed, "idp:"+idp.ID)
	if err != nil {
		s.internal(w, r, "open idp secret", err)
		return
	}
	p, err := s.oidc.get(r.Context(), s.client, idp.Issuer)
	if err != nil {
		s.log.WarnContext(r.Context(), "oidc discovery failed", "err", err, "idp", idp.ID)
		writeError(w, http.StatusBadGateway, "idp_unavailable", "the identity provider is not reachable")
		return
	}
	state, err1 := randomString(32)
	nonce, err2 := randomString(32)
	if err := errors.Join(err1, err2); err != nil {
		s.internal(w, r, "oidc random", err)
		return
	}
	verifier := oauth2.GenerateVerifier()
	if err := s.store.SaveOIDCState(r.Context(), store.OIDCState{
		StateHash: auth.HashToken(state), TenantID: idp.TenantID, IdPID: idp.ID,
		Nonce: nonce, CodeVerifier: verifier, ExpiresAt: time.Now().Add(oidcFlowTTL),
	}); err != nil {
		s.storeError(w, r, "oidc state", err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: oidcStateCookie, Value: state, Path: oidcCallbackPath, MaxAge: int(oidcFlowTTL.Seconds()),
		HttpOnly: true, Secure: s.cfg.BaseURL.Scheme == "https", SameSite: http.SameSiteLaxMode,
	})
	u := s.oauthConfig(p, idp, secret).AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier))
	http.Redirect(w, r, u, http.StatusFound)
}

// oidcCallback finishes the flow and hands the browser the same JWT a
// password login returns, in the URL fragment of EXO_BASE_URL/auth/complete
// (fragments are not sent to servers or logged by proxies).
func (s *Server) oidcCallback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		writeError(w, http.StatusUnauthorized, "oidc_error", "identity provider refused the sign-in: "+e)
		return
	}
	state, code := q.Get("state"), q.Get("code")
	c, err := r.Cookie(oidcStateCookie)
	if state == "" || code == "" || err != nil || c.Value != state {
		writeError(w, http.StatusBadRequest, "invalid_state", "sign-in state missing or does not match this browser")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: oidcStateCookie, Value: "", Path: oidcCallbackPath, MaxAge: -1, HttpOnly: true})
	st, err := s.store.ConsumeOIDCState(r.Context(), auth.HashToken(state), time.Now())
	if err != nil {
		if errors.Is(err, store.ErrInvalidToken) {
			writeError(w, http.StatusBadRequest, "invalid_state", "sign-in expired or already completed; start again")
			return
		}
		s.storeError(w, r, "oidc state", err)
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
	p, err := s.oidc.get(r.Context(), s.client, idp.Issuer)
	if err != nil {
		writeError(w, http.StatusBadGateway, "idp_unavailable", "the identity provider is not reachable")
		return
	}
	ctx, cancel := context.WithTimeout(oidc.ClientContext(r.Context(), s.client), 15*time.Second)
	defer cancel()
	tok, err := s.oauthConfig(p, idp, secret).Exchange(ctx, code, oauth2.VerifierOption(st.CodeVerifier))
	if err != nil {
		s.log.WarnContext(r.Context(), "oidc code exchange failed", "err", err, "idp", idp.ID)
		writeError(w, http.StatusUnauthorized, "oidc_exchange_failed", "could not complete sign-in with the identity provider")
		return
	}
	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" {
		writeError(w, http.StatusUnauthorized, "oidc_no_id_token", "the identity provider returned no ID token")
		return
	}
	idTok, err := p.Verifier(&oidc.Config{ClientID: idp.ClientID}).Verify(ctx, rawID)
	if err != nil {
		s.log.WarnContext(r.Context(), "oidc id token rejected", "err", err, "idp", idp.ID)
		writeError(w, http.StatusUnauthorized, "oidc_invalid_id_token", "the ID token is not valid")
		return
	}
	if idTok.Nonce != st.Nonce {
		writeError(w, http.StatusUnauthorized, "oidc_invalid_id_token", "the ID token nonce does not match")
		return
	}
	var claims struct {
		Email         string `json:"email"`
		EmailVerified *bool  `json:"email_verified"`
		Name          string `json:"name"`
	}
	if err := idTok.Claims(&claims); err != nil {
		writeError(w, http.StatusUnauthorized, "oidc_invalid_id_token", "the ID token claims are malformed")
		return
	}
	email, ok := normEmail(claims.Email)
	if !ok || (claims.EmailVerified != nil && !*claims.EmailVerified) {
		writeError(w, http.StatusForbidden, "oidc_email_unverified", "the identity provider did not assert a verified e-mail address")
		return
	}
	name, _ := validName("name", claims.Name)
	// The sign-in may create the user and its membership: recorded with them,
	// the user filled in as the actor.
	login := store.WithAudit(r.Context(), s.auditEvent(r, idp.TenantID, "", "", "auth.oidc_login", "identity_provider", idp.ID, nil))
	u, err := s.store.EnsureOIDCUser(login, idp.TenantID, store.User{Email: email, Name: name})
	if err != nil {
		s.storeError(w, r, "user", err)
		return
	}
	m, err := s.store.GetMembership(r.Context(), idp.TenantID, u.ID)
	if err != nil {
		s.storeError(w, r, "membership", err)
		return
	}
	jwtTok, exp, err := s.jwt.Issue(u.ID, u.Email, m.TenantID, m.Permissions)
	if err != nil {
		s.internal(w, r, "issue jwt", err)
		return
	}
	frag := url.Values{"token": {jwtTok}, "expires_at": {exp.Format(time.RFC3339)}, "tenant_id": {m.TenantID}}
	http.Redirect(w, r, s.cfg.Link("/auth/complete", nil)+"#"+frag.Encode(), http.StatusFound)
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
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getIdP(w http.ResponseWriter, r *http.Request, p *Principal) {
	i, err := s.store.GetIdP(r.Context(), p.TenantID, r.PathValue("id"))
	if err != nil {
		s.storeError(w, r, "identity provider", err)
		return
	}
	writeJSON(w, http.StatusOK, s.idpView(i))
}

func (s *Server) createIdP(w http.ResponseWriter, r *http.Request, p *Principal) {
	var req struct {
		Name         string `json:"name"`
		Issuer       string `json:"issuer"`
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if !decodeJSON(w, r, &req) {
		return
	}
	name, msg := validName("name", req.Name)
	if msg != "" {
		writeError(w, http.StatusBadRequest, "invalid_name", msg)
		return
	}
	iss, err := url.Parse(req.Issuer)
	if err != nil || iss.Host == "" || (iss.Scheme != "https" && !(iss.Scheme == "http" && (s.cfg.DevMode || isLoopback(iss.Hostname())))) {
		writeError(w, http.StatusBadRequest, "invalid_issuer", "issuer must be an https URL (http only for loopback or in dev mode)")
		return
	}
	if req.ClientID == "" || req.ClientSecret == "" {
		writeError(w, http.StatusBadRequest, "bad_request", "client_id and client_secret are required")
		return
	}
	idp := store.IdentityProvider{ID: store.NewID(), Name: name, Issuer: req.Issuer, ClientID: req.ClientID}
	if idp.ClientSecretSealed, err = s.box.Seal(req.ClientSecret, "idp:"+idp.ID); err != nil {
		s.internal(w, r, "seal idp secret", err)
		return
	}
	ctx := s.audited(r, p, "idp.create", "identity_provider", idp.ID, map[string]any{"name": idp.Name, "issuer": idp.Issuer})
	idp, err = s.store.CreateIdP(ctx, p.TenantID, idp)
	if err != nil {
		s.storeError(w, r, "identity provider", err)
		return
	}
	writeJSON(w, http.StatusCreated, s.idpView(idp))
}

func (s *Server) deleteIdP(w http.ResponseWriter, r *http.Request, p *Principal) {
	id := r.PathValue("id")
	if err := s.store.DeleteIdP(s.audited(r, p, "idp.delete", "identity_provider", id, nil), p.TenantID, id); err != nil {
		s.storeError(w, r, "identity provider", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
