//go:build linux

package shell

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/gorilla/websocket"

	"github.com/exo-in-go/exo/pkg/connect"
	"github.com/exo-in-go/exo/pkg/connect/connecttest"
	"github.com/exo-in-go/exo/pkg/platform/agentkube"
	"github.com/exo-in-go/exo/pkg/platform/app"
	"github.com/exo-in-go/exo/pkg/platform/config"
	"github.com/exo-in-go/exo/pkg/platform/shell"
	"github.com/exo-in-go/exo/pkg/shellexec"
	"github.com/exo-in-go/exo/test/poll"
)

// platform is an in-process exo-app as cmd/exo-app assembles it
// (pkg/platform/app): the API server, live events, the operator hub
// (/api/agentkube/connect) and the shell endpoints reaching operators
// through the hub.
type platform struct {
	url     string
	castDir string
	app     *app.App
	hub     *agentkube.Hub
	shell   *shell.Handler
	errc    chan error
}

// startPlatform starts exo-app with opts as the shell's base options
// (CastDir, BaseURL and the tunnels are filled in by the assembly), asking
// operators for a heartbeat every heartbeat. It stops when the test ends,
// after every session is gone.
func startPlatform(t testing.TB, opts shell.Options, heartbeat time.Duration) *platform {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &platform{url: "http://" + ln.Addr().String(), castDir: t.TempDir(), errc: make(chan error, 1)}
	env := map[string]string{
		"EXO_BASE_URL":              p.url,
		"EXO_CAST_STORAGE_DIR":      p.castDir,
		"EXO_DATABASE_DSN":          filepath.Join(t.TempDir(), "exo.db"),
		"EXO_LOGIN_RATE_PER_MINUTE": "1000",
		"EXO_DEV_MODE":              "true",
		// The operator heartbeats as often as welcome asks; degraded only
		// after 30 missed, so a loaded machine does not flap the status.
		"EXO_TUNNEL_HEARTBEAT_INTERVAL": heartbeat.String(),
		"EXO_TUNNEL_DEGRADED_AFTER":     (30 * heartbeat).String(),
		"EXO_TUNNEL_OFFLINE_AFTER":      (300 * heartbeat).String(),
	}
	getenv := func(k string) string { return env[k] }
	cfg, err := config.Load(getenv)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if p.app, err = app.New(ctx, cfg, getenv, app.Options{Logger: log, Shell: opts}); err != nil {
		t.Fatal(err)
	}
	p.hub, p.shell = p.app.Tunnels(), p.app.Shell()
	go func() { p.errc <- p.app.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := p.app.Shutdown(ctx); err != nil {
			t.Errorf("platform shutdown: %v", err)
		}
		<-p.errc
	})
	return p
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// operator is agentkube-manager in managed mode as pkg/manager/app assembles
// it (connecttest), as the manager's ServiceAccount, with pkg/shellexec
// serving its shells.
type operator struct {
	exec *shellexec.Executor
	// stop stops the manager: the connector closes its tunnel (1001) and
	// waits for its shells to end.
	stop func()
}

// startOperator connects a deployment's operator to p with the
// deployment's token, as the manager's ServiceAccount, and waits until p
// holds its tunnel. Its heartbeat is what p's welcome asks for.
func startOperator(t testing.TB, p *platform, deploymentID, token string) *operator {
	t.Helper()
	log := testr.NewWithInterface(t, testr.Options{Verbosity: 0})
	a, stop := connecttest.Start(t, cluster.manager, connect.Options{
		BaseURL: p.url, Token: token, ClusterID: "shell-test", Version: "test",
		HandshakeTimeout: 5 * time.Second,
		InitialBackoff:   50 * time.Millisecond, MaxBackoff: time.Second,
		Logger: log.WithName("connect"),
	})
	poll.UntilTrue(t, "the operator's tunnel is up", 30*time.Second, func() bool {
		_, ok := p.hub.Conn(deploymentID)
		return ok
	})
	return &operator{exec: a.Shells, stop: stop}
}

// user is a signed-up user with a tenant of their own.
type user struct {
	email, token, tenantID string
}

func signup(t testing.TB, p *platform, email string) user {
	t.Helper()
	var out struct {
		Token    string `json:"token"`
		TenantID string `json:"tenant_id"`
	}
	apiCall(t, p, "", "POST", "/api/v1/auth/signup", map[string]string{"email": email, "password": "correct-horse-battery-staple"}, http.StatusCreated, &out)
	return user{email: email, token: out.Token, tenantID: out.TenantID}
}

// createDeployment creates a deployment and returns its id and token (the
// operator's credential).
func createDeployment(t testing.TB, p *platform, u user, name string) (id, token string) {
	t.Helper()
	var out struct {
		Deployment struct {
			ID string `json:"id"`
		} `json:"deployment"`
		Token string `json:"token"`
	}
	apiCall(t, p, u.token, "POST", "/api/v1/deployments", map[string]string{"name": name}, http.StatusCreated, &out)
	return out.Deployment.ID, out.Token
}

// apiCall does one JSON request and checks the status.
func apiCall(t testing.TB, p *platform, token, method, path string, body any, want int, out any) []byte {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, p.url+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		t.Fatalf("%s %s = %d %s, want %d", method, path, res.StatusCode, b, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
	return b
}

func grantShell(t testing.TB, p *platform, u user, deploymentID string) shell.GrantResponse {
	t.Helper()
	var g shell.GrantResponse
	apiCall(t, p, u.token, "POST", fmt.Sprintf("/api/v1/deployments/%s/agents/%s/%s/shell", deploymentID, cluster.namespace, cluster.agent),
		map[string]int{"cols": 100, "rows": 30}, http.StatusCreated, &g)
	return g
}

// term is a browser's shell WebSocket as a test sees it.
type term struct {
	t    testing.TB
	ws   *websocket.Conn
	mu   sync.Mutex
	out  bytes.Buffer
	msgs []map[string]any
	cond chan struct{} // signalled on every message
	done chan struct{}
}

func dialShell(ctx context.Context, wsURL, token, origin string) (*websocket.Conn, *http.Response, error) {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, Subprotocols: []string{shell.Subprotocol}}
	if token != "" {
		d.Subprotocols = append(d.Subprotocols, "exo-auth."+token)
	}
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	return d.DialContext(ctx, wsURL, h)
}

func openTerm(t testing.TB, p *platform, u user, deploymentID string) *term {
	t.Helper()
	g := grantShell(t, p, u, deploymentID)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, res, err := dialShell(ctx, g.WSURL, u.token, p.url)
	if err != nil {
		t.Fatalf("dial shell: %v (%v)", err, res)
	}
	if got := ws.Subprotocol(); got != shell.Subprotocol {
		t.Fatalf("negotiated subprotocol %q", got)
	}
	tm := &term{t: t, ws: ws, cond: make(chan struct{}, 1), done: make(chan struct{})}
	go tm.read()
	t.Cleanup(func() { ws.Close(); <-tm.done })
	return tm
}

func (tm *term) read() {
	defer close(tm.done)
	for {
		typ, b, err := tm.ws.ReadMessage()
		if err != nil {
			return
		}
		tm.mu.Lock()
		if typ == websocket.BinaryMessage {
			tm.out.Write(b)
		} else {
			var m map[string]any
			_ = json.Unmarshal(b, &m)
			tm.msgs = append(tm.msgs, m)
		}
		tm.mu.Unlock()
		select {
		case tm.cond <- struct{}{}:
		default:
		}
	}
}

func (tm *term) send(s string) {
	tm.t.Helper()
	if err := tm.ws.WriteMessage(websocket.BinaryMessage, []byte(s)); err != nil {
		tm.t.Fatal(err)
	}
}

func (tm *term) resize(cols, rows int) {
	tm.t.Helper()
	b, _ := json.Marshal(map[string]any{"type": "resize", "cols": cols, "rows": rows})
	if err := tm.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		tm.t.Fatal(err)
	}
}

// waitFor waits until cond holds for the output and control messages.
func (tm *term) waitFor(what string, cond func(out string, msgs []map[string]any) bool) {
	tm.t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		tm.mu.Lock()
		ok := cond(tm.out.String(), tm.msgs)
		tm.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-tm.cond:
		case <-tm.done:
			tm.mu.Lock()
			ok := cond(tm.out.String(), tm.msgs)
			out := tm.out.String()
			tm.mu.Unlock()
			if !ok {
				tm.t.Fatalf("connection closed waiting for %s; output:\n%q\nmessages: %v", what, out, tm.msgs)
			}
			return
		case <-deadline:
			tm.mu.Lock()
			defer tm.mu.Unlock()
			tm.t.Fatalf("timed out waiting for %s; output:\n%q\nmessages: %v", what, tm.out.String(), tm.msgs)
		}
	}
}

func (tm *term) waitOutput(substr string) {
	tm.t.Helper()
	tm.waitFor(fmt.Sprintf("output %q", substr), func(out string, _ []map[string]any) bool { return strings.Contains(out, substr) })
}

// waitMsg returns the first control message of type typ.
func (tm *term) waitMsg(typ string) map[string]any {
	tm.t.Helper()
	var found map[string]any
	tm.waitFor("message "+typ, func(_ string, msgs []map[string]any) bool {
		for _, m := range msgs {
			if m["type"] == typ {
				found = m
				return true
			}
		}
		return false
	})
	return found
}
