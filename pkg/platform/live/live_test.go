package live_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/exo-in-go/exo/pkg/platform/app"
	"github.com/exo-in-go/exo/pkg/platform/config"
	"github.com/exo-in-go/exo/pkg/platform/live"
	"github.com/exo-in-go/exo/pkg/platform/platformtest"
	"github.com/exo-in-go/exo/pkg/platform/store"
)

// env is a real exo-app (SQLite store) as cmd/exo-app assembles it
// (pkg/platform/app), with the events endpoint it mounts.
type env struct {
	hub *live.Hub
	url string
	// draining starts a graceful shutdown, which tells open streams to
	// reconnect elsewhere.
	draining func()
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	vars := map[string]string{"EXO_DEV_MODE": "true", "EXO_DATABASE_DSN": platformtest.DSN(t, "sqlite"), "EXO_CAST_STORAGE_DIR": t.TempDir()}
	getenv := func(k string) string { return vars[k] }
	cfg, err := config.Load(getenv)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(ctx, cfg, getenv, app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- a.Serve(ln) }()
	shutdown := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = a.Shutdown(ctx)
	}
	t.Cleanup(func() { shutdown(); <-served })
	return &env{hub: a.Events(), url: "http://" + ln.Addr().String(), draining: func() { go shutdown() }}
}

type session struct {
	Token    string `json:"token"`
	TenantID string `json:"tenant_id"`
}

func (e *env) signup(t *testing.T, email string) session {
	t.Helper()
	var s session
	e.call(t, "", "POST", "/api/v1/auth/signup", map[string]string{"email": email, "password": "correct horse battery", "name": "N", "tenant_name": email}, &s)
	return s
}

func (e *env) call(t *testing.T, token, method, path string, body, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, e.url+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode >= 300 {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("%s %s: %d %s", method, path, res.StatusCode, b)
	}
	if out != nil {
		if err := json.NewDecoder(res.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
}

type sse struct {
	ID, Type string
	Data     json.RawMessage
}

// stream is one open GET /api/v1/events.
type stream struct {
	res    *http.Response
	rd     *bufio.Reader
	events chan sse
	cancel context.CancelFunc
}

func (e *env) open(t *testing.T, token, lastID string) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", e.url+"/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		cancel()
		res.Body.Close()
		t.Fatalf("events: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	s := &stream{res: res, rd: bufio.NewReader(res.Body), events: make(chan sse, 64), cancel: cancel}
	go s.read()
	t.Cleanup(s.close)
	return s
}

func (s *stream) close() { s.cancel(); s.res.Body.Close() }

func (s *stream) read() {
	defer close(s.events)
	var ev sse
	for {
		line, err := s.rd.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "":
			if ev.Type != "" {
				s.events <- ev
			}
			ev = sse{}
		case strings.HasPrefix(line, "id: "):
			ev.ID = line[4:]
		case strings.HasPrefix(line, "event: "):
			ev.Type = line[7:]
		case strings.HasPrefix(line, "data: "):
			ev.Data = json.RawMessage(line[6:])
		}
	}
}

func (s *stream) next(t *testing.T) sse {
	t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			t.Fatal("stream ended")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	return sse{}
}

func (s *stream) hello(t *testing.T) (resumed bool) {
	t.Helper()
	ev := s.next(t)
	if ev.Type != "hello" {
		t.Fatalf("first event %q, want hello", ev.Type)
	}
	var h struct{ Resumed bool }
	_ = json.Unmarshal(ev.Data, &h)
	return h.Resumed
}

func status(t *testing.T, ev sse) live.DeploymentStatus {
	t.Helper()
	if ev.Type != live.TypeDeployment {
		t.Fatalf("event %q, want %q", ev.Type, live.TypeDeployment)
	}
	var d live.DeploymentStatus
	if err := json.Unmarshal(ev.Data, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestEventsStream(t *testing.T) {
	e := newEnv(t)
	alice := e.signup(t, "alice@example.com")
	bob := e.signup(t, "bob@example.com")

	t.Run("unauthenticated is refused", func(t *testing.T) {
		res, err := http.Get(e.url + "/api/v1/events")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d", res.StatusCode)
		}
	})

	a := e.open(t, alice.Token, "")
	b := e.open(t, bob.Token, "")
	if a.hello(t) || b.hello(t) {
		t.Fatal("a fresh stream must not claim to be resumed")
	}

	// A change through the API (PublishingStore) reaches its tenant only.
	var created struct{ Deployment store.Deployment }
	e.call(t, alice.Token, "POST", "/api/v1/deployments", map[string]string{"name": "prod"}, &created)
	got := status(t, a.next(t))
	if got.DeploymentID != created.Deployment.ID || got.Status != store.StatusPending {
		t.Fatalf("event %+v", got)
	}
	firstID := ""
	// The tunnel's status write (here called directly) is published with its heartbeat.
	e.hub.Publish(live.Event{TenantID: bob.TenantID, Type: live.TypeDeployment, Data: live.DeploymentStatus{DeploymentID: "bobs"}})
	if ev := b.next(t); status(t, ev).DeploymentID != "bobs" {
		t.Fatal("bob's event not delivered")
	} else {
		firstID = ev.ID
	}
	select {
	case ev := <-a.events:
		t.Fatalf("alice received another tenant's event %+v", ev)
	case <-time.After(200 * time.Millisecond):
	}

	t.Run("resume with Last-Event-ID replays what was missed", func(t *testing.T) {
		b.close()
		for i := range 3 {
			e.hub.Publish(live.Event{TenantID: bob.TenantID, Type: live.TypeCluster, Data: live.ClusterChange{DeploymentID: "bobs", Kinds: []string{string(rune('A' + i))}}})
		}
		b2 := e.open(t, bob.Token, firstID)
		if !b2.hello(t) {
			t.Fatal("resume not honoured")
		}
		for i := range 3 {
			ev := b2.next(t)
			var c live.ClusterChange
			_ = json.Unmarshal(ev.Data, &c)
			if ev.Type != live.TypeCluster || len(c.Kinds) != 1 || c.Kinds[0] != string(rune('A'+i)) {
				t.Fatalf("replayed %d: %+v", i, ev)
			}
		}
	})

	t.Run("an id from another process asks for a resync", func(t *testing.T) {
		s := e.open(t, bob.Token, "0123456789ab-1")
		if s.hello(t) {
			t.Fatal("foreign epoch resumed")
		}
	})

	t.Run("shutdown tells the client to reconnect", func(t *testing.T) {
		s := e.open(t, alice.Token, "")
		s.hello(t)
		e.draining()
		if ev := s.next(t); ev.Type != "reconnect" {
			t.Fatalf("got %q", ev.Type)
		}
		if _, ok := <-s.events; ok {
			t.Fatal("stream still open after reconnect")
		}
	})
}
