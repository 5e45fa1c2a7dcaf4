// Package security_test is the platform's abuse-case suite: each test runs
// one attack from the security review (docs/security.md) against
// a real exo-app process in production mode, on SQLite and on PostgreSQL,
// with a real SMTP server, a fake OIDC provider over HTTPS and a browser's
// cookie jar, and asserts that the attack fails and that the legitimate use
// next to it still works. The operator-side and cluster-side attacks live
// in test/security/operator and test/security/cluster.
package security_test

import (
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/exo-in-go/exo/pkg/platform/platformtest"
	"github.com/exo-in-go/exo/test/ports"
	"github.com/exo-in-go/exo/test/procs"
)

const (
	jwtSecret = "security-suite-secret-security-suite-secret"
	password  = "correct horse battery"
)

// app is exo-app as a process of its own.
type app struct {
	t    testing.TB
	url  string
	proc *procs.Child
	mail *mailbox
	dsn  string
}

// startApp runs exo-app in production mode (EXO_DEV_MODE unset) on a fresh
// database of backend, with mail going to a test SMTP server; extra adds or
// overrides variables.
func startApp(t testing.TB, backend string, extra ...string) *app {
	t.Helper()
	bin := procs.Build(t, "./cmd/exo-app")
	smtpAddr, inbox := platformtest.StartSMTP(t)
	port := ports.Free(t)
	a := &app{t: t, url: fmt.Sprintf("http://127.0.0.1:%d", port), mail: newMailbox(inbox), dsn: platformtest.DSN(t, backend)}
	env := []string{
		fmt.Sprintf("EXO_PORT=%d", port),
		"EXO_BASE_URL=" + a.url,
		"EXO_DATABASE_DSN=" + a.dsn,
		"EXO_CAST_STORAGE_DIR=" + filepath.Join(t.TempDir(), "casts"),
		"EXO_JWT_SECRET=" + jwtSecret,
		"EXO_ENCRYPTION_KEY=" + strings.Repeat("e", 32),
		"EXO_SMTP_ADDR=" + smtpAddr,
		"EXO_SMTP_FROM=exo@example.test",
		"EXO_SMTP_STARTTLS=false",
		"EXO_LOG_LEVEL=warn",
		// Tests sign up and sign in from one address many times; the
		// per-address limits have tests of their own that lower them.
		"EXO_AUTH_RATE_PER_MINUTE=100000",
		"EXO_LOGIN_RATE_PER_MINUTE=100000",
	}
	a.proc = procs.Start(t, "exo-app", append(env, extra...), filepath.Join(bin, "exo-app"))
	if err := a.proc.WaitHTTP(a.url+"/api/health", 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	return a
}

// eachBackend runs fn on SQLite and PostgreSQL, in parallel.
func eachBackend(t *testing.T, fn func(t *testing.T, backend string)) {
	for _, b := range platformtest.Backends {
		t.Run(b, func(t *testing.T) {
			t.Parallel()
			fn(t, b)
		})
	}
}

// resp is an answer of the API.
type resp = platformtest.Response

var apiClient = &http.Client{Timeout: 30 * time.Second}

// call sends a JSON request with an optional bearer token and header pairs.
func (a *app) call(method, path, token string, body any, hdr ...string) resp {
	a.t.Helper()
	return platformtest.Call(a.t, apiClient, method, a.url+path, token, body, hdr...)
}

// expect fails the test unless r has status.
func (a *app) expect(r resp, status int) resp {
	a.t.Helper()
	if r.Status != status {
		a.t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	return r
}

// session is a signed-in user.
type session struct {
	Token    string `json:"token"`
	TenantID string `json:"tenant_id"`
	UserID   string
	Email    string
}

// signup creates an account and its tenant the way a person does: the
// form, then the link in the e-mail.
func (a *app) signup(email, tenant string) session {
	a.t.Helper()
	r := a.call("POST", "/api/v1/auth/signup", "", map[string]string{
		"email": email, "password": password, "name": "User " + email, "tenant_name": tenant,
	})
	var s session
	if r.Status == http.StatusCreated {
		// A server that signs up at once (dev mode without mail, or a build
		// from before confirmation): the attacks still apply to it.
		r.JSON(a.t, &s)
		return a.whoami(s)
	}
	a.expect(r, http.StatusAccepted)
	tok := a.mail.token(a.t, email, "/signup/confirm")
	a.expect(a.call("POST", "/api/v1/auth/signup/confirm", "", map[string]string{"token": tok}), http.StatusCreated).JSON(a.t, &s)
	return a.whoami(s)
}

// login signs in with the password.
func (a *app) login(email string) session {
	a.t.Helper()
	var s session
	a.expect(a.call("POST", "/api/v1/auth/login", "", map[string]string{"email": email, "password": password}), http.StatusOK).JSON(a.t, &s)
	return a.whoami(s)
}

func (a *app) whoami(s session) session {
	a.t.Helper()
	var me struct {
		User struct{ ID, Email string } `json:"user"`
	}
	a.expect(a.call("GET", "/api/v1/auth/me", s.Token, nil), http.StatusOK).JSON(a.t, &me)
	s.UserID, s.Email = me.User.ID, me.User.Email
	return s
}

// role returns the id of the tenant's role with that name.
func (a *app) role(s session, name string) string {
	a.t.Helper()
	var roles struct {
		Items []struct{ ID, Name string }
	}
	a.expect(a.call("GET", "/api/v1/roles", s.Token, nil), http.StatusOK).JSON(a.t, &roles)
	for _, r := range roles.Items {
		if r.Name == name {
			return r.ID
		}
	}
	a.t.Fatalf("no role %q", name)
	return ""
}

// invite invites email into roleID of s's tenant and returns the link's token.
func (a *app) invite(s session, email, roleID string) string {
	a.t.Helper()
	a.expect(a.call("POST", "/api/v1/invitations", s.Token, map[string]string{"email": email, "role_id": roleID}), http.StatusCreated)
	return a.mail.token(a.t, email, "/invite/accept")
}

// join invites a new user into roleID and accepts with a password.
func (a *app) join(s session, email, roleID string) session {
	a.t.Helper()
	tok := a.invite(s, email, roleID)
	var m session
	a.expect(a.call("POST", "/api/v1/auth/invitations/accept", "", map[string]string{"token": tok, "password": password}), http.StatusOK).JSON(a.t, &m)
	return a.whoami(m)
}

// auditActions lists the tenant's audit actions, newest first.
func (a *app) audit(s session) []auditEvent {
	a.t.Helper()
	var page struct{ Items []auditEvent }
	a.expect(a.call("GET", "/api/v1/audit?limit=500", s.Token, nil), http.StatusOK).JSON(a.t, &page)
	return page.Items
}

type auditEvent struct {
	Action     string `json:"action"`
	ActorID    string `json:"actor_id"`
	RemoteAddr string `json:"remote_addr"`
}

// mailbox hands a test the messages sent to one address, in any order the
// background sender delivers them.
type mailbox struct {
	mu   sync.Mutex
	all  []platformtest.Mail
	cond *sync.Cond
}

func newMailbox(in <-chan platformtest.Mail) *mailbox {
	m := &mailbox{}
	m.cond = sync.NewCond(&m.mu)
	go func() {
		for msg := range in {
			m.mu.Lock()
			m.all = append(m.all, msg)
			m.cond.Broadcast()
			m.mu.Unlock()
		}
	}()
	return m
}

// wait returns (and removes) the first message to addr whose text contains
// substr, waiting up to 20 s.
func (m *mailbox) wait(t testing.TB, addr, substr string) platformtest.Mail {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	timer := time.AfterFunc(20*time.Second, func() { m.mu.Lock(); m.cond.Broadcast(); m.mu.Unlock() })
	defer timer.Stop()
	m.mu.Lock()
	defer m.mu.Unlock()
	for {
		for i, msg := range m.all {
			if len(msg.To) == 1 && strings.EqualFold(msg.To[0], addr) && strings.Contains(strings.ReplaceAll(msg.Data, "=\r\n", ""), substr) {
				m.all = append(m.all[:i], m.all[i+1:]...)
				return msg
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no e-mail to %s containing %q", addr, substr)
		}
		m.cond.Wait()
	}
}

var linkRE = regexp.MustCompile(`https?://\S+`)

// token waits for a mail to addr linking to path and returns its token.
func (m *mailbox) token(t testing.TB, addr, path string) string {
	t.Helper()
	msg := m.wait(t, addr, path+"?token=")
	for _, l := range linkRE.FindAllString(strings.ReplaceAll(msg.Data, "=\r\n", ""), -1) {
		u, err := url.Parse(l)
		if err == nil && u.Path == path && u.Query().Get("token") != "" {
			return u.Query().Get("token")
		}
	}
	t.Fatalf("no %s link in:\n%s", path, msg.Data)
	return ""
}
