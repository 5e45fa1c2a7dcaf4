package aggregated

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	rbacv1 "k8s.io/api/rbac/v1"
)

// testAttach drives `kubectl agent attach` in a real pseudo-terminal, as a person would:
// keystrokes go to the Agent's shell and its output comes back, a window resize reaches
// the remote terminal, and `exit` ends the session with status 0.
func testAttach(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 2*time.Minute)
	ns := env.cluster.CreateNamespace(t)
	newAgent(t, ns, "shell", agentSpec{command: echoCommand})
	_, kubeconfig := env.cluster.User(t, "attacher-"+ns)
	bind(t, ns, "ClusterRole", "edit", rbacv1.Subject{Kind: rbacv1.UserKind, Name: "attacher-" + ns})

	cmd := pluginCmd(ctx, kubeconfig, "agent", "attach", "shell", "-n", ns)
	term, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: 80})
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	screen := &screen{}
	go func() { _, _ = io.Copy(screen, term) }()

	// Ask the remote shell for something only a live shell prints (the typed line's echo
	// does not contain it).
	expect := func(typed, want string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !screen.contains(want) {
			if time.Now().After(deadline) {
				t.Fatalf("after typing %q the terminal never showed %q; it shows:\n%s", typed, want, screen.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	send := func(line string) {
		t.Helper()
		if _, err := term.WriteString(line + "\r"); err != nil {
			t.Fatal(err)
		}
	}
	send("echo ready-$((6*7))")
	expect("echo ready-$((6*7))", "ready-42")

	if err := pty.Setsize(term, &pty.Winsize{Rows: 50, Cols: 132}); err != nil {
		t.Fatal(err)
	}
	// The resize travels as a channel-4 message; poll the remote size until it lands.
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; !screen.contains("size-50x132"); i++ {
		if time.Now().After(deadline) {
			t.Fatalf("the remote terminal never took the new size; it shows:\n%s", screen.String())
		}
		send(`echo "size-$(stty size | tr ' ' x)"`)
		time.Sleep(200 * time.Millisecond)
	}

	send("exit 0")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("kubectl agent attach ended with %v; terminal:\n%s", err, screen.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("kubectl agent attach did not end after exit; terminal:\n%s", screen.String())
	}
}

// screen collects what the terminal showed.
type screen struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *screen) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *screen) contains(sub string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Contains(s.buf.String(), sub)
}

func (s *screen) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// listenOn listens on a loopback port again, retrying while the old listener's socket is
// still being released.
func listenOn(port int) (net.Listener, error) {
	var lastErr error
	for range 100 {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			return ln, nil
		}
		lastErr = err
		if !errors.Is(err, os.ErrExist) && !strings.Contains(err.Error(), "address already in use") {
			return nil, err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil, lastErr
}
