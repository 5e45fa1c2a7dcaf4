package tunnel

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// pair is a real WebSocket connection over loopback TCP with a Conn on the
// server side and either a Conn or the raw client socket on the other.
type pair struct {
	server     *Conn
	serverIn   chan Frame
	serverDone chan error
	client     *websocket.Conn
}

func newPair(t *testing.T, opts Options, onServer func(*Conn, Frame)) *pair {
	t.Helper()
	p := &pair{serverIn: make(chan Frame, 1024), serverDone: make(chan error, 1)}
	ready := make(chan struct{})
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		p.server = NewConn(ws, opts)
		close(ready)
		p.serverDone <- p.server.Run(context.Background(), func(f Frame) {
			if onServer != nil {
				onServer(p.server, f)
			}
			p.serverIn <- f
		})
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	p.client = ws
	t.Cleanup(func() { ws.Close() })
	<-ready
	return p
}

// clientConn wraps the client socket in a Conn running in the background.
func (p *pair) clientConn(t *testing.T, opts Options) (*Conn, chan Frame) {
	t.Helper()
	c := NewConn(p.client, opts)
	in := make(chan Frame, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Run(context.Background(), func(f Frame) { in <- f })
	}()
	t.Cleanup(func() {
		c.Close(CloseNormal, "")
		<-done
	})
	return c, in
}

func waitClosed(t *testing.T, p *pair) error {
	t.Helper()
	select {
	case err := <-p.serverDone:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("server connection did not close")
		return nil
	}
}

func readClose(t *testing.T, ws *websocket.Conn) int {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			return CloseCode(err)
		}
	}
}

func recvFrame(t *testing.T, ch chan Frame) Frame {
	t.Helper()
	select {
	case f := <-ch:
		return f
	case <-time.After(10 * time.Second):
		t.Fatal("no frame received")
		return Frame{}
	}
}

func TestOversizedFrameClosesWith1009(t *testing.T) {
	p := newPair(t, Options{ReadLimit: 1024}, nil)
	big := `{"v":1,"type":"heartbeat","payload":{"pad":"` + strings.Repeat("x", 2048) + `"}}`
	if err := p.client.WriteMessage(websocket.TextMessage, []byte(big)); err != nil {
		t.Fatal(err)
	}
	if code := readClose(t, p.client); code != CloseMessageTooBig {
		t.Fatalf("client saw close code %d, want %d", code, CloseMessageTooBig)
	}
	if code := CloseCode(waitClosed(t, p)); code != CloseMessageTooBig {
		t.Fatalf("server ended with code %d, want %d", code, CloseMessageTooBig)
	}
}

func TestBadFramesClose(t *testing.T) {
	for _, tc := range []struct {
		name string
		typ  int
		msg  string
		code int
	}{
		{"wrong version", websocket.TextMessage, `{"v":9,"type":"heartbeat"}`, CloseProtocolError},
		{"not json", websocket.TextMessage, `{{{`, CloseProtocolError},
		{"binary", websocket.BinaryMessage, `{"v":1,"type":"heartbeat"}`, CloseUnsupportedData},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t, Options{}, nil)
			if err := p.client.WriteMessage(tc.typ, []byte(tc.msg)); err != nil {
				t.Fatal(err)
			}
			if code := readClose(t, p.client); code != tc.code {
				t.Fatalf("close code %d, want %d", code, tc.code)
			}
			waitClosed(t, p)
		})
	}
}

func TestUnknownTypesAreDeliveredAndDoNotClose(t *testing.T) {
	p := newPair(t, Options{}, nil)
	for _, m := range []string{`{"v":1,"type":"from_the_future","payload":{"x":1},"extra":2}`, `{"v":1,"type":"heartbeat","payload":{"seq":1}}`} {
		if err := p.client.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	if f := recvFrame(t, p.serverIn); f.Type != "from_the_future" {
		t.Fatalf("got %q", f.Type)
	}
	if f := recvFrame(t, p.serverIn); f.Type != TypeHeartbeat {
		t.Fatalf("got %q", f.Type)
	}
	p.server.Close(CloseNormal, "bye")
	if code := readClose(t, p.client); code != CloseNormal {
		t.Fatalf("close code %d", code)
	}
	waitClosed(t, p)
}

func TestFlowControlViolationCloses1008(t *testing.T) {
	p := newPair(t, Options{StreamWindow: 64}, func(c *Conn, f Frame) {
		if f.Type == "open" {
			if _, err := c.OpenStream(5); err != nil {
				t.Error(err)
			}
		}
	})
	msgs := []string{
		`{"v":1,"type":"open"}`,
		`{"v":1,"type":"shell_output","stream":5,"payload":{"data":"` + strings.Repeat("a", 100) + `"}}`,
	}
	for _, m := range msgs {
		if err := p.client.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	if code := readClose(t, p.client); code != ClosePolicyViolation {
		t.Fatalf("close code %d, want %d", code, ClosePolicyViolation)
	}
	waitClosed(t, p)
}

// A stream whose receiver stops reading must not delay control frames or
// any other stream: the sender blocks on that stream's credit only.
func TestStalledStreamDoesNotBlockOthers(t *testing.T) {
	const window = 4096
	opts := Options{StreamWindow: window}
	var serverStreams sync.Map
	p := newPair(t, opts, func(c *Conn, f Frame) {
		if f.Type == TypeShellOpen {
			for _, id := range []uint32{1, 3} {
				s, err := c.OpenStream(id)
				if err != nil {
					t.Error(err)
				}
				serverStreams.Store(id, s)
			}
		}
	})
	client, _ := p.clientConn(t, opts)
	stalled, _ := client.OpenStream(1)
	live, _ := client.OpenStream(3)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := client.Send(ctx, TypeShellOpen, "", map[string]any{"grant_id": "g"}); err != nil {
		t.Fatal(err)
	}
	if f := recvFrame(t, p.serverIn); f.Type != TypeShellOpen {
		t.Fatalf("got %q", f.Type)
	}

	chunk := map[string]string{"data": strings.Repeat("z", 1000)}
	// Exhaust stream 1's window: the server never reads it.
	sent := 0
	for {
		short, c2 := context.WithTimeout(ctx, 200*time.Millisecond)
		err := stalled.Send(short, TypeShellOutput, "", chunk)
		c2()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		sent++
		if sent > window {
			t.Fatal("stream 1 never ran out of credit")
		}
	}

	// Control frames and stream 3 still flow, in volume.
	v, _ := serverStreams.Load(uint32(3))
	serverLive := v.(*Stream)
	for i := range 200 {
		if err := client.Send(ctx, TypeHeartbeat, "", Heartbeat{Seq: uint64(i)}); err != nil {
			t.Fatal(err)
		}
		if err := live.Send(ctx, TypeShellOutput, "", chunk); err != nil {
			t.Fatalf("stream 3 blocked behind stalled stream 1: %v", err)
		}
		if f := recvFrame(t, p.serverIn); f.Type != TypeHeartbeat {
			t.Fatalf("got %q", f.Type)
		}
		if _, err := serverLive.Recv(ctx); err != nil {
			t.Fatal(err)
		}
	}

	// Once the server reads stream 1 again, its sender resumes.
	v, _ = serverStreams.Load(uint32(1))
	serverStalled := v.(*Stream)
	done := make(chan error, 1)
	go func() { done <- stalled.Send(ctx, TypeShellOutput, "", chunk) }()
	for range sent + 1 {
		if _, err := serverStalled.Recv(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestStreamReset(t *testing.T) {
	p := newPair(t, Options{}, func(c *Conn, f Frame) {
		if f.Type == TypeShellOpen {
			s, _ := c.OpenStream(2)
			go func() { _ = s.Close(context.Background()) }()
		}
	})
	client, _ := p.clientConn(t, Options{})
	s, _ := client.OpenStream(2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := client.Send(ctx, TypeShellOpen, "", struct{}{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(ctx); !errors.Is(err, ErrStreamReset) {
		t.Fatalf("Recv after peer reset = %v, want ErrStreamReset", err)
	}
}

// Pings keep an idle connection alive past the read deadline.
func TestPingsKeepIdleConnectionAlive(t *testing.T) {
	// Generous enough that a loaded machine's scheduling delays never look like a
	// dead peer, short enough to cover several read deadlines in a second or two.
	opts := Options{PingInterval: 200 * time.Millisecond}
	p := newPair(t, opts, nil)
	client, in := p.clientConn(t, opts)
	// Idle for several read-deadline periods (2.5 × PingInterval each).
	idle := time.NewTimer(8 * opts.PingInterval)
	select {
	case <-idle.C:
	case err := <-p.serverDone:
		t.Fatalf("idle connection closed: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.server.Send(ctx, TypeHeartbeat, "", Heartbeat{Seq: 1}); err != nil {
		t.Fatal(err)
	}
	if f := recvFrame(t, in); f.Type != TypeHeartbeat {
		t.Fatalf("got %q", f.Type)
	}
	client.Close(CloseNormal, "")
	if code := CloseCode(waitClosed(t, p)); code != CloseNormal {
		t.Fatalf("server saw %d", code)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	// Every Conn's goroutines (reader, writer) and sockets end with it.
	if leaked := leakedGoroutines(10 * time.Second); leaked != "" && code == 0 {
		println("leaked goroutines:\n" + leaked)
		code = 1
	}
	os.Exit(code)
}

// leakedGoroutines waits up to d for goroutines running tunnel or WebSocket
// code to end and returns the stacks of those that did not.
func leakedGoroutines(d time.Duration) string {
	deadline := time.Now().Add(d)
	for {
		buf := make([]byte, 1<<20)
		var leaked []string
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, "TestMain") {
				continue
			}
			if strings.Contains(g, "gorilla/websocket") || strings.Contains(g, "pkg/tunnel.") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
