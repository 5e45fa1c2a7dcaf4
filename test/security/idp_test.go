package security_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/exo-in-go/exo/pkg/platform/platformtest"
)

// fakeIdP is an OpenID provider over HTTPS that an attacker controls: it
// signs in whoever the test says, with whatever claims the test says. Its
// authorize endpoint answers at once (no login form) with a code for the
// next identity.
type fakeIdP struct {
	t      *testing.T
	srv    *httptest.Server
	key    *rsa.PrivateKey
	caFile string // PEM of the server's certificate, for SSL_CERT_FILE

	mu       sync.Mutex
	identity map[string]any // claims of the next sign-in
	codes    map[string]map[string]any
	requests atomic.Int64
}

const idpClientID, idpClientSecret = "exo-client", "exo-client-secret"

func startIdP(t *testing.T) *fakeIdP {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p := &fakeIdP{t: t, key: key, codes: map[string]map[string]any{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", p.discovery)
	mux.HandleFunc("GET /jwks", p.jwks)
	mux.HandleFunc("GET /authorize", p.authorize)
	mux.HandleFunc("POST /token", p.token)
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.requests.Add(1)
		mux.ServeHTTP(w, r)
	}))
	p.srv.StartTLS()
	t.Cleanup(p.srv.Close)
	p.caFile = filepath.Join(t.TempDir(), "idp-ca.pem")
	if err := os.WriteFile(p.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// issuer is the provider's https URL.
func (p *fakeIdP) issuer() string { return p.srv.URL }

// next sets the claims of the next sign-in (sub, email, email_verified, …).
func (p *fakeIdP) next(claims map[string]any) {
	p.mu.Lock()
	p.identity = claims
	p.mu.Unlock()
}

func (p *fakeIdP) discovery(w http.ResponseWriter, r *http.Request) {
	writeJSONTest(w, map[string]any{
		"issuer":                                p.issuer(),
		"authorization_endpoint":                p.issuer() + "/authorize",
		"token_endpoint":                        p.issuer() + "/token",
		"jwks_uri":                              p.issuer() + "/jwks",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
	})
}

func (p *fakeIdP) jwks(w http.ResponseWriter, r *http.Request) {
	pub := p.key.PublicKey
	writeJSONTest(w, map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256",
		"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}}})
}

func (p *fakeIdP) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p.mu.Lock()
	claims := map[string]any{}
	for k, v := range p.identity {
		claims[k] = v
	}
	claims["nonce"] = q.Get("nonce")
	code := rand.Text()
	p.codes[code] = claims
	p.mu.Unlock()
	back, err := url.Parse(q.Get("redirect_uri"))
	if err != nil {
		http.Error(w, "bad redirect_uri", http.StatusBadRequest)
		return
	}
	bq := back.Query()
	bq.Set("code", code)
	bq.Set("state", q.Get("state"))
	back.RawQuery = bq.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

func (p *fakeIdP) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != idpClientID || secret != idpClientSecret {
		http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
		return
	}
	p.mu.Lock()
	claims, ok := p.codes[r.PostForm.Get("code")]
	delete(p.codes, r.PostForm.Get("code"))
	p.mu.Unlock()
	if !ok {
		http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
		return
	}
	now := time.Now()
	c := jwt.MapClaims{"iss": p.issuer(), "aud": idpClientID, "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}
	for k, v := range claims {
		c[k] = v
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	tok.Header["kid"] = "k1"
	signed, err := tok.SignedString(p.key)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSONTest(w, map[string]any{"access_token": "at", "token_type": "Bearer", "expires_in": 300, "id_token": signed})
}

func writeJSONTest(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// idpEnv is what exo-app needs to reach the provider outside dev mode: its
// network allowed (an on-premises provider) and its certificate trusted.
func (p *fakeIdP) idpEnv() []string {
	return []string{"EXO_OIDC_ALLOWED_NETWORKS=127.0.0.0/8", "SSL_CERT_FILE=" + p.caFile}
}

// register configures the provider in s's tenant; extra fields are merged
// into the request (allowed_domains, default_role_id).
func (a *app) registerIdP(s session, p *fakeIdP, extra map[string]any) (id, loginURL string) {
	a.t.Helper()
	body := map[string]any{"name": "corp-" + rand.Text()[:6], "issuer": p.issuer(), "client_id": idpClientID, "client_secret": idpClientSecret}
	for k, v := range extra {
		body[k] = v
	}
	var idp struct {
		ID       string `json:"id"`
		LoginURL string `json:"login_url"`
	}
	a.expect(a.call("POST", "/api/v1/idp", s.Token, body), http.StatusCreated).JSON(a.t, &idp)
	return idp.ID, idp.LoginURL
}

// jarBrowser is a cookie jar that follows redirects like a browser, stopping
// at the UI's /auth/complete page.
type jarBrowser struct {
	t      *testing.T
	jar    *cookiejar.Jar
	client *http.Client
}

func newBrowser(t *testing.T, p *fakeIdP) *jarBrowser {
	jar, _ := cookiejar.New(nil)
	b := &jarBrowser{t: t, jar: jar}
	b.client = &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if req.URL.Path == "/auth/complete" || len(via) > 10 {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	if p != nil {
		// The fake provider's certificate, for the redirects through it.
		b.client.Transport = p.srv.Client().Transport
	}
	return b
}

// startSSO opens loginURL and follows the provider's redirects; it returns
// the final answer: a redirect to /auth/complete#… when the sign-in went
// through, an error answer of exo-app otherwise.
func (b *jarBrowser) startSSO(loginURL string) (*http.Response, url.Values) {
	b.t.Helper()
	res, err := b.client.Get(loginURL)
	if err != nil {
		b.t.Fatalf("SSO flow: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusFound {
		return res, nil
	}
	loc, err := url.Parse(res.Header.Get("Location"))
	if err != nil || loc.Path != "/auth/complete" {
		b.t.Fatalf("SSO flow ended at %q", res.Header.Get("Location"))
	}
	frag, _ := url.ParseQuery(loc.Fragment)
	return res, frag
}

// complete exchanges a completion code in this browser.
func (b *jarBrowser) complete(a *app, code string) resp {
	b.t.Helper()
	return platformtest.Call(b.t, b.client, "POST", a.url+"/api/v1/auth/oidc/complete", "", map[string]string{"code": code})
}

// ssoSignIn runs a whole sign-in as the provider's next identity and
// returns the session.
func (b *jarBrowser) ssoSignIn(a *app, loginURL string) session {
	b.t.Helper()
	res, frag := b.startSSO(loginURL)
	if frag == nil {
		b.t.Fatalf("SSO sign-in refused: %d", res.StatusCode)
	}
	var s session
	if tok := frag.Get("token"); tok != "" {
		// A server that hands out the token in the URL (the login CSRF of
		// item 17, which has a test of its own): the other attacks go on.
		s.Token = tok
		return a.whoami(s)
	}
	a.expect(b.complete(a, frag.Get("code")), http.StatusOK).JSON(b.t, &s)
	return a.whoami(s)
}
