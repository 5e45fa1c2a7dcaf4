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
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/gorilla/websocket"
	"k8s.io/client-go/rest"

	"github.com/exo-in-go/exo/pkg/platform/api"
	"github.com/exo-in-go/exo/pkg/platform/config"
	"github.com/exo-in-go/exo/pkg/platform/shell"
	"github.com/exo-in-go/exo/pkg/platform/store"
	"github.com/exo-in-go/exo/pkg/shellexec"
	"github.com/exo-in-go/exo/pkg/tunnel"
)

// platform is an in-process exo-app: the real API server with the shell
// endpoints mounted, on a loopback port.
type platform struct {
	url     string
	castDir string
	srv     *api.Server
	store   store.Store
	shell   *shell.Handler
	tunnels *tunnels
	errc    chan error
}

// startPlatform starts exo-app with opts (Tunnels, CastDir and BaseURL are
// filled in). It stops when the test ends, after every session is gone.
func startPlatform(t testing.TB, opts shell.Options) *platform {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &platform{url: "http://" + ln.Addr().String(), castDir: t.TempDir(), tunnels: &tunnels{conns: map[string]*tunnel.Conn{}}, errc: make(chan error, 1)}
	env := map[string]string{
		"EXO_BASE_URL":              p.url,
		"EXO_CAST_STORAGE_DIR":      p.castDir,
		"EXO_DATABASE_DSN":          filepath.Join(t.TempDir(), "exo.db"),
		"EXO_LOGIN_RATE_PER_MINUTE": "1000",
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p.store, err = store.Open(ctx, cfg.DatabaseDSN, log)
	if err != nil {
		t.Fatal(err)
	}
	p.srv, err = api.New(api.Options{Config: cfg, Store: p.store, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	opts.Tunnels, opts.CastDir, opts.BaseURL = p.tunnels, cfg.CastStorageDir, cfg.BaseURL
	if p.shell, err = shell.Mount(p.srv, opts); err != nil {
		t.Fatal(err)
	}
	// Stand-in for pkg/platform/agentkube's hub: accepts operator tunnels
	// and hands their connections to the shell (see docs/shell.md, wiring).
	p.srv.Handle("GET /test/tunnel/{deployment}", p.tunnels.handler(p.srv))
	go func() { p.errc <- p.srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := p.srv.Shutdown(ctx); err != nil {
			t.Errorf("platform shutdown: %v", err)
		}
		<-p.errc
		p.shell.Wait()
		p.store.Close()
	})
	return p
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// tunnels holds the operator connections, one per deployment.
type tunnels struct {
	mu         sync.Mutex
	conns      map[string]*tunnel.Conn
	heartbeats atomic.Int64
}

func (ts *tunnels) Conn(deploymentID string) (shell.Conn, bool) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	c, ok := ts.conns[deploymentID]
	return c, ok
}

func (ts *tunnels) handler(srv *api.Server) http.Handler {
	up := websocket.Upgrader{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dep := r.PathValue("deployment")
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		done := srv.TrackLongLived()
		defer done()
		c := tunnel.NewConn(ws, tunnel.Options{})
		ts.mu.Lock()
		ts.conns[dep] = c
		ts.mu.Unlock()
		_ = c.Run(srv.Draining(), func(f tunnel.Frame) {
			if f.Type == tunnel.TypeHeartbeat {
				ts.heartbeats.Add(1)
			}
		})
		ts.mu.Lock()
		if ts.conns[dep] == c {
			delete(ts.conns, dep)
		}
		ts.mu.Unlock()
	})
}

// operator is the manager's tunnel connection with the shell executor
// wired in as pkg/connect wires it, plus an application heartbeat.
type operator struct {
	conn *tunnel.Conn
	exec *shellexec.Executor
	done chan struct{}
}

func startOperator(t testing.TB, p *platform, deploymentID string, cfg *rest.Config, heartbeat time.Duration) *operator {
	t.Helper()
	ex, err := shellexec.New(shellexec.Options{Config: cfg, Log: testr.NewWithInterface(t, testr.Options{Verbosity: 0})})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, res, err := websocket.DefaultDialer.DialContext(ctx, "ws"+strings.TrimPrefix(p.url, "http")+"/test/tunnel/"+deploymentID, nil)
	if err != nil {
		if res != nil {
			b, _ := io.ReadAll(res.Body)
			t.Fatalf("operator tunnel: %v: %d %s", err, res.StatusCode, b)
		}
		t.Fatal(err)
	}
	o := &operator{conn: tunnel.NewConn(ws, tunnel.Options{}), exec: ex, done: make(chan struct{})}
	runCtx, stop := context.WithCancel(context.Background())
	go func() {
		defer close(o.done)
		defer ex.Wait()
		defer stop()
		_ = o.conn.Run(runCtx, func(f tunnel.Frame) { ex.Handle(runCtx, o.conn, f) })
	}()
	go func() {
		tick := time.NewTicker(heartbeat)
		defer tick.Stop()
		for seq := uint64(1); ; seq++ {
			select {
			case <-runCtx.Done():
				return
			case <-tick.C:
				_ = o.conn.Send(runCtx, tunnel.TypeHeartbeat, "", tunnel.Heartbeat{Seq: seq, Time: time.Now()})
			}
		}
	}()
	t.Cleanup(func() { o.stop() })
	// Wait until the platform sees the connection.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok := p.tunnels.Conn(deploymentID); ok {
			return o
		}
		if time.Now().After(deadline) {
			t.Fatal("operator tunnel not registered")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (o *operator) stop() {
	o.conn.Close(tunnel.CloseGoingAway, "test done")
	<-o.done
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

func createDeployment(t testing.TB, p *platform, u user, name string) string {
	t.Helper()
	var out struct {
		Deployment struct {
			ID string `json:"id"`
		} `json:"deployment"`
	}
	apiCall(t, p, u.token, "POST", "/api/v1/deployments", map[string]string{"name": name}, http.StatusCreated, &out)
	return out.Deployment.ID
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

func (tm *term) output() string {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return tm.out.String()
}

func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
