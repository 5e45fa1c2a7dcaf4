//go:build linux

package shell

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/exo-in-go/exo/pkg/platform/shell"
	"github.com/exo-in-go/exo/pkg/shellexec"
)

// A shell under benchmark: write keystrokes, read terminal output.
type benchShell interface {
	write(p []byte) error
	// out delivers terminal output chunks.
	out() <-chan []byte
	close()
}

// Through the whole path: browser WebSocket → exo-app → tunnel → operator
// (connector + shellexec) → kube-apiserver pods/exec → localnode → PTY.
type platformShell struct {
	ws *websocket.Conn
	ch chan []byte
}

func openPlatformShell(b *testing.B) benchShell {
	// Heartbeats at the platform's default pace, as in production.
	f := &fixture{p: startPlatform(b, shell.Options{}, 10*time.Second)}
	f.alice = signup(b, f.p, "bench@example.com")
	var token string
	f.dep, token = createDeployment(b, f.p, f.alice, "bench")
	f.op = startOperator(b, f.p, f.dep, token)
	g := grantShell(b, f.p, f.alice, f.dep)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := dialShell(ctx, g.WSURL, f.alice.token, f.p.url)
	if err != nil {
		b.Fatal(err)
	}
	s := &platformShell{ws: ws, ch: make(chan []byte, 1024)}
	go func() {
		defer close(s.ch)
		for {
			typ, p, err := ws.ReadMessage()
			if err != nil {
				return
			}
			if typ == websocket.BinaryMessage {
				s.ch <- p
			}
		}
	}()
	b.Cleanup(s.close)
	return s
}

func (s *platformShell) write(p []byte) error { return s.ws.WriteMessage(websocket.BinaryMessage, p) }
func (s *platformShell) out() <-chan []byte   { return s.ch }
func (s *platformShell) close() {
	_ = s.ws.Close()
	for range s.ch {
	}
}

// The same exec without the platform and the tunnel: what kubectl exec
// does (client-go's WebSocket executor with SPDY fallback), as the manager.
type directShell struct {
	stdin  *io.PipeWriter
	ch     chan []byte
	cancel context.CancelFunc
	done   chan struct{}
}

func openDirectShell(b *testing.B) benchShell {
	client := kubernetes.NewForConfigOrDie(cluster.manager)
	u := client.CoreV1().RESTClient().Post().Resource("pods").Namespace(cluster.namespace).Name(cluster.agent).
		SubResource("exec").VersionedParams(&corev1.PodExecOptions{
		Container: shellexec.DefaultContainer, Command: shellexec.DefaultCommand, Stdin: true, Stdout: true, TTY: true,
	}, scheme.ParameterCodec).URL()
	ws, err := remotecommand.NewWebSocketExecutor(cluster.manager, "GET", u.String())
	if err != nil {
		b.Fatal(err)
	}
	spdy, err := remotecommand.NewSPDYExecutor(cluster.manager, "POST", u)
	if err != nil {
		b.Fatal(err)
	}
	ex, err := remotecommand.NewFallbackExecutor(ws, spdy, func(error) bool { return false })
	if err != nil {
		b.Fatal(err)
	}
	r, w := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	s := &directShell{stdin: w, ch: make(chan []byte, 1024), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer close(s.ch)
		_ = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: r, Stdout: chanWriter(s.ch), Tty: true})
	}()
	b.Cleanup(s.close)
	return s
}

type chanWriter chan []byte

func (c chanWriter) Write(p []byte) (int, error) {
	c <- bytes.Clone(p)
	return len(p), nil
}

func (s *directShell) write(p []byte) error { _, err := s.stdin.Write(p); return err }
func (s *directShell) out() <-chan []byte   { return s.ch }
func (s *directShell) close() {
	_, _ = s.stdin.Write([]byte("exit\r"))
	time.AfterFunc(2*time.Second, s.cancel)
	go func() {
		for range s.ch {
		}
	}()
	<-s.done
	s.cancel()
	_ = s.stdin.Close()
}

// readUntil consumes output until it contains marker.
func readUntil(b *testing.B, s benchShell, marker []byte) int {
	var seen []byte
	n := 0
	timeout := time.After(time.Minute)
	for {
		select {
		case p, ok := <-s.out():
			if !ok {
				b.Fatalf("shell closed waiting for %q", marker)
			}
			n += len(p)
			seen = append(seen, p...)
			if bytes.Contains(seen, marker) {
				return n
			}
			if len(seen) > 1<<16 {
				seen = seen[len(seen)-len(marker):]
			}
		case <-timeout:
			b.Fatalf("timed out waiting for %q", marker)
		}
	}
}

func benchPaths(b *testing.B, run func(b *testing.B, open func(*testing.B) benchShell)) {
	b.Run("platform-tunnel", func(b *testing.B) { run(b, openPlatformShell) })
	b.Run("direct-exec", func(b *testing.B) { run(b, openDirectShell) })
}

// BenchmarkKeystrokeEcho is the time from a keystroke leaving the client to
// its echo arriving back, through the platform and the tunnel and, for
// comparison, through kube-apiserver's pods/exec alone.
func BenchmarkKeystrokeEcho(b *testing.B) {
	benchPaths(b, func(b *testing.B, open func(*testing.B) benchShell) {
		s := open(b)
		if err := s.write([]byte("stty -icanon; PS1=; echo rea''dy\r")); err != nil {
			b.Fatal(err)
		}
		readUntil(b, s, []byte("ready"))
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			key := []byte{byte('a' + i%26)}
			if i%64 == 63 {
				// Keep the line short: Ctrl-U clears it (and echoes nothing
				// we wait for); the next key is timed as usual.
				_ = s.write([]byte{0x15})
			}
			start := time.Now()
			if err := s.write(key); err != nil {
				b.Fatal(err)
			}
			readUntil(b, s, key)
			lat = append(lat, time.Since(start))
		}
		b.StopTimer()
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	})
}

// BenchmarkBulkOutput is the throughput of `cat` of a large file.
func BenchmarkBulkOutput(b *testing.B) {
	const size = 8 << 20
	// The node runs the pod's processes on this host, so the shell reads
	// the file where the test writes it.
	path := filepath.Join(cluster.dataDir, "big.txt")
	if _, err := os.Stat(path); err != nil {
		raw := make([]byte, size*3/4)
		r := rand.NewChaCha8([32]byte{})
		_, _ = r.Read(raw)
		enc := base64.StdEncoding.EncodeToString(raw)
		var sb strings.Builder
		for len(enc) > 0 {
			n := min(len(enc), 76)
			sb.WriteString(enc[:n])
			sb.WriteByte('\n')
			enc = enc[n:]
		}
		if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	fi, _ := os.Stat(path)
	benchPaths(b, func(b *testing.B, open func(*testing.B) benchShell) {
		s := open(b)
		if err := s.write([]byte("echo rea''dy\r")); err != nil {
			b.Fatal(err)
		}
		readUntil(b, s, []byte("ready"))
		b.SetBytes(fi.Size())
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			marker := fmt.Sprintf("done-%d", i)
			if err := s.write([]byte(fmt.Sprintf("cat %s; echo %s''%s\r", path, marker[:3], marker[3:]))); err != nil {
				b.Fatal(err)
			}
			readUntil(b, s, []byte(marker))
		}
	})
}
