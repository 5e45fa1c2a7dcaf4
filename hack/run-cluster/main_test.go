package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/exo-in-go/exo/pkg/platform/shell"
	"github.com/exo-in-go/exo/test/framework"
	"github.com/exo-in-go/exo/test/ports"
)

// TestMakeRunCluster runs the built run-cluster as `make run-cluster` does, on a port
// and in folders of its own, and uses what its welcome prints: the kubectl-agent
// plugin with the printed environment, the UI's URL, the sign-in, and a browser shell
// through the host's forwarder (the Origin and ws_url a browser would use); then
// Ctrl-C must end it with status 0 and nothing left running.
func TestMakeRunCluster(t *testing.T) {
	work := t.TempDir()
	build := exec.Command("go", "build", "-o", work+"/", "./hack/run-cluster")
	build.Dir = framework.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// The node's sockets live under its folder, which must stay short: not t.TempDir.
	dir, err := os.MkdirTemp("", "exo-rc-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	port := ports.Free(t)
	logPath := filepath.Join(work, "run-cluster.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	rc := exec.Command(filepath.Join(work, "run-cluster"), "-dir", dir, "-port", fmt.Sprint(port),
		"-bin", filepath.Join(work, "bin"), "-images", filepath.Join(work, "images"))
	rc.Stderr = logFile
	stdout, err := rc.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if err := rc.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	welcome := make(chan string, 1)
	go func() {
		var printed strings.Builder
		lines := bufio.NewScanner(stdout)
		for lines.Scan() {
			printed.WriteString(lines.Text() + "\n")
			if strings.HasPrefix(lines.Text(), "Press Ctrl-C") {
				welcome <- printed.String()
			}
		}
		exited <- rc.Wait()
	}()
	running := true
	t.Cleanup(func() {
		if running {
			_ = rc.Process.Signal(syscall.SIGINT)
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("run-cluster's log:\n%s", b)
		}
	})
	var text string
	select {
	case text = <-welcome:
	case err := <-exited:
		running = false
		t.Fatalf("run-cluster exited before its welcome: %v", err)
	case <-time.After(15 * time.Minute): // a cold first run builds the images' binaries
		t.Fatal("no welcome after 15 minutes")
	}
	t.Logf("welcome after %s:\n%s", time.Since(began).Round(time.Second), text)

	ui := find(t, text, `UI\s+(\S+)`)
	if want := fmt.Sprintf("http://localhost:%d", port); ui != want {
		t.Fatalf("UI %q, want %q", ui, want)
	}
	path := find(t, text, `export KUBECONFIG=\S+ PATH=(\S+):\$PATH`)
	env := append(os.Environ(), "KUBECONFIG="+find(t, text, `export KUBECONFIG=(\S+) `), "PATH="+path+":"+os.Getenv("PATH"))

	// The printed command, at once: the welcome comes after an invoke answered. kubectl
	// is the one on the printed PATH (exec looks names up in the test's own), and finds
	// the plugin there.
	if !strings.Contains(text, `kubectl agent invoke hello --input "world" --wait`) {
		t.Fatalf("the welcome does not print the invoke")
	}
	kubectl := ""
	for _, d := range filepath.SplitList(path) {
		if _, err := os.Stat(filepath.Join(d, "kubectl")); err == nil && kubectl == "" {
			kubectl = filepath.Join(d, "kubectl")
		}
	}
	if kubectl == "" {
		t.Fatalf("no kubectl on the printed PATH %s", path)
	}
	invoke := exec.Command(kubectl, "agent", "invoke", "hello", "--input", "world", "--wait")
	invoke.Env = env
	if out, err := invoke.CombinedOutput(); err != nil || !strings.Contains(string(out), "hello from hello: world") {
		t.Fatalf("kubectl agent invoke: %v\n%s", err, out)
	}

	res, err := http.Get(ui + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !bytes.Contains(bytes.ToLower(page), []byte("<html")) {
		t.Fatalf("GET %s/: %s\n%.300s", ui, res.Status, page)
	}

	browserShell(t, ui, find(t, text, `sign in\s+(\S+) /`), find(t, text, `sign in\s+\S+ / (\S+)`),
		find(t, text, `/deployments/([^/\s]+)/agents/default/hello`))

	// Ctrl-C.
	netns := "/run/netns/" + find(t, text, `network namespace (\S+),`)
	if _, err := os.Stat(netns); err != nil {
		t.Fatalf("the node's network namespace: %v", err)
	}
	if err := rc.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		running = false
		if err != nil {
			t.Fatalf("run-cluster exited with %v after Ctrl-C", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("run-cluster still runs 2 minutes after Ctrl-C")
	}
	if _, err := os.Stat(netns); !os.IsNotExist(err) {
		t.Errorf("%s left behind (%v)", netns, err)
	}
	if left := framework.ProcessesMentioning(dir); len(left) > 0 {
		t.Errorf("processes left behind:\n%s", strings.Join(left, "\n"))
	}
	if conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
		conn.Close()
		t.Errorf("port %d still accepts connections", port)
	}
}

// browserShell signs in as the welcome says and opens the sample Agent's shell the way
// the UI's page does: the grant's ws_url must be on the host's URL, and the WebSocket,
// sent with the page's Origin, must reach a shell in the Agent's container through the
// forwarder, exo-app, the tunnel and pods/exec.
func browserShell(t *testing.T, ui, email, password, deployment string) {
	var session struct {
		Token string `json:"token"`
	}
	post(t, ui+"/api/v1/auth/login", "", map[string]string{"email": email, "password": password}, &session)
	var grant shell.GrantResponse
	post(t, ui+"/api/v1/deployments/"+deployment+"/agents/default/hello/shell", session.Token, map[string]int{"cols": 80, "rows": 24}, &grant)
	wsBase := "ws" + strings.TrimPrefix(ui, "http")
	if !strings.HasPrefix(grant.WSURL, wsBase+"/") {
		t.Fatalf("ws_url %q is not on the UI's origin %s", grant.WSURL, ui)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dialer := websocket.Dialer{Subprotocols: []string{shell.Subprotocol, "exo-auth." + session.Token}}
	ws, res, err := dialer.DialContext(ctx, grant.WSURL, http.Header{"Origin": {ui}})
	if err != nil {
		status := ""
		if res != nil {
			status = res.Status
		}
		t.Fatalf("opening the shell: %v %s", err, status)
	}
	defer ws.Close()
	screen := make(chan []byte)
	go func() {
		defer close(screen)
		for {
			kind, b, err := ws.ReadMessage()
			if err != nil {
				return
			}
			if kind != websocket.BinaryMessage {
				continue
			}
			select {
			case screen <- b:
			case <-ctx.Done():
				return
			}
		}
	}()
	// Typed again every few seconds until it shows: keys sent before the shell runs
	// may not reach it. The echo of the line shows $((6*7)), never 42.
	const line, want = "echo in-$((6*7))-shell\r", "in-42-shell"
	var shown []byte
	retype := time.NewTicker(3 * time.Second)
	defer retype.Stop()
	for typed := false; !bytes.Contains(shown, []byte(want)); {
		if !typed {
			if err := ws.WriteMessage(websocket.BinaryMessage, []byte(line)); err != nil {
				t.Fatal(err)
			}
			typed = true
		}
		select {
		case b, ok := <-screen:
			if !ok {
				t.Fatalf("the shell closed; it showed %q", shown)
			}
			shown = append(shown, b...)
		case <-retype.C:
			typed = false
		case <-ctx.Done():
			t.Fatalf("the shell shows %q, not %q", shown, want)
		}
	}
}

// post sends a JSON request and decodes the JSON answer, which must be a success.
func post(t *testing.T, url, token string, in, out any) {
	t.Helper()
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode/100 != 2 {
		t.Fatalf("POST %s: %s: %s", url, res.Status, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatalf("POST %s: decoding %s: %v", url, body, err)
	}
}

func find(t *testing.T, text, expr string) string {
	t.Helper()
	m := regexp.MustCompile(expr).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("the welcome lacks %s:\n%s", expr, text)
	}
	return m[1]
}
