package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/exo-in-go/exo/pkg/platform/api"
	"github.com/exo-in-go/exo/pkg/platform/config"
	"github.com/exo-in-go/exo/pkg/platform/platformtest"
	"github.com/exo-in-go/exo/pkg/platform/store"
)

// ---- a real SMTP server that hands received messages to the test ----

type received = platformtest.Mail

func startSMTP(t *testing.T) (addr string, inbox <-chan received) { return platformtest.StartSMTP(t) }

func waitMail(t *testing.T, inbox <-chan received) received {
	t.Helper()
	select {
	case m := <-inbox:
		return m
	case <-time.After(20 * time.Second):
		t.Fatal("no e-mail received")
		return received{}
	}
}

// ---- test environment: the real handler over a real store ----

type env struct {
	t      *testing.T
	srv    *httptest.Server
	api    *api.Server
	store  store.Store
	cfg    *config.Config
	inbox  <-chan received
	client *http.Client
}

type envOpt func(map[string]string)

func withEnv(k, v string) envOpt { return func(m map[string]string) { m[k] = v } }

func newEnv(t *testing.T, backend string, opts ...envOpt) *env {
	t.Helper()
	smtpAddr, inbox := startSMTP(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	vars := platformtest.Env(t, "http://"+ln.Addr().String(), backend, map[string]string{
		"EXO_SMTP_ADDR":             smtpAddr,
		"EXO_SMTP_FROM":             "exo@example.test",
		"EXO_SMTP_STARTTLS":         "false",
		"EXO_LOG_LEVEL":             "warn",
		"EXO_LOGIN_RATE_PER_MINUTE": "1000",
	})
	for _, o := range opts {
		o(vars)
	}
	cfg, err := config.Load(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := store.Open(ctx, cfg.DatabaseDSN, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	a, err := api.New(api.Options{Config: cfg, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(a.Handler())
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return &env{t: t, srv: srv, api: a, store: st, cfg: cfg, inbox: inbox, client: srv.Client()}
}

type resp struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r resp) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

func (r resp) errCode(t *testing.T) string {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	r.json(t, &e)
	if e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("error body without code/message: %s", r.Body)
	}
	return e.Error.Code
}

// req sends a request. body may be nil, a string/[]byte (sent raw) or a value (JSON).
func (e *env) req(method, path, token string, body any, hdr ...string) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	r, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := e.client.Do(r)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{Status: res.StatusCode, Header: res.Header, Body: b}
}

func (e *env) expect(r resp, status int) resp {
	e.t.Helper()
	if r.Status != status {
		e.t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	return r
}

type session struct {
	Token    string `json:"token"`
	TenantID string `json:"tenant_id"`
	UserID   string
	Email    string
}

// signup signs up through the e-mailed link, as a user does when mail is
// configured.
func (e *env) signup(email, tenant string) session {
	e.t.Helper()
	e.expect(e.req("POST", "/api/v1/auth/signup", "", map[string]string{
		"email": email, "password": "correct horse battery", "name": "User " + email, "tenant_name": tenant,
	}), http.StatusAccepted)
	link := linkFrom(e.t, waitMail(e.t, e.inbox).Data)
	if !strings.Contains(link, "/signup/confirm?token=") {
		e.t.Fatalf("sign-up mail links to %s", link)
	}
	tok, _ := url.QueryUnescape(tokenFrom(e.t, link))
	r := e.expect(e.req("POST", "/api/v1/auth/signup/confirm", "", map[string]string{"token": tok}), http.StatusCreated)
	var s session
	r.json(e.t, &s)
	var me struct {
		User struct{ ID, Email string } `json:"user"`
	}
	e.expect(e.req("GET", "/api/v1/auth/me", s.Token, nil), 200).json(e.t, &me)
	s.UserID, s.Email = me.User.ID, me.User.Email
	return s
}

type deploymentResp struct {
	Deployment store.Deployment `json:"deployment"`
	Token      string           `json:"token"`
}

func (e *env) createDeployment(s session, name string) deploymentResp {
	e.t.Helper()
	var d deploymentResp
	e.expect(e.req("POST", "/api/v1/deployments", s.Token, map[string]string{"name": name}), 201).json(e.t, &d)
	return d
}

func eachBackend(t *testing.T, fn func(t *testing.T, backend string)) {
	for _, b := range platformtest.Backends {
		t.Run(b, func(t *testing.T) {
			t.Parallel()
			fn(t, b)
		})
	}
}
