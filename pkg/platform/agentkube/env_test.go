package agentkube_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	_ "modernc.org/sqlite"

	"github.com/exo-in-go/exo/pkg/platform/agentkube"
	"github.com/exo-in-go/exo/pkg/platform/api"
	"github.com/exo-in-go/exo/pkg/platform/app"
	"github.com/exo-in-go/exo/pkg/platform/config"
	"github.com/exo-in-go/exo/pkg/platform/platformtest"
	"github.com/exo-in-go/exo/pkg/platform/store"
	"github.com/exo-in-go/exo/pkg/tunnel"
	"github.com/exo-in-go/exo/test/poll"
)

// env is a real exo-app, as cmd/exo-app assembles it (pkg/platform/app), on
// a loopback port over a real SQLite store.
type env struct {
	t      testing.TB
	url    string
	api    *api.Server
	hub    *agentkube.Hub
	store  store.Store
	status *statusLog
}

func newEnv(t testing.TB, vars map[string]string) *env {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	all := platformtest.Env(t, "http://"+ln.Addr().String(), "sqlite", vars)
	getenv := func(k string) string { return all[k] }
	cfg, err := config.Load(getenv)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	status := &statusLog{}
	a, err := app.New(ctx, cfg, getenv, app.Options{Logger: slog.New(status)})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- a.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		<-served
	})
	return &env{t: t, url: "http://" + ln.Addr().String(), api: a.Server(), hub: a.Tunnels(), store: a.Store(), status: status}
}

// statusLog records the hub's status transitions from its log lines, so
// tests check the exact sequence without sampling it on a clock.
type statusLog struct {
	mu    sync.Mutex
	trans map[string][]string
}

func (l *statusLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *statusLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *statusLog) WithGroup(string) slog.Handler            { return l }
func (l *statusLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "deployment status" {
		return nil
	}
	var dep, to string
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "deployment":
			dep = a.Value.String()
		case "to":
			to = a.Value.String()
		}
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.trans == nil {
		l.trans = map[string][]string{}
	}
	l.trans[dep] = append(l.trans[dep], to)
	return nil
}

func (l *statusLog) of(dep string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.trans[dep]...)
}

// waitStatuses polls until the deployment went through want, in order.
func (e *env) waitStatuses(dep string, want ...string) {
	e.t.Helper()
	poll.Until(e.t, 30*time.Second, func() error {
		got := e.status.of(dep)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("status transitions %v, want %v", got, want)
		}
		return nil
	})
}

// do sends a dashboard API request and decodes a JSON answer into out.
func (e *env) do(method, path, token string, body any, out any) int {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
	return res.StatusCode
}

type user struct{ Token, TenantID string }

func (e *env) signup(email string) user {
	e.t.Helper()
	var u user
	var s struct {
		Token    string `json:"token"`
		TenantID string `json:"tenant_id"`
	}
	if code := e.do("POST", "/api/v1/auth/signup", "", map[string]string{
		"email": email, "password": "correct horse battery", "name": email, "tenant_name": "T " + email,
	}, &s); code != http.StatusCreated {
		e.t.Fatalf("signup: %d", code)
	}
	u.Token, u.TenantID = s.Token, s.TenantID
	return u
}

// createDeployment returns the deployment id and its token.
func (e *env) createDeployment(u user, name string) (string, string) {
	e.t.Helper()
	var d struct {
		Deployment store.Deployment `json:"deployment"`
		Token      string           `json:"token"`
	}
	if code := e.do("POST", "/api/v1/deployments", u.Token, map[string]string{"name": name}, &d); code != http.StatusCreated {
		e.t.Fatalf("create deployment: %d", code)
	}
	return d.Deployment.ID, d.Token
}

// operator is a simulated agentkube operator: the real protocol over a
// real WebSocket, driven by the test.
type operator struct {
	t       testing.TB
	conn    *tunnel.Conn
	in      chan tunnel.Frame
	done    chan struct{}
	err     error
	welcome tunnel.Welcome
}

func (e *env) dial(token string, hdr http.Header) (*operator, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u, _ := tunnel.ConnectURL(e.url)
	ws, err := tunnel.Dial(ctx, u, token, hdr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	o := &operator{t: e.t, conn: tunnel.NewConn(ws, tunnel.Options{}), in: make(chan tunnel.Frame, 256), done: make(chan struct{})}
	go func() {
		defer close(o.done)
		o.err = o.conn.Run(context.Background(), func(f tunnel.Frame) {
			select {
			case o.in <- f:
			default: // a test that does not read frames must not stall the connection
			}
		})
	}()
	e.t.Cleanup(o.close)
	return o, nil
}

// connect dials and completes the hello/welcome handshake.
func (e *env) connect(token string) *operator {
	e.t.Helper()
	o, err := e.dial(token, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.handshake(o)
}

// reconnect is connect as a real operator does it while another connection
// may still hold the deployment: a 409 inside the grace window is retried
// until the window has passed. Tests that take over a connection use it
// rather than assuming the window is over by the time they dial, which a
// coarse clock on a busy machine does not promise.
func (e *env) reconnect(token string) *operator {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		o, err := e.dial(token, nil)
		if err == nil {
			return e.handshake(o)
		}
		if handshakeStatus(err) != http.StatusConflict || time.Now().After(deadline) {
			e.t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *env) handshake(o *operator) *operator {
	e.t.Helper()
	o.send(tunnel.TypeHello, "h", tunnel.Hello{ClusterID: "test-cluster", OperatorVersion: "test"})
	f := o.expect(tunnel.TypeWelcome)
	if err := f.Unmarshal(&o.welcome); err != nil {
		e.t.Fatal(err)
	}
	return o
}

func (o *operator) send(typ, id string, payload any) {
	o.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := o.conn.Send(ctx, typ, id, payload); err != nil {
		o.t.Fatalf("send %s: %v", typ, err)
	}
}

func (o *operator) expect(typ string) tunnel.Frame {
	o.t.Helper()
	for {
		select {
		case f := <-o.in:
			if f.Type == typ {
				return f
			}
		case <-o.done:
			o.t.Fatalf("connection closed waiting for %s: %v", typ, o.err)
		case <-time.After(20 * time.Second):
			o.t.Fatalf("no %s frame", typ)
		}
	}
}

// closed waits for the connection to end and returns its close code.
func (o *operator) closed() int {
	o.t.Helper()
	select {
	case <-o.done:
		return tunnel.CloseCode(o.err)
	case <-time.After(20 * time.Second):
		o.t.Fatal("connection still open")
		return 0
	}
}

func (o *operator) close() {
	o.conn.Close(tunnel.CloseNormal, "")
	<-o.done
}

func handshakeStatus(err error) int {
	var he *tunnel.HandshakeError
	if errors.As(err, &he) {
		return he.StatusCode
	}
	return 0
}

func TestMain(m *testing.M) {
	if os.Getenv("EXO_TUNNEL_BENCH_CHILD") == "1" {
		runBenchClients()
	}
	code := m.Run()
	if code == 0 {
		if leaked := leakedGoroutines(10 * time.Second); leaked != "" {
			println("leaked goroutines:\n" + leaked)
			code = 1
		}
	}
	os.Exit(code)
}

func leakedGoroutines(d time.Duration) string {
	deadline := time.Now().Add(d)
	for {
		buf := make([]byte, 1<<20)
		var leaked []string
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, "gorilla/websocket") || strings.Contains(g, "pkg/tunnel.") || strings.Contains(g, "platform/agentkube.") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// rawConn is an operator socket without tunnel.Conn, after hello/welcome.
func rawConn(t *testing.T, e *env, token string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u, _ := tunnel.ConnectURL(e.url)
	ws, err := tunnel.Dial(ctx, u, token, nil, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	f, _ := tunnel.NewFrame(tunnel.TypeHello, "h", 0, tunnel.Hello{ClusterID: "raw"})
	b, _ := f.Encode()
	if err := ws.WriteMessage(websocket.TextMessage, b); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, msg, err := ws.ReadMessage(); err != nil || !strings.Contains(string(msg), tunnel.TypeWelcome) {
		t.Fatalf("no welcome: %s %v", msg, err)
	}
	return ws
}

func readCloseCode(t *testing.T, ws *websocket.Conn) int {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			return tunnel.CloseCode(err)
		}
	}
}

func asHandshake(err error, he **tunnel.HandshakeError) bool { return errors.As(err, he) }

// waitObjects polls the dashboard API until the deployment's view holds
// exactly keys ("Kind/namespace/name").
func (e *env) waitObjects(u user, id string, keys ...string) {
	e.t.Helper()
	want := append([]string(nil), keys...)
	sort.Strings(want)
	poll.Until(e.t, 30*time.Second, func() error {
		var v agentkube.ClusterView
		if code := e.do("GET", "/api/v1/deployments/"+id+"/cluster", u.Token, nil, &v); code != http.StatusOK {
			return fmt.Errorf("GET cluster: %d", code)
		}
		got := make([]string, 0, len(v.Objects))
		for _, o := range v.Objects {
			got = append(got, o.Kind+"/"+o.Namespace+"/"+o.Name)
		}
		sort.Strings(got)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("view %v, want %v", got, want)
		}
		return nil
	})
}
