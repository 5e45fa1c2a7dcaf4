// Package tunnel_test runs the operator tunnel end to end: a real
// kube-apiserver (test/framework), the connector in a controller-runtime
// manager, and a real exo-app (pkg/platform/app, as cmd/exo-app assembles
// it) in process, which the tests kill and restart on the same store.
package tunnel_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/exo-in-go/exo/pkg/connect"
	"github.com/exo-in-go/exo/pkg/connect/connecttest"
	"github.com/exo-in-go/exo/pkg/platform/app"
	"github.com/exo-in-go/exo/pkg/platform/config"
	"github.com/exo-in-go/exo/pkg/platform/platformtest"
	"github.com/exo-in-go/exo/pkg/platform/store"
	"github.com/exo-in-go/exo/test/framework"

	_ "modernc.org/sqlite"
)

var cluster *framework.Cluster

func TestMain(m *testing.M) {
	log.SetLogger(logrDiscard())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	var err error
	cluster, err = framework.Start(ctx, framework.Options{})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start cluster:", err)
		os.Exit(1)
	}
	code := m.Run()
	if err := cluster.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop cluster:", err)
	}
	os.Exit(code)
}

// platform is an exo-app that can be killed (listener and every
// connection closed at once, no close frames, like kill -9) and restarted
// on the same address and store.
type platform struct {
	t      testing.TB
	addr   string
	store  store.Store
	cfg    *config.Config
	getenv func(string) string

	mu     sync.Mutex
	srv    *app.App
	ln     *trackingListener
	served chan error
}

func startPlatform(t testing.TB, extra map[string]string) *platform {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	vars := platformtest.Env(t, "http://"+ln.Addr().String(), "sqlite", map[string]string{
		"EXO_TUNNEL_HEARTBEAT_INTERVAL": "100ms",
		"EXO_TUNNEL_DEGRADED_AFTER":     "2s",
		"EXO_TUNNEL_OFFLINE_AFTER":      "10s",
		"EXO_TUNNEL_GRACE_WINDOW":       "1ms",
	})
	for k, v := range extra {
		vars[k] = v
	}
	getenv := func(k string) string { return vars[k] }
	cfg, err := config.Load(getenv)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := store.Open(ctx, cfg.DatabaseDSN, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &platform{t: t, addr: ln.Addr().String(), store: st, cfg: cfg, getenv: getenv}
	p.serve(ln)
	t.Cleanup(func() {
		p.stop()
		st.Close()
	})
	return p
}

func (p *platform) url() string { return "http://" + p.addr }

func (p *platform) serve(ln net.Listener) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := app.New(ctx, p.cfg, p.getenv, app.Options{Store: p.store})
	if err != nil {
		p.t.Fatal(err)
	}
	tl := &trackingListener{Listener: ln, conns: map[net.Conn]struct{}{}}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(tl) }()
	p.mu.Lock()
	p.srv, p.ln, p.served = srv, tl, served
	p.mu.Unlock()
}

// kill drops the listener and every TCP connection at once, then releases
// the dead server's goroutines.
func (p *platform) kill() {
	p.t.Helper()
	p.mu.Lock()
	srv, ln, served := p.srv, p.ln, p.served
	p.srv = nil
	p.mu.Unlock()
	if srv == nil {
		return
	}
	ln.killAll()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		p.t.Errorf("release killed server: %v", err)
	}
	<-served
}

// restart serves again on the same address and store; the view starts empty.
func (p *platform) restart() {
	p.t.Helper()
	var ln net.Listener
	var err error
	for range 100 { // the old socket may linger for a moment
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatal(err)
	}
	p.serve(ln)
}

func (p *platform) stop() {
	p.mu.Lock()
	srv, served := p.srv, p.served
	p.srv = nil
	p.mu.Unlock()
	if srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	<-served
}

type trackingListener struct {
	net.Listener
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	dead  bool
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dead {
		c.Close()
		return nil, net.ErrClosed
	}
	l.conns[c] = struct{}{}
	return c, nil
}

func (l *trackingListener) killAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dead = true
	l.Listener.Close()
	for c := range l.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // RST, as the kernel does for a killed process with unread data
		}
		c.Close()
	}
}

// do calls the dashboard API.
func (p *platform) do(method, path, token string, body, out any) int {
	p.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, p.url()+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0 // the platform is down; callers poll
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if out != nil && res.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			p.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return res.StatusCode
}

// deployment signs a user up and creates a deployment: user JWT,
// deployment id, deployment token.
func (p *platform) deployment(email string) (jwt, id, token string) {
	p.t.Helper()
	var s struct{ Token string }
	if code := p.do("POST", "/api/v1/auth/signup", "", map[string]string{
		"email": email, "password": "correct horse battery", "name": "U", "tenant_name": "T",
	}, &s); code != http.StatusCreated {
		p.t.Fatalf("signup: %d", code)
	}
	var d struct {
		Deployment store.Deployment
		Token      string
	}
	if code := p.do("POST", "/api/v1/deployments", s.Token, map[string]string{"name": "cluster"}, &d); code != http.StatusCreated {
		p.t.Fatalf("create deployment: %d", code)
	}
	return s.Token, d.Deployment.ID, d.Token
}

// startOperator runs the connector against the test cluster as
// agentkube-manager runs it, with short timings.
func startOperator(t testing.TB, baseURL, token string, tweak ...func(*connect.Options)) {
	t.Helper()
	opts := connect.Options{
		BaseURL: baseURL, Token: token, ClusterID: "e2e", Version: "test",
		HeartbeatInterval: 100 * time.Millisecond, DeltaDelay: 50 * time.Millisecond,
		InitialBackoff: 20 * time.Millisecond, MaxBackoff: 300 * time.Millisecond,
		HandshakeTimeout: 5 * time.Second,
	}
	for _, f := range tweak {
		f(&opts)
	}
	connecttest.Start(t, cluster.Config, opts)
}
