// Package localup runs `make run` the way a new user does: it starts hack/local-up,
// waits for the printed welcome, runs the printed commands, and stops it with Ctrl-C
// (SIGINT), checking that nothing it started is left running.
package localup

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/exo-in-go/exo/pkg/platform/platformtest"
	"github.com/exo-in-go/exo/test/framework"
	"github.com/exo-in-go/exo/test/ports"
)

// localUp is a running `make run`: hack/local-up started the way a user does.
type localUp struct {
	cmd     *exec.Cmd
	stderr  *bytes.Buffer
	exited  chan error
	stopped bool
	bin     string // our binaries: kubectl-agent, exo-app, …
	state   string // local-up's -dir
	port    int
	// welcome is what local-up printed up to "Press Ctrl-C".
	welcome string
	// env is the printed environment: KUBECONFIG and PATH.
	env []string
}

// startLocalUp builds the binaries and runs local-up on free ports until it
// prints its welcome; it is stopped with SIGINT when the test ends unless
// the test stops it itself.
func startLocalUp(tb testing.TB) *localUp {
	tb.Helper()
	root := framework.RepoRoot()
	kubeBin, err := framework.BinaryDir()
	if err != nil {
		tb.Fatal(err)
	}
	u := &localUp{bin: tb.TempDir(), state: tb.TempDir(), port: ports.Free(tb), stderr: &bytes.Buffer{}, exited: make(chan error, 1)}
	build := exec.Command("go", "build", "-o", u.bin+"/", "./cmd/...", "./hack/local-up")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		tb.Fatalf("go build: %v\n%s", err, out)
	}
	args := []string{"-bin", u.bin, "-dir", u.state, "-port", fmt.Sprint(u.port)}
	for _, flag := range []string{"-webhook-port", "-api-port", "-metrics-port", "-probe-port"} {
		args = append(args, flag, fmt.Sprint(ports.Free(tb)))
	}
	u.cmd = exec.Command(filepath.Join(u.bin, "local-up"), args...)
	u.cmd.Dir = root
	stdout, err := u.cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	u.cmd.Stderr = u.stderr
	if err := u.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	welcome := make(chan string, 1)
	go func() {
		var out strings.Builder
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			if !sent && strings.Contains(sc.Text(), "Press Ctrl-C") {
				welcome <- out.String()
				sent = true
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		u.exited <- u.cmd.Wait()
	}()
	tb.Cleanup(func() {
		if !u.stopped {
			_ = u.cmd.Process.Signal(syscall.SIGINT)
			<-u.exited
		}
	})
	select {
	case u.welcome = <-welcome:
	case err := <-u.exited:
		u.stopped = true
		tb.Fatalf("local-up exited before it was ready: %v\n%s", err, u.stderr.String())
	case <-time.After(10 * time.Minute):
		tb.Fatalf("local-up not ready after 10 minutes\n%s", u.stderr.String())
	}
	u.env = append(os.Environ(), "KUBECONFIG="+match(tb, u.welcome, `kubeconfig\s+(\S+)`),
		"PATH="+u.bin+":"+kubeBin+":"+os.Getenv("PATH"))
	return u
}

// run runs a printed command with the printed environment.
func (u *localUp) run(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, name, args...)
	c.Env = u.env
	out, err := c.CombinedOutput()
	if err != nil {
		tb.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// waitForAgent waits until `kubectl agent invoke hello` succeeds: the agent
// pod starts on localnode and invocations answer 503 until it is ready.
func (u *localUp) waitForAgent(tb testing.TB) string {
	tb.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		c := exec.CommandContext(ctx, "kubectl", "agent", "invoke", "hello", "--input", "world", "--wait")
		c.Env = u.env
		out, err := c.CombinedOutput()
		cancel()
		if err == nil {
			return string(out)
		}
		if time.Now().After(deadline) {
			tb.Fatalf("kubectl agent invoke: %v\n%s", err, out)
		}
		time.Sleep(2 * time.Second)
	}
}

func TestMakeRun(t *testing.T) {
	u := startLocalUp(t)
	text := u.welcome
	t.Logf("local-up printed:\n%s", text)

	uiURL := match(t, text, `UI\s+(http://\S+)`)
	if want := fmt.Sprintf("http://localhost:%d", u.port); uiURL != want {
		t.Fatalf("UI URL %q, want %q", uiURL, want)
	}
	resp, err := http.Get(uiURL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("UI answered %s", resp.Status)
	}

	// The printed commands, with the printed environment.
	if !strings.Contains(text, "kubectl get agents") || !strings.Contains(text, `kubectl agent invoke hello --input "world" --wait`) {
		t.Fatalf("welcome lacks the commands to try:\n%s", text)
	}
	if out := u.run(t, "kubectl", "get", "agents"); !regexp.MustCompile(`(?m)^hello\s`).MatchString(out) {
		t.Fatalf("kubectl get agents:\n%s", out)
	}
	if out := u.waitForAgent(t); !strings.Contains(out, "hello from") || !strings.Contains(out, "world") {
		t.Fatalf("kubectl agent invoke printed %q", out)
	}

	// The same agent from the dashboard, through the tunnel, with its output
	// streamed from the agentlet as it is printed.
	d := signIn(t, u)
	lines := d.invokeStreamed(t, "from the dashboard")
	output, last := platformtest.StreamedOutput(t, lines)
	if !strings.Contains(output, "hello from") || !strings.Contains(output, "from the dashboard") ||
		last["type"] != "result" || last["phase"] != "Succeeded" || last["output_streamed"] != true {
		t.Fatalf("streamed invocation from the dashboard:\n%v", lines)
	}

	dashboardInBrowser(t, u, d)

	// Ctrl-C stops everything.
	if err := u.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-u.exited:
		u.stopped = true
		if err != nil {
			t.Fatalf("local-up exited with %v\n%s", err, u.stderr.String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("local-up did not stop within 2 minutes of SIGINT")
	}
	// A process killed on the way out may still be tearing down for a
	// moment after local-up exits; one really left behind stays.
	left := processesUnder(u.state, u.bin)
	for deadline := time.Now().Add(2 * time.Second); len(left) > 0 && time.Now().Before(deadline); left = processesUnder(u.state, u.bin) {
		time.Sleep(50 * time.Millisecond)
	}
	if len(left) > 0 {
		t.Fatalf("processes left behind after Ctrl-C:\n%s", strings.Join(left, "\n"))
	}
}

func match(t testing.TB, text, expr string) string {
	t.Helper()
	m := regexp.MustCompile(expr).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("welcome lacks %s:\n%s", expr, text)
	}
	return m[1]
}

// processesUnder lists live processes whose command line mentions one of dirs: every
// process local-up starts runs a binary from bin or keeps its files under state.
func processesUnder(dirs ...string) []string {
	var left []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(cmdline) == 0 {
			continue
		}
		stat, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if fields := strings.Fields(string(stat)); len(fields) > 2 && fields[2] == "Z" {
			continue
		}
		line := strings.ReplaceAll(string(cmdline), "\x00", " ")
		for _, d := range dirs {
			if strings.Contains(line, d) {
				left = append(left, e.Name()+": "+line)
				break
			}
		}
	}
	return left
}
