package security_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/exo-in-go/exo/pkg/platform/config"
	"github.com/exo-in-go/exo/pkg/platform/platformtest"
	"github.com/exo-in-go/exo/test/ports"
	"github.com/exo-in-go/exo/test/procs"
)

// Item 8: a tenant admin chose where exo-app sends requests (discovery,
// jwks_uri, token_endpoint with the client secret), and plain-HTTP loopback
// issuers were accepted outside dev mode. Outside dev mode issuers must be
// https, and the client refuses internal addresses when it dials, so a
// name that resolves to one (DNS rebinding included) is refused too.
func TestItem08_OIDCCannotReachInternalAddresses(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		idp := startIdP(t)
		// The provider's certificate is trusted, its network is not allowed.
		a := startApp(t, backend, "SSL_CERT_FILE="+idp.caFile)
		admin := a.signup("admin@corp.example", "Corp")
		base := map[string]any{"name": "x", "client_id": idpClientID, "client_secret": idpClientSecret}
		n := 0
		with := func(issuer string) map[string]any {
			m := map[string]any{"issuer": issuer}
			for k, v := range base {
				m[k] = v
			}
			n++
			m["name"] = fmt.Sprintf("idp-%d", n)
			return m
		}
		port := strings.TrimPrefix(idp.issuer(), "https://127.0.0.1:")
		for _, issuer := range []string{"http://127.0.0.1:" + port, "http://localhost:" + port, "http://metadata.example"} {
			if r := a.call("POST", "/api/v1/idp", admin.Token, with(issuer)); r.Status != http.StatusBadRequest || r.Code() != "invalid_issuer" {
				t.Errorf("plain-http issuer %s: %d %s", issuer, r.Status, r.Body)
			}
		}
		for _, issuer := range []string{
			idp.issuer(),                // loopback by address
			"https://localhost:" + port, // loopback by name (resolved, then refused)
			"https://169.254.169.254",   // cloud metadata: refused before any packet is sent
			"https://[::ffff:127.0.0.1]:" + port,
		} {
			var created struct {
				LoginURL string `json:"login_url"`
			}
			a.expect(a.call("POST", "/api/v1/idp", admin.Token, with(issuer)), http.StatusCreated).JSON(t, &created)
			before := idp.requests.Load()
			res, frag := newBrowser(t, idp).startSSO(created.LoginURL)
			if frag != nil || res.StatusCode != http.StatusBadGateway {
				t.Errorf("SSO start through %s: %d, want 502", issuer, res.StatusCode)
			}
			if got := idp.requests.Load() - before; got != 0 {
				t.Errorf("%s: the internal provider received %d requests", issuer, got)
			}
		}
		// An on-premises provider's network can be allowed explicitly.
		b := startApp(t, backend, idp.idpEnv()...)
		admin = b.signup("admin@corp.example", "Corp")
		_, loginURL := b.registerIdP(admin, idp, nil)
		idp.next(map[string]any{"sub": "u", "email": "u@corp.example", "email_verified": true})
		newBrowser(t, idp).ssoSignIn(b, loginURL)
	})
}

// Item 10: EXO_DEV_MODE defaulted to true, which uses the public JWT
// secret: a deployment that forgot the variable accepted forged admin
// tokens. Production is the default now, and it refuses to start without
// a strong secret.
func TestItem10_ProductionByDefault(t *testing.T) {
	bin := procs.Build(t, "./cmd/exo-app")
	run := func(env ...string) (string, error) {
		port := ports.Free(t)
		p := procs.Start(t, "exo-app", append([]string{
			fmt.Sprintf("EXO_PORT=%d", port), "EXO_DATABASE_DSN=" + platformtest.DSN(t, "sqlite"),
			"EXO_CAST_STORAGE_DIR=" + t.TempDir(), "EXO_DEV_MODE=", "EXO_JWT_SECRET=", "EXO_ENCRYPTION_KEY=",
		}, env...), filepath.Join(bin, "exo-app"))
		err := p.WaitHTTP(fmt.Sprintf("http://127.0.0.1:%d/api/health", port), 30*time.Second)
		log, _ := os.ReadFile(p.Log)
		return string(log), err
	}
	for name, env := range map[string][]string{
		"nothing set":        nil,
		"development secret": {"EXO_JWT_SECRET=" + config.DevJWTSecret, "EXO_ENCRYPTION_KEY=" + strings.Repeat("k", 32)},
		"short secret":       {"EXO_JWT_SECRET=short", "EXO_ENCRYPTION_KEY=" + strings.Repeat("k", 32)},
	} {
		log, err := run(env...)
		if err == nil || !strings.Contains(log, "EXO_JWT_SECRET") {
			t.Errorf("%s: started (%v) or did not name EXO_JWT_SECRET:\n%s", name, err, log)
		}
	}
	// Dev mode only when asked, and loudly.
	log, err := run("EXO_DEV_MODE=true")
	if err != nil || !strings.Contains(log, "EXO_DEV_MODE=true") {
		t.Fatalf("dev mode: %v\n%s", err, log)
	}

	// A production exo-app refuses an admin token forged with the public
	// development secret.
	a := startApp(t, "sqlite")
	victim := a.signup("admin@corp.example", "Corp")
	forged := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": "exo-app", "sub": victim.UserID, "tid": victim.TenantID, "email": victim.Email,
		"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(), "nbf": time.Now().Unix(),
	})
	tok, err := forged.SignedString([]byte(config.DevJWTSecret))
	if err != nil {
		t.Fatal(err)
	}
	a.expect(a.call("GET", "/api/v1/users", tok, nil), http.StatusUnauthorized)
}
