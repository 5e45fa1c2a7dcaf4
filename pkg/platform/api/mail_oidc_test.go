package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/oauth2-proxy/mockoidc"

	"github.com/exo-in-go/exo/pkg/platform/store"
)

// TestInvitationEmail: the invitation arrives at a real SMTP server, its link
// is under EXO_BASE_URL, opening it (GET) does not consume it, accepting it
// (POST) works once and fails the second time.
func TestInvitationEmail(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		const base = "https://exo.example.test/platform"
		e := newEnv(t, backend, withEnv("EXO_BASE_URL", base))
		admin := e.signup("owner@example.com", "Invites")
		var created struct {
			Invitation store.Invitation `json:"invitation"`
			EmailSent  bool             `json:"email_sent"`
		}
		e.expect(e.req("POST", "/api/v1/invitations", admin.Token, map[string]string{"email": "Newbie@Example.com"}), 201).json(t, &created)
		if !created.EmailSent || created.Invitation.Email != "newbie@example.com" {
			t.Fatalf("invitation %+v", created)
		}
		if strings.Contains(string(e.req("GET", "/api/v1/invitations", admin.Token, nil).Body), "token") {
			t.Fatal("invitation list exposes a token")
		}
		m := waitMail(t, e.inbox)
		if len(m.To) != 1 || m.To[0] != "newbie@example.com" || m.From != "exo@example.test" {
			t.Fatalf("envelope %+v", m)
		}
		if !strings.Contains(m.Data, "Subject: You are invited to Invites on Exo") {
			t.Fatalf("mail:\n%s", m.Data)
		}
		link := linkFrom(t, m.Data)
		if !strings.HasPrefix(link, base+"/invite/accept?token=") {
			t.Fatalf("link %q not under EXO_BASE_URL", link)
		}
		tok, _ := url.QueryUnescape(tokenFrom(t, link))

		// Opening the confirm page (what a link scanner does) consumes nothing.
		page := e.expect(e.req("GET", "/invite/accept?token="+url.QueryEscape(tok), "", nil), 200)
		if !strings.Contains(string(page.Body), "/api/v1/auth/invitations/accept") || page.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Fatalf("confirm page: %s", page.Body)
		}

		e.expect(e.req("POST", "/api/v1/auth/invitations/accept", "", map[string]string{"token": tok, "password": "short"}), 400)
		var sess session
		e.expect(e.req("POST", "/api/v1/auth/invitations/accept", "", map[string]string{"token": tok, "name": "New Bie", "password": "newbie password"}), 200).json(t, &sess)
		if sess.TenantID != admin.TenantID {
			t.Fatalf("joined tenant %q", sess.TenantID)
		}
		if code := e.expect(e.req("POST", "/api/v1/auth/invitations/accept", "", map[string]string{"token": tok, "password": "newbie password"}), 400).errCode(t); code != "invalid_token" {
			t.Fatal(code)
		}
		var me struct {
			Role string `json:"role"`
		}
		e.expect(e.req("GET", "/api/v1/auth/me", sess.Token, nil), 200).json(t, &me)
		if me.Role != "member" {
			t.Fatalf("role %q", me.Role)
		}
		e.expect(e.req("POST", "/api/v1/auth/login", "", map[string]string{"email": "newbie@example.com", "password": "newbie password"}), 200)
		// Already a member: a second invitation is a conflict.
		e.expect(e.req("POST", "/api/v1/invitations", admin.Token, map[string]string{"email": "newbie@example.com"}), 409)

		// Password reset: same properties.
		e.expect(e.req("POST", "/api/v1/auth/password-reset", "", map[string]string{"email": "nobody@example.com"}), 202)
		e.expect(e.req("POST", "/api/v1/auth/password-reset", "", map[string]string{"email": "newbie@example.com"}), 202)
		rm := waitMail(t, e.inbox)
		if rm.To[0] != "newbie@example.com" {
			t.Fatalf("reset mail to %v (the unknown address must not get one)", rm.To)
		}
		rlink := linkFrom(t, rm.Data)
		if !strings.HasPrefix(rlink, base+"/reset-password?token=") {
			t.Fatalf("reset link %q", rlink)
		}
		rtok, _ := url.QueryUnescape(tokenFrom(t, rlink))
		e.expect(e.req("POST", "/api/v1/auth/password-reset/confirm", "", map[string]string{"token": rtok, "password": "brand new password"}), 204)
		e.expect(e.req("POST", "/api/v1/auth/password-reset/confirm", "", map[string]string{"token": rtok, "password": "another password"}), 400)
		e.expect(e.req("POST", "/api/v1/auth/login", "", map[string]string{"email": "newbie@example.com", "password": "newbie password"}), 401)
		e.expect(e.req("POST", "/api/v1/auth/login", "", map[string]string{"email": "newbie@example.com", "password": "brand new password"}), 200)
	})
}

// TestOIDCLogin signs in through a real OIDC provider (mockoidc) with PKCE,
// state and nonce, and gets the same JWT a password login returns.
func TestOIDCLogin(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		m, err := mockoidc.Run()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Shutdown() })
		e := newEnv(t, backend)
		admin := e.signup("sso-admin@example.com", "SSO Co")
		cfg := m.Config()
		var idp struct {
			store.IdentityProvider
			RedirectURI string `json:"redirect_uri"`
			LoginURL    string `json:"login_url"`
		}
		e.expect(e.req("POST", "/api/v1/idp", admin.Token, map[string]string{
			"name": "mock", "issuer": cfg.Issuer, "client_id": cfg.ClientID, "client_secret": cfg.ClientSecret,
		}), 201).json(t, &idp)
		if idp.RedirectURI != e.cfg.BaseURL.String()+"/api/v1/auth/oidc/callback" {
			t.Fatalf("redirect uri %q", idp.RedirectURI)
		}
		if body := string(e.req("GET", "/api/v1/idp/"+idp.ID, admin.Token, nil).Body); strings.Contains(body, cfg.ClientSecret) {
			t.Fatal("client secret returned by the API")
		}
		// The secret is sealed at rest.
		stored, err := e.store.GetIdP(t.Context(), admin.TenantID, idp.ID)
		if err != nil || stored.ClientSecretSealed == "" || strings.Contains(stored.ClientSecretSealed, cfg.ClientSecret) {
			t.Fatalf("stored secret %q, %v", stored.ClientSecretSealed, err)
		}

		jar, _ := cookiejar.New(nil)
		var authorizeURL *url.URL
		browser := &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if strings.Contains(req.URL.Path, "/authorize") {
				authorizeURL = req.URL
			}
			if req.URL.Path == "/auth/complete" {
				return http.ErrUseLastResponse
			}
			return nil
		}}
		res, err := browser.Get(idp.LoginURL)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusFound {
			t.Fatalf("login flow ended with %d", res.StatusCode)
		}
		q := authorizeURL.Query()
		if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("nonce") == "" || q.Get("state") == "" {
			t.Fatalf("authorize request lacks PKCE/nonce/state: %v", q)
		}
		loc, _ := url.Parse(res.Header.Get("Location"))
		if loc.Path != "/auth/complete" {
			t.Fatalf("final redirect %s", loc)
		}
		frag, _ := url.ParseQuery(loc.Fragment)
		if frag.Get("token") != "" {
			t.Fatal("a token in the completion URL would sign in any browser that opens it")
		}
		// The code is exchanged by the browser that started the flow only.
		completeURL := e.cfg.BaseURL.String() + "/api/v1/auth/oidc/complete"
		body := strings.NewReader(`{"code":"` + frag.Get("code") + `"}`)
		if res, err := http.Post(completeURL, "application/json", body); err != nil || res.StatusCode != http.StatusBadRequest {
			t.Fatalf("completion from another browser: %v %v", res, err)
		}
		res, err = browser.Post(completeURL, "application/json", strings.NewReader(`{"code":"`+frag.Get("code")+`"}`))
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("completion: %v %v", res, err)
		}
		var sess session
		if err := json.NewDecoder(res.Body).Decode(&sess); err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		tok := sess.Token
		var me struct {
			User     struct{ Email string } `json:"user"`
			TenantID string                 `json:"tenant_id"`
			Role     string                 `json:"role"`
		}
		e.expect(e.req("GET", "/api/v1/auth/me", tok, nil), 200).json(t, &me)
		// No role was chosen for the provider: signed in, no permissions.
		if me.User.Email != mockoidc.DefaultUser().Email || me.TenantID != admin.TenantID || me.Role != "no-access" {
			t.Fatalf("me after OIDC: %+v", me)
		}

		// Replaying the callback (same state and code) fails: state is single-use.
		cb := e.cfg.BaseURL.String() + "/api/v1/auth/oidc/callback?state=" + url.QueryEscape(q.Get("state")) + "&code=whatever"
		req, _ := http.NewRequest("GET", cb, nil)
		for _, c := range jar.Cookies(req.URL) {
			req.AddCookie(c)
		}
		res, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusBadRequest {
			t.Fatalf("replayed callback: %d", res.StatusCode)
		}
		// A callback without the browser's state cookie is refused.
		res, err = http.Get(cb)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusBadRequest {
			t.Fatalf("callback without cookie: %d", res.StatusCode)
		}
	})
}
